"""OpenCV FileStorage (YAML, XML, JSON): reading into plain values, writing, and the camera and stereo
layouts of OpenCV's samples (camera_matrix + distortion_coefficients; M1 D1 M2 D2 R T).

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import read_input, write_atomic
from depthcloud.io.calib._common import (
    PathArg,
    _as_int,
    _as_matrix,
    _as_vector,
    _intrinsics,
    _require,
    _text,
)
from depthcloud.io.calib._cvcheck import check_matrix_sizes

_CV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CV_LINE = re.compile(r"\((\d+)\):\s*(.*?)'?\s*$", re.S)
_INT32 = (-(2**31), 2**31 - 1)


def read_opencv_storage(path: PathArg) -> dict[str, Any]:
    """Read an OpenCV FileStorage file (YAML, XML or JSON) into plain Python values.

    Matrices (``!!opencv-matrix``, any ``dt``) become float64 arrays of shape (rows, cols); integers,
    reals and strings stay scalars; sequences become lists and maps dicts (in file order). An empty
    node is None. Unreadable content is a FormatError with the path (and the line OpenCV reports).
    """
    return _parse_storage_text(_text(read_input(path), path), path)


def _parse_storage_text(text: str, path: PathArg) -> dict[str, Any]:
    import cv2

    check_matrix_sizes(text, path)  # OpenCV trusts them; a lie can corrupt its heap
    fs = cv2.FileStorage()
    try:
        # Parse from memory: the content, not the extension, decides the flavour, and a file cannot
        # change between our checks and OpenCV's read.
        ok = fs.open(text, cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY)
    except Exception as exc:  # cv2.error, or SystemError from the bindings on some inputs
        raise _cv_format_error(exc, path) from exc
    if not ok:
        raise FormatError("OpenCV FileStorage cannot read it (not YAML, XML or JSON)", path=path)
    try:
        root = fs.root()
        if not root.isMap():
            raise FormatError("expected a map of named values at the top level", path=path)
        return {k: _cv_node(root.getNode(k), path, k) for k in root.keys()}  # noqa: SIM118 (a FileNode, not a dict)
    except cv2.error as exc:
        raise _cv_format_error(exc, path) from exc
    finally:
        fs.release()


def _cv_format_error(exc: BaseException, path: PathArg) -> FormatError:
    msg = str(exc)
    cause = exc.__cause__ or exc.__context__
    if "returned a result with an exception set" in msg and cause is not None:
        msg = str(cause)
    m = _CV_LINE.search(msg)
    if m:
        return FormatError(f"OpenCV FileStorage: {m.group(2).strip()}", path=path, line=int(m.group(1)))
    last = msg.strip().splitlines()[-1] if msg.strip() else type(exc).__name__
    return FormatError(f"OpenCV FileStorage: {last}", path=path)


def _cv_node(node: Any, path: PathArg, key: str) -> Any:
    import cv2

    if node.isMap():
        keys = node.keys()
        if {"rows", "cols", "dt", "data"} <= set(keys) or {"sizes", "dt", "data"} <= set(keys):
            mat = node.mat()
            if mat is None:
                raise FormatError("unreadable matrix", path=path, key=key)
            return np.asarray(mat, dtype=np.float64)
        return {k: _cv_node(node.getNode(k), path, f"{key}.{k}") for k in keys}
    if node.isSeq():
        return [_cv_node(node.at(i), path, f"{key}[{i}]") for i in range(node.size())]
    if node.isInt():
        return int(node.real())
    if node.isReal():
        return float(node.real())
    if node.isString():
        return node.string()
    if node.type() == cv2.FileNode_NONE or node.empty():
        return None
    raise FormatError(f"unsupported FileStorage node type {node.type()}", path=path, key=key)


def write_opencv_storage(path: PathArg, mapping: Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Write ``mapping`` as an OpenCV FileStorage file that ``cv2.FileStorage`` reads.

    The flavour follows the extension: ``.xml`` → XML, ``.json`` → JSON, anything else → YAML with the
    classic ``%YAML:1.0`` header. Values: str, int (32-bit), float, bool (stored as 0/1), 2-D numeric
    arrays (1-D arrays are stored as one row) → ``!!opencv-matrix`` (float64 as ``dt: d``, 17
    significant digits so reading gives the same bits), lists/tuples of these → sequences, mappings →
    maps. Keys are identifiers (letters, digits, ``_``). Strings OpenCV's YAML reader would take for
    something else ("true", "null", ...) are refused with the key. Refuses an existing ``path`` unless
    ``overwrite``. Returns the path written.
    """
    import cv2

    p = Path(path)
    ext = p.suffix.lower()
    fmt = {".xml": cv2.FILE_STORAGE_FORMAT_XML, ".json": cv2.FILE_STORAGE_FORMAT_JSON}.get(
        ext, cv2.FILE_STORAGE_FORMAT_YAML
    )
    if not isinstance(mapping, Mapping):
        raise InputError(f"mapping: expected a mapping of names to values, got {type(mapping).__name__}")
    fs = cv2.FileStorage(f"out{ext or '.yml'}", cv2.FILE_STORAGE_WRITE | cv2.FILE_STORAGE_MEMORY | fmt)
    try:
        for key, value in mapping.items():
            _cv_write(fs, _cv_key(key, "mapping"), value, str(key))
        text = fs.releaseAndGetString()
    except cv2.error as exc:
        raise InputError(f"mapping: OpenCV FileStorage refused it: {str(exc).strip().splitlines()[-1]}") from exc
    if fmt == cv2.FILE_STORAGE_FORMAT_YAML:
        # OpenCV 5 heads YAML with "%YAML 1.2"; older OpenCV needs the classic header, which 5 also reads.
        first, _, rest = text.partition("\n")
        if first.startswith("%YAML"):
            text = "%YAML:1.0\n" + rest
        # OpenCV writes some strings unquoted that its reader then takes for something else ("true" → 1).
        _check_strings(mapping, _parse_storage_text(text, "<written>"), "mapping")
    return write_atomic(p, text.encode("utf-8"), overwrite=overwrite)


def _check_strings(written: Any, read: Any, where: str) -> None:
    if isinstance(written, str):
        if read != written:
            raise InputError(f"{where}: OpenCV's YAML does not keep the string {written!r} (it reads back as "
                             f"{read!r}); spell it differently or write .xml")
    elif isinstance(written, Mapping) and isinstance(read, dict):
        for k, item in written.items():
            _check_strings(item, read.get(k), f"{where}.{k}")
    elif isinstance(written, (list, tuple)) and isinstance(read, list):
        for i, (item, back) in enumerate(zip(written, read, strict=False)):
            _check_strings(item, back, f"{where}[{i}]")


def _cv_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not _CV_KEY.fullmatch(key):
        raise InputError(f"{where}: key {key!r} is not an identifier (letters, digits, _; not first a digit)")
    return key


def _cv_write(fs: Any, name: str, value: Any, where: str) -> None:
    import cv2

    if isinstance(value, (bool, np.bool_)):
        fs.write(name, int(value))
    elif isinstance(value, (int, np.integer)):
        if not _INT32[0] <= int(value) <= _INT32[1]:
            raise InputError(f"{where}: integer {int(value)} does not fit OpenCV's 32-bit int; store it as a float or text")
        fs.write(name, int(value))
    elif isinstance(value, (float, np.floating)):
        fs.write(name, float(value))
    elif isinstance(value, str):
        fs.write(name, value)
    elif isinstance(value, np.ndarray):
        arr = value
        if arr.dtype.kind not in "fiub" or arr.ndim not in (1, 2) or arr.size == 0:
            raise InputError(f"{where}: expected a non-empty 1-D or 2-D numeric array, got {arr.dtype} {arr.shape}")
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.dtype.kind in "biu":
            fits = _INT32[0] <= int(arr.min()) and int(arr.max()) <= _INT32[1]
            arr = arr.astype(np.int32 if fits else np.float64)
        elif arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
        fs.write(name, np.ascontiguousarray(arr))
    elif isinstance(value, Mapping):
        fs.startWriteStruct(name, cv2.FileNode_MAP)
        for k, item in value.items():
            _cv_write(fs, _cv_key(k, where), item, f"{where}.{k}")
        fs.endWriteStruct()
    elif isinstance(value, (list, tuple)):
        flow = all(isinstance(x, (int, float, np.integer, np.floating)) for x in value)
        fs.startWriteStruct(name, cv2.FileNode_SEQ | (cv2.FileNode_FLOW if flow else 0))
        for i, item in enumerate(value):
            _cv_write(fs, "", item, f"{where}[{i}]")
        fs.endWriteStruct()
    else:
        raise InputError(f"{where}: cannot store a {type(value).__name__} in an OpenCV FileStorage file")


def read_opencv_camera(path: PathArg, *, image_size: tuple[int, int] | None = None) -> Intrinsics:
    """One camera from an OpenCV calibration file (``camera_matrix``, ``distortion_coefficients``).

    The image size comes from ``image_width``/``image_height`` in the file, or ``image_size``
    ``(width, height)`` when the file does not record it.
    """
    return _opencv_camera(read_opencv_storage(path), path, image_size)


def _image_size(doc: Mapping[str, Any], path: PathArg, image_size: tuple[int, int] | None,
                keys: tuple[str, str] = ("image_width", "image_height")) -> tuple[int, int]:
    if keys[0] in doc or keys[1] in doc:
        _require(doc, keys, path=path, what="image size")
        return (_as_int(doc[keys[0]], path=path, key=keys[0], low=1), _as_int(doc[keys[1]], path=path, key=keys[1], low=1))
    if image_size is None:
        raise FormatError("the file does not record the image size (image_width, image_height); add them to it", path=path)
    w, h = image_size
    return (v.integer("image_size[0]", w, low=1), v.integer("image_size[1]", h, low=1))


def _opencv_camera(doc: Mapping[str, Any], path: PathArg, image_size: tuple[int, int] | None) -> Intrinsics:
    _require(doc, ("camera_matrix", "distortion_coefficients"), path=path, what="OpenCV camera")
    w, h = _image_size(doc, path, image_size)
    K = _as_matrix(doc["camera_matrix"], (3, 3), path=path, key="camera_matrix")
    D = _as_vector(doc["distortion_coefficients"], path=path, key="distortion_coefficients", sizes=(4, 5, 8, 12, 14))
    return _intrinsics(K, w, h, D, "opencv", path=path, key="camera_matrix")


def read_opencv_stereo_cameras(
    path: PathArg, *, image_size: tuple[int, int] | None = None
) -> tuple[Intrinsics, Intrinsics]:
    """The two cameras (M1, D1) and (M2, D2) of an OpenCV stereo file such as ``intrinsics.yml``.

    OpenCV's stereo sample does not record the image size: pass ``image_size`` = (width, height).
    """
    doc = read_opencv_storage(path)
    return _opencv_pair(doc, path, image_size)


def _opencv_pair(doc: Mapping[str, Any], path: PathArg, image_size: tuple[int, int] | None) -> tuple[Intrinsics, Intrinsics]:
    _require(doc, ("M1", "D1", "M2", "D2"), path=path, what="OpenCV stereo intrinsics")
    w, h = _image_size(doc, path, image_size)
    cams = []
    for m, d in (("M1", "D1"), ("M2", "D2")):
        K = _as_matrix(doc[m], (3, 3), path=path, key=m)
        D = _as_vector(doc[d], path=path, key=d, sizes=(4, 5, 8, 12, 14))
        cams.append(_intrinsics(K, w, h, D, "opencv", path=path, key=m))
    return cams[0], cams[1]


def read_opencv_stereo(
    path: PathArg, *, extrinsics: PathArg | None = None, image_size: tuple[int, int] | None = None
) -> StereoRig:
    """A stereo rig from OpenCV's stereo sample files.

    ``path`` holds M1 D1 M2 D2 (``intrinsics.yml``), and R T too unless ``extrinsics`` names the file
    that has them (``extrinsics.yml``). T is taken as metres: OpenCV writes it in the unit of the
    square size given to ``stereoCalibrate``. ``image_size`` = (width, height) is needed when the
    files do not record it.
    """
    return _opencv_stereo(read_opencv_storage(path), path, extrinsics, image_size)


def _opencv_stereo(doc: Mapping[str, Any], path: PathArg, extrinsics: PathArg | None,
                   image_size: tuple[int, int] | None) -> StereoRig:
    ext_doc, ext_path = (doc, path) if extrinsics is None else (read_opencv_storage(extrinsics), extrinsics)
    if "R" not in ext_doc or "T" not in ext_doc:
        where = "it" if extrinsics is None else "the extrinsics file"
        raise FormatError(
            f"the extrinsics are missing: {where} has no R and T; give the file that has them too "
            "(OpenCV's stereo sample writes them to extrinsics.yml)",
            path=ext_path, key="R" if "R" not in ext_doc else "T",
        )
    left, right = _opencv_pair(doc, path, image_size)
    return _rig(left, right, ext_doc["R"], ext_doc["T"], False, path=ext_path)


def _rig(left: Intrinsics, right: Intrinsics, R: Any, T: Any, rectified: bool, *, path: PathArg) -> StereoRig:
    Rm = _as_matrix(R, (3, 3), path=path, key="R")
    Tv = np.array(_as_vector(T, path=path, key="T", sizes=(3,)))
    try:
        return StereoRig(left, right, Rm, Tv, rectified=rectified)
    except InputError as exc:
        raise FormatError(exc.message, path=path, key="R" if exc.message.startswith("R") else "T") from exc
