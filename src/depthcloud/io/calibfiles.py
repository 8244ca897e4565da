"""Calibration files: read the formats cameras and datasets ship, write depthcloud's own.

Formats read (``load_calibration`` picks one by content, then extension):

* Middlebury ``calib.txt`` (``cam0=[f 0 cx; 0 f cy; 0 0 1]``, ``baseline`` in mm, ``doffs``…).
* OpenCV FileStorage YAML/XML: a camera (``camera_matrix``, ``distortion_coefficients``, as in OpenCV's
  ``left_intrinsics.yml``) or a stereo pair (``M1 D1 M2 D2`` and ``R T``, as OpenCV's stereo sample
  writes them to ``intrinsics.yml`` and ``extrinsics.yml``).
* ROS ``camera_info`` YAML (what ``camera_calibration_parsers`` reads and writes).
* depthai/OAK calibration JSON, in the EEPROM dump form (``cameraData: [[socket, {...}], ...]``) and in the
  protobuf-JSON form of farm-ng's ``OakCalibration`` (lowerCamelCase or snake_case keys).
* depthcloud's own camera and rig files: OpenCV FileStorage YAML that OpenCV itself reads, with the
  depthcloud keys ``depthcloud_format``, ``kind``, ``distortion_model``, ``rectified``, ``metadata``.

Units: pixels for intrinsics; translations are returned in metres (Middlebury mm and depthai cm are
converted here, once). Rigs follow ``depthcloud.camera``: X_right = R·X_left + T.

Every problem with a file's content is a :class:`FormatError` naming the file, and the line or key when
known. This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import DepthcloudError, FormatError, InputError
from depthcloud.io._files import read_input, write_atomic

__all__ = [
    "KNOWN_FORMATS",
    "CameraFile",
    "DepthaiCalibration",
    "DepthaiCamera",
    "DepthaiStereoRectification",
    "MiddleburyCalib",
    "RigFile",
    "load_calibration",
    "load_camera",
    "load_camera_file",
    "load_rig",
    "load_rig_file",
    "parse_depthai",
    "parse_middlebury_calib",
    "parse_ros_camera_info",
    "read_depthai_calib",
    "read_middlebury_calib",
    "read_opencv_camera",
    "read_opencv_stereo",
    "read_opencv_stereo_cameras",
    "read_opencv_storage",
    "read_ros_camera_info",
    "save_camera",
    "save_rig",
    "write_opencv_storage",
    "write_ros_camera_info",
]

PathArg = str | PathLike[str]

KNOWN_FORMATS = (
    "Middlebury calib.txt",
    "OpenCV FileStorage YAML/XML (camera_matrix + distortion_coefficients, or M1 D1 M2 D2 R T)",
    "ROS camera_info YAML",
    "depthai/OAK calibration JSON",
    "depthcloud camera/rig YAML",
)

# A strict decimal number: Python's float() would also take "nan", "infinity" and "1_000".
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


# ================================================================================================
# Shared helpers
# ================================================================================================


def _text(data: bytes, path: PathArg) -> str:
    """File bytes as text; binary content or an empty file is a FormatError."""
    if not data.strip():
        raise FormatError("empty file", path=path)
    if b"\x00" in data:
        raise FormatError("binary content (NUL bytes), expected a text calibration file", path=path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text (byte {exc.start}); expected a text calibration file", path=path) from exc


def _number(text: str, *, path: PathArg, key: str | None = None, line: int | None = None) -> float:
    s = text.strip()
    if not _NUMBER.fullmatch(s):
        raise FormatError(f"expected a number, got {_clip(s)!r}", path=path, key=key, line=line)
    x = float(s)
    if not math.isfinite(x):
        raise FormatError(f"number out of range: {_clip(s)!r}", path=path, key=key, line=line)
    return x


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def _as_float(value: Any, *, path: PathArg, key: str) -> float:
    """A finite number from a parsed document (JSON/YAML/FileStorage); numeric strings are accepted."""
    if isinstance(value, bool):
        raise FormatError(f"expected a number, got {value!r}", path=path, key=key)
    if isinstance(value, (int, float, np.integer, np.floating)):
        try:
            x = float(value)
        except OverflowError:  # a Python int beyond float range
            x = math.inf
        if not math.isfinite(x):
            raise FormatError(f"expected a finite number, got {value!r}", path=path, key=key)
        return x
    if isinstance(value, str):
        return _number(value, path=path, key=key)
    raise FormatError(f"expected a number, got {type(value).__name__}", path=path, key=key)


def _as_int(value: Any, *, path: PathArg, key: str, low: int | None = None) -> int:
    x = _as_float(value, path=path, key=key)
    if not x.is_integer():
        raise FormatError(f"expected an integer, got {value!r}", path=path, key=key)
    n = int(x)
    if low is not None and n < low:
        raise FormatError(f"expected an integer >= {low}, got {n}", path=path, key=key)
    return n


def _as_matrix(value: Any, shape: tuple[int, int], *, path: PathArg, key: str) -> np.ndarray:
    """A finite float64 matrix of ``shape`` from a nested list, a flat row-major list or an array."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise FormatError(f"expected a numeric matrix, got dtype {value.dtype}", path=path, key=key)
        arr = value.astype(np.float64)
    elif isinstance(value, (list, tuple)):
        if value and all(isinstance(r, (list, tuple)) for r in value):
            if len({len(r) for r in value}) != 1:
                raise FormatError("rows of different lengths", path=path, key=key)
            flat = [x for r in value for x in r]
            arr_shape: tuple[int, ...] = (len(value), len(value[0]))
        else:
            flat = list(value)
            arr_shape = (len(flat),)
        arr = np.array([_as_float(x, path=path, key=key) for x in flat], dtype=np.float64).reshape(arr_shape)
    else:
        raise FormatError(f"expected a {shape[0]}x{shape[1]} matrix, got {type(value).__name__}", path=path, key=key)
    if not (arr.shape == shape or (arr.ndim == 1 and arr.size == shape[0] * shape[1])):
        got = "x".join(map(str, arr.shape)) if arr.ndim > 1 else f"{arr.size} values"
        raise FormatError(f"expected a {shape[0]}x{shape[1]} matrix, got {got}", path=path, key=key)
    if not np.isfinite(arr).all():
        raise FormatError("contains NaN or inf", path=path, key=key)
    return arr.reshape(shape)


def _rotation(value: Any, *, path: PathArg, key: str) -> np.ndarray:
    R = _as_matrix(value, (3, 3), path=path, key=key)
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
        raise FormatError("not a rotation matrix (R·Rᵀ ≠ I or det < 0)", path=path, key=key)
    return R


def _as_vector(value: Any, *, path: PathArg, key: str, sizes: Sequence[int] | None = None) -> tuple[float, ...]:
    if isinstance(value, np.ndarray):
        if value.ndim == 2 and 1 not in value.shape:
            raise FormatError(f"expected a row or column vector, got shape {value.shape}", path=path, key=key)
        items: list[Any] = value.ravel().tolist()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise FormatError(f"expected a list of numbers, got {type(value).__name__}", path=path, key=key)
    out = tuple(_as_float(x, path=path, key=key) for x in items)
    if sizes is not None and len(out) not in sizes:
        raise FormatError(f"expected {' or '.join(map(str, sizes))} values, got {len(out)}", path=path, key=key)
    return out


def _intrinsics(
    K: np.ndarray, width: int, height: int, dist: Sequence[float], model: str, *, path: PathArg, key: str
) -> Intrinsics:
    """Build Intrinsics; its own validation errors become FormatErrors of this file and key."""
    try:
        return Intrinsics.from_K(K, width, height, dist=tuple(dist), model=model)
    except InputError as exc:
        raise FormatError(exc.message, path=path, key=key) from exc


def _require(doc: Mapping[str, Any], keys: Sequence[str], *, path: PathArg, what: str) -> None:
    missing = [k for k in keys if k not in doc]
    if missing:
        raise FormatError(f"{what}: missing key(s) {', '.join(missing)}", path=path, key=missing[0])


def _refuse_unknown(doc: Mapping[str, Any], known: Sequence[str], *, path: PathArg, what: str) -> None:
    unknown = sorted(str(k) for k in doc if k not in known)
    if unknown:
        raise FormatError(
            f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}", path=path, key=unknown[0]
        )


# ================================================================================================
# Middlebury calib.txt
# ================================================================================================


@dataclass(frozen=True)
class MiddleburyCalib:
    """A Middlebury ``calib.txt``.

    rig: the rectified rig (cam0 left; right = cam1 with cx = cam0.cx + doffs, so that
    ``rig.doffs_px == doffs``; baseline in metres). width, height: image size in pixels. doffs: cx1 − cx0
    in pixels, as the file states it. cam0, cam1: the two cameras exactly as written. ndisp, isint, vmin, vmax, dyavg, dymax: the optional keys (None when absent).
    """

    rig: StereoRig
    width: int
    height: int
    doffs: float
    cam0: Intrinsics
    cam1: Intrinsics
    ndisp: int | None = None
    isint: bool | None = None
    vmin: float | None = None
    vmax: float | None = None
    dyavg: float | None = None
    dymax: float | None = None

    @property
    def baseline_mm(self) -> float:
        return self.rig.baseline_m * 1000.0

    @property
    def focal_px(self) -> float:
        return self.rig.left.fx


_MB_REQUIRED = ("cam0", "cam1", "doffs", "baseline", "width", "height")
_MB_OPTIONAL = ("ndisp", "isint", "vmin", "vmax", "dyavg", "dymax")


def read_middlebury_calib(path: PathArg) -> MiddleburyCalib:
    """Read a Middlebury ``calib.txt`` (MiddEval3 / 2014 style).

    Tolerant of spaces around keys, values and ``=``, inside the brackets, leading and trailing spaces,
    blank lines, commas between numbers and CRLF line ends. Unknown or repeated keys, missing required
    keys (cam0, cam1, doffs, baseline, width, height) and non-numeric values are FormatErrors with the
    line and key. If ``doffs`` disagrees with cam1.cx − cam0.cx by more than 1e-3 px a warning is issued
    and the file's ``doffs`` is kept.
    """
    return parse_middlebury_calib(read_input(path), source=path)


def parse_middlebury_calib(text: str | bytes, *, source: PathArg = "<calib.txt>") -> MiddleburyCalib:
    """Parse the content of a Middlebury ``calib.txt``; ``source`` names it in errors."""
    body = _text(text, source) if isinstance(text, bytes) else text
    if not body.strip():
        raise FormatError("empty file", path=source)
    values: dict[str, tuple[str, int]] = {}
    known = _MB_REQUIRED + _MB_OPTIONAL
    for lineno, raw in enumerate(body.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        key, eq, value = s.partition("=")
        key = key.strip()
        if not eq:
            raise FormatError(f"expected 'key=value', got {_clip(s)!r}", path=source, line=lineno)
        if key not in known:
            raise FormatError(
                f"unknown key; Middlebury calib.txt has {', '.join(known)}", path=source, line=lineno, key=key
            )
        if key in values:
            raise FormatError(f"repeated key (first on line {values[key][1]})", path=source, line=lineno, key=key)
        values[key] = (value.strip(), lineno)
    missing = [k for k in _MB_REQUIRED if k not in values]
    if missing:
        raise FormatError(f"missing key(s) {', '.join(missing)}", path=source, key=missing[0])

    def num(k: str) -> float:
        return _number(values[k][0], path=source, key=k, line=values[k][1])

    def integer(k: str, low: int) -> int:
        x = num(k)
        if not x.is_integer() or x < low:
            raise FormatError(f"expected an integer >= {low}, got {values[k][0]!r}", path=source, key=k, line=values[k][1])
        return int(x)

    def opt(k: str) -> float | None:
        return num(k) if k in values else None

    width, height = integer("width", 1), integer("height", 1)
    cams = [_mb_matrix(k, *values[k], path=source) for k in ("cam0", "cam1")]
    doffs = num("doffs")
    baseline_mm = num("baseline")
    if baseline_mm <= 0:
        raise FormatError(f"expected a positive baseline (mm), got {baseline_mm}", path=source, key="baseline", line=values["baseline"][1])
    left = _intrinsics(cams[0], width, height, (), "none", path=source, key="cam0")
    right = _intrinsics(cams[1], width, height, (), "none", path=source, key="cam1")
    # The files round cx0, cx1 and doffs to 3 decimals each, so they may disagree by 0.001 (Pipes does).
    if abs((right.cx - left.cx) - doffs) > 1e-3 + 1e-9:
        warnings.warn(
            f"{source}: doffs {doffs} disagrees with cam1.cx - cam0.cx = {right.cx - left.cx:.6g}; keeping doffs",
            UserWarning, stacklevel=2,
        )
    rig = StereoRig.from_rectified(left, baseline_mm / 1000.0, right=replace(right, cx=left.cx + doffs))
    isint = None
    if "isint" in values:
        isint_n = integer("isint", 0)
        if isint_n > 1:
            raise FormatError(f"expected 0 or 1, got {isint_n}", path=source, key="isint", line=values["isint"][1])
        isint = bool(isint_n)
    return MiddleburyCalib(
        rig=rig, width=width, height=height, doffs=doffs, cam0=left, cam1=right,
        ndisp=integer("ndisp", 0) if "ndisp" in values else None, isint=isint,
        vmin=opt("vmin"), vmax=opt("vmax"), dyavg=opt("dyavg"), dymax=opt("dymax"),
    )


def _mb_matrix(key: str, text: str, lineno: int, *, path: PathArg) -> np.ndarray:
    """``[a b c; d e f; g h i]`` (spaces or commas between numbers, any spacing) as a 3×3 array."""
    s = text.strip()
    if not (s.startswith("[") and s.endswith("]")):
        raise FormatError(f"expected '[a b c; d e f; g h i]', got {_clip(s)!r}", path=path, line=lineno, key=key)
    rows = [r for r in s[1:-1].split(";")]
    numbers = [[t for t in re.split(r"[\s,]+", r.strip()) if t] for r in rows]
    if len(numbers) == 1 and len(numbers[0]) == 9:
        numbers = [numbers[0][0:3], numbers[0][3:6], numbers[0][6:9]]
    if len(numbers) != 3 or any(len(r) != 3 for r in numbers):
        got = "x".join(str(len(r)) for r in numbers)
        raise FormatError(f"expected a 3x3 matrix (rows split by ';'), got rows of {got} numbers", path=path, line=lineno, key=key)
    return np.array([[_number(t, path=path, key=key, line=lineno) for t in r] for r in numbers], dtype=np.float64)


# ================================================================================================
# OpenCV FileStorage
# ================================================================================================

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
        raise FormatError("the file does not record the image size; pass image_size=(width, height)", path=path)
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
            f"the extrinsics are missing: {where} has no R and T; pass extrinsics= the file that has them "
            "(OpenCV's stereo sample writes extrinsics.yml)",
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


# ================================================================================================
# ROS camera_info YAML
# ================================================================================================

_ROS_KEYS = (
    "image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
    "distortion_coefficients", "rectification_matrix", "projection_matrix",
)
_ROS_MODELS = {"plumb_bob": ("opencv", (0, 4, 5)), "rational_polynomial": ("opencv", (0, 8, 12, 14)),
               "equidistant": ("fisheye", (0, 4))}
_ROS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


def read_ros_camera_info(path: PathArg) -> Intrinsics:
    """A camera from a ROS ``camera_info`` YAML file (as ``camera_calibration_parsers`` writes it).

    Uses image_width, image_height, camera_matrix and distortion_model/distortion_coefficients
    (plumb_bob → "opencv" 5, rational_polynomial → "opencv" 8, equidistant → "fisheye" 4);
    rectification_matrix and projection_matrix are checked for shape only.
    """
    return parse_ros_camera_info(read_input(path), source=path)


def parse_ros_camera_info(text: str | bytes, *, source: PathArg = "<camera_info>") -> Intrinsics:
    """Parse the content of a ROS ``camera_info`` YAML file; ``source`` names it in errors."""
    body = _text(text, source) if isinstance(text, bytes) else text
    doc = _yaml_doc(body, source)
    if not isinstance(doc, dict):
        raise FormatError("expected a YAML map with camera_matrix, distortion_coefficients, ...", path=source)
    _require(doc, ("image_width", "image_height", "camera_matrix", "distortion_coefficients"), path=source,
             what="ROS camera_info")
    _refuse_unknown(doc, _ROS_KEYS, path=source, what="ROS camera_info")
    w = _as_int(doc["image_width"], path=source, key="image_width", low=1)
    h = _as_int(doc["image_height"], path=source, key="image_height", low=1)
    K = _ros_matrix(doc["camera_matrix"], (3, 3), source, "camera_matrix")
    D = _ros_matrix(doc["distortion_coefficients"], None, source, "distortion_coefficients").ravel()
    model_name = doc.get("distortion_model", "plumb_bob")
    if not isinstance(model_name, str) or model_name not in _ROS_MODELS:
        raise FormatError(f"expected one of {', '.join(_ROS_MODELS)}, got {_clip(str(model_name))!r}",
                          path=source, key="distortion_model")
    model, counts = _ROS_MODELS[model_name]
    if len(D) not in counts:
        raise FormatError(f"{model_name} takes {' or '.join(map(str, counts[1:]))} coefficients, got {len(D)}",
                          path=source, key="distortion_coefficients")
    for key, shape in (("rectification_matrix", (3, 3)), ("projection_matrix", (3, 4))):
        if key in doc:
            _ros_matrix(doc[key], shape, source, key)
    return _intrinsics(K, w, h, tuple(D.tolist()), model if len(D) else "none", path=source, key="camera_matrix")


def _yaml_doc(body: str, source: PathArg) -> Any:
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FormatError(f"not valid YAML: {problem}", path=source,
                          line=None if mark is None else mark.line + 1) from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise FormatError(f"not valid YAML: {exc}", path=source) from exc


def _ros_matrix(node: Any, shape: tuple[int, int] | None, source: PathArg, key: str) -> np.ndarray:
    if not isinstance(node, dict):
        raise FormatError("expected a map with rows, cols and data", path=source, key=key)
    _require(node, ("rows", "cols", "data"), path=source, what=key)
    _refuse_unknown(node, ("rows", "cols", "data"), path=source, what=key)
    rows = _as_int(node["rows"], path=source, key=f"{key}.rows", low=0)
    cols = _as_int(node["cols"], path=source, key=f"{key}.cols", low=0)
    data = node["data"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise FormatError(f"expected a list, got {type(data).__name__}", path=source, key=f"{key}.data")
    if len(data) != rows * cols:
        raise FormatError(f"rows x cols = {rows}x{cols} but data has {len(data)} values", path=source, key=f"{key}.data")
    if shape is not None and (rows, cols) != shape:
        raise FormatError(f"expected a {shape[0]}x{shape[1]} matrix, got {rows}x{cols}", path=source, key=key)
    arr = np.array([_as_float(x, path=source, key=f"{key}.data") for x in data], dtype=np.float64)
    return arr.reshape(rows, cols)


def _yaml_float(x: float) -> str:
    """Shortest exact text of ``x`` that YAML 1.1 (PyYAML, yaml-cpp) reads as a float."""
    s = repr(float(x))
    mant, e, exp = s.partition("e")
    if e and "." not in mant:
        s = f"{mant}.0e{exp}"
    return s


def _yaml_matrix(name: str, rows: int, cols: int, values: Sequence[float]) -> str:
    data = ", ".join(_yaml_float(x) for x in values)
    return f"{name}:\n  rows: {rows}\n  cols: {cols}\n  data: [{data}]\n"


def write_ros_camera_info(
    path: PathArg, intrinsics: Intrinsics, *, camera_name: str = "camera", overwrite: bool = False
) -> Path:
    """Write ``intrinsics`` as a ROS ``camera_info`` YAML file; refuses an existing path unless ``overwrite``.

    distortion_model: "opencv" with 4–5 coefficients → plumb_bob, 8/12/14 → rational_polynomial (all
    coefficients kept), "fisheye" → equidistant, "none" → plumb_bob with five zeros. The rectification
    matrix is the identity and the projection matrix [K | 0]. Floats are written with their shortest
    exact text, so :func:`read_ros_camera_info` gives back equal intrinsics.
    """
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    if not isinstance(camera_name, str) or not _ROS_NAME.fullmatch(camera_name):
        raise InputError(f"camera_name: expected letters, digits, _ . / -, got {camera_name!r}")
    if intrinsics.model == "fisheye":
        model, dist = "equidistant", intrinsics.dist
    elif intrinsics.model == "none":
        model, dist = "plumb_bob", (0.0,) * 5
    else:
        model = "plumb_bob" if len(intrinsics.dist) <= 5 else "rational_polynomial"
        dist = intrinsics.dist
    K = intrinsics.K
    P = np.hstack([K, np.zeros((3, 1))])
    text = (
        f"image_width: {intrinsics.width}\nimage_height: {intrinsics.height}\ncamera_name: {camera_name}\n"
        + _yaml_matrix("camera_matrix", 3, 3, K.ravel().tolist())
        + f"distortion_model: {model}\n"
        + _yaml_matrix("distortion_coefficients", 1, len(dist), dist)
        + _yaml_matrix("rectification_matrix", 3, 3, np.eye(3).ravel().tolist())
        + _yaml_matrix("projection_matrix", 3, 4, P.ravel().tolist())
    )
    return write_atomic(path, text.encode("utf-8"), overwrite=overwrite)


# ================================================================================================
# depthai / OAK calibration JSON
# ================================================================================================


@dataclass(frozen=True, eq=False)
class DepthaiCamera:
    """One camera of a depthai calibration, as stored (pixels at ``width`` × ``height``).

    K (3, 3) float64; dist: the coefficients in OpenCV order (14 for the rational model);
    to_socket: the camera the extrinsics point to (-1 = none); R (3, 3) and T_m (3,) metres map
    this camera's frame into ``to_socket``'s: X_to = R·X + T_m. spec_T_m: the design translation.
    """

    socket: int
    K: np.ndarray
    dist: tuple[float, ...]
    width: int
    height: int
    to_socket: int = -1
    R: np.ndarray | None = None
    T_m: np.ndarray | None = None
    spec_T_m: np.ndarray | None = None
    spec_hfov_deg: float | None = None


@dataclass(frozen=True, eq=False)
class DepthaiStereoRectification:
    """The stereo pair the device rectifies, with its rectifying rotations R1, R2 (3, 3) when stored."""

    left_socket: int
    right_socket: int
    R1: np.ndarray | None = None
    R2: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class DepthaiCalibration:
    """A depthai (OAK) device calibration; cameras are looked up by socket (0 = RGB, 1 = left, 2 = right)."""

    cameras: Mapping[int, DepthaiCamera]
    board_name: str | None = None
    stereo_rectification: DepthaiStereoRectification | None = None
    source: str = "<depthai>"
    _edges: Mapping[int, tuple[tuple[int, np.ndarray, np.ndarray], ...]] = field(default_factory=dict, repr=False)

    @property
    def sockets(self) -> tuple[int, ...]:
        return tuple(sorted(self.cameras))

    def camera(self, socket: int) -> DepthaiCamera:
        """The stored camera at ``socket``; a missing one is a FormatError naming the sockets present."""
        s = v.integer("socket", socket)
        if s not in self.cameras:
            raise FormatError(
                f"no camera at socket {s}; sockets present: {', '.join(map(str, self.sockets)) or 'none'}",
                path=self.source,
            )
        return self.cameras[s]

    def intrinsics(self, socket: int, *, width: int | None = None, height: int | None = None) -> Intrinsics:
        """The camera at ``socket`` as Intrinsics (model "opencv", all coefficients kept).

        With ``width``/``height`` (one may be left out: it follows the stored aspect ratio) the
        intrinsics are those of the image the device outputs at that size. Same aspect ratio: a resize
        (:meth:`Intrinsics.resized`). Different aspect ratio: the OAK convention — scale by the larger of
        the two ratios so the image covers the requested size, then crop equally on both sides of the
        axis that overflows (cx or cy shift by half the excess). Distortion coefficients do not change.
        """
        cam = self.camera(socket)
        base = _intrinsics(cam.K, cam.width, cam.height, cam.dist, "opencv", path=self.source,
                           key=f"camera {cam.socket}")
        if width is None and height is None:
            return base
        W, H = cam.width, cam.height
        w = v.integer("width", width, low=1) if width is not None else max(1, round(W * v.integer("height", height, low=1) / H))
        h = v.integer("height", height, low=1) if height is not None else max(1, round(H * w / W))
        if w * H == h * W:
            return base.resized(w, h)
        s = max(w / W, h / H)
        # Pixel centres stay centred (u' = (u + 0.5)·s − 0.5), then the centred crop removes half the excess.
        return replace(
            base, fx=base.fx * s, fy=base.fy * s, skew=base.skew * s,
            cx=(base.cx + 0.5) * s - 0.5 - (W * s - w) / 2.0,
            cy=(base.cy + 0.5) * s - 0.5 - (H * s - h) / 2.0, width=w, height=h,
        )

    def extrinsics(self, from_socket: int, to_socket: int) -> tuple[np.ndarray, np.ndarray]:
        """(R (3, 3), T (3,) metres) with X_to = R·X_from + T, chained through other cameras if needed."""
        a, b = self.camera(from_socket).socket, self.camera(to_socket).socket
        todo: deque[int] = deque([a])
        pose: dict[int, tuple[np.ndarray, np.ndarray]] = {a: (np.eye(3), np.zeros(3))}
        while todo:
            s = todo.popleft()
            R0, T0 = pose[s]
            for nxt, R, T in self._edges.get(s, ()):
                if nxt not in pose:
                    pose[nxt] = (R @ R0, R @ T0 + T)
                    todo.append(nxt)
        if b not in pose:
            raise FormatError(f"no extrinsics link camera {a} to camera {b}", path=self.source)
        R, T = pose[b]
        return R.copy(), T.copy()

    def baseline_m(self, left_socket: int = 1, right_socket: int = 2) -> float:
        """Distance between the two cameras' optical centres, metres."""
        return float(np.linalg.norm(self.extrinsics(left_socket, right_socket)[1]))

    def rig(
        self, left_socket: int = 1, right_socket: int = 2, *, width: int | None = None, height: int | None = None
    ) -> StereoRig:
        """The unrectified stereo rig of two sockets, both cameras at the requested size."""
        left = self.intrinsics(left_socket, width=width, height=height)
        right = self.intrinsics(right_socket, width=width, height=height)
        R, T = self.extrinsics(left_socket, right_socket)
        try:
            return StereoRig(left, right, R, T)
        except InputError as exc:
            raise FormatError(exc.message, path=self.source) from exc


def read_depthai_calib(path: PathArg) -> DepthaiCalibration:
    """Read a depthai/OAK calibration JSON (EEPROM dump, or farm-ng ``OakCalibration`` as JSON)."""
    body = _text(read_input(path), path)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        line = getattr(exc, "lineno", None)
        msg = getattr(exc, "msg", str(exc))
        raise FormatError(f"not valid JSON: {msg}", path=path, line=line) from exc
    return parse_depthai(doc, source=str(path))


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _snake_keys(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        raise ValueError("nested too deeply")
    if isinstance(value, dict):
        return {_snake(k) if isinstance(k, str) else k: _snake_keys(x, depth + 1) for k, x in value.items()}
    if isinstance(value, list):
        return [_snake_keys(x, depth + 1) for x in value]
    return value


def parse_depthai(mapping: Mapping[str, Any], *, source: str = "<depthai>") -> DepthaiCalibration:
    """A DepthaiCalibration from the parsed JSON of either form.

    EEPROM form: ``cameraData: [[socket, {intrinsicMatrix (3×3), distortionCoeff, width, height,
    extrinsics {rotationMatrix, translation {x,y,z} cm, toCameraSocket}}], ...]``. Protobuf-JSON form:
    ``cameraData: [{cameraNumber, intrinsicMatrix (flat 9), ...}]`` where fields at their default
    (0, empty) may be left out. Keys in lowerCamelCase or snake_case. Unknown keys are ignored.
    """
    if not isinstance(mapping, Mapping):
        raise FormatError(f"expected a JSON object, got {type(mapping).__name__}", path=source)
    try:
        doc = _snake_keys(dict(mapping))
    except (ValueError, RecursionError) as exc:
        raise FormatError(str(exc), path=source) from exc
    _require(doc, ("camera_data",), path=source, what="depthai calibration")
    entries = doc["camera_data"]
    if not isinstance(entries, list):
        raise FormatError("expected a list of cameras", path=source, key="cameraData")
    cameras: dict[int, DepthaiCamera] = {}
    for i, entry in enumerate(entries):
        cam = _depthai_camera(entry, f"cameraData[{i}]", source)
        if cam.socket in cameras:
            raise FormatError(f"socket {cam.socket} appears twice", path=source, key=f"cameraData[{i}]")
        cameras[cam.socket] = cam
    edges: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for cam in cameras.values():
        if cam.R is None or cam.T_m is None or cam.to_socket < 0 or cam.to_socket == cam.socket:
            continue
        edges.setdefault(cam.socket, []).append((cam.to_socket, cam.R, cam.T_m))
        edges.setdefault(cam.to_socket, []).append((cam.socket, cam.R.T, -cam.R.T @ cam.T_m))
    board = doc.get("board_name")
    return DepthaiCalibration(
        cameras=MappingProxyType(cameras),
        board_name=None if board is None else str(board),
        stereo_rectification=_depthai_rectification(doc.get("stereo_rectification_data"), source),
        source=source,
        _edges=MappingProxyType({k: tuple(e) for k, e in edges.items()}),
    )


def _depthai_camera(entry: Any, where: str, source: str) -> DepthaiCamera:
    proto = isinstance(entry, dict)
    if proto:
        data = entry
        socket = _as_int(data.get("camera_number", 0), path=source, key=f"{where}.cameraNumber", low=0)
    elif isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict):
        socket = _as_int(entry[0], path=source, key=f"{where}[0]", low=0)
        data = entry[1]
    else:
        raise FormatError("expected [socket, {...}] or {cameraNumber, ...}", path=source, key=where)
    where = f"{where} (socket {socket})"
    required = ("intrinsic_matrix", "width", "height") if proto else ("intrinsic_matrix", "distortion_coeff", "width", "height")
    missing = [k for k in required if k not in data]
    if missing:
        raise FormatError(f"missing key(s) {', '.join(missing)}", path=source, key=f"{where}.{missing[0]}")
    K = _as_matrix(data["intrinsic_matrix"], (3, 3), path=source, key=f"{where}.intrinsicMatrix")
    dist = _as_vector(data.get("distortion_coeff", []), path=source, key=f"{where}.distortionCoeff",
                      sizes=(0, 4, 5, 8, 12, 14))
    width = _as_int(data["width"], path=source, key=f"{where}.width", low=1)
    height = _as_int(data["height"], path=source, key=f"{where}.height", low=1)
    hfov = data.get("spec_hfov_deg")
    ext = data.get("extrinsics", {})
    if not isinstance(ext, dict):
        raise FormatError("expected an object", path=source, key=f"{where}.extrinsics")
    to = _as_int(ext.get("to_camera_socket", 0 if proto else -1), path=source, key=f"{where}.extrinsics.toCameraSocket")
    R = T = spec = None
    rot = ext.get("rotation_matrix", [])
    if to >= 0 and to != socket:
        R = _rotation(rot, path=source, key=f"{where}.extrinsics.rotationMatrix")
        T = _depthai_vec3(ext.get("translation", {}), source, f"{where}.extrinsics.translation", proto)
    if "spec_translation" in ext:
        spec = _depthai_vec3(ext["spec_translation"], source, f"{where}.extrinsics.specTranslation", proto)
    return DepthaiCamera(
        socket=socket, K=K, dist=dist, width=width, height=height, to_socket=to, R=R, T_m=T, spec_T_m=spec,
        spec_hfov_deg=None if hfov is None else _as_float(hfov, path=source, key=f"{where}.specHfovDeg"),
    )


def _depthai_vec3(node: Any, source: str, key: str, proto: bool) -> np.ndarray:
    """A translation {x, y, z} in centimetres, returned in metres."""
    if not isinstance(node, dict):
        raise FormatError("expected {x, y, z} in centimetres", path=source, key=key)
    if not proto:
        _require(node, ("x", "y", "z"), path=source, what=key)
    return np.array([_as_float(node.get(c, 0.0), path=source, key=f"{key}.{c}") for c in "xyz"]) / 100.0


def _depthai_rectification(node: Any, source: str) -> DepthaiStereoRectification | None:
    if node is None:
        return None
    key = "stereoRectificationData"
    if not isinstance(node, dict):
        raise FormatError("expected an object", path=source, key=key)
    left = _as_int(node.get("left_camera_socket", 0), path=source, key=f"{key}.leftCameraSocket")
    right = _as_int(node.get("right_camera_socket", 0), path=source, key=f"{key}.rightCameraSocket")
    rots = []
    for name, camel in (("rectified_rotation_left", "rectifiedRotationLeft"), ("rectified_rotation_right", "rectifiedRotationRight")):
        r = node.get(name)
        empty = r is None or (isinstance(r, list) and not r)
        rots.append(None if empty else _rotation(r, path=source, key=f"{key}.{camel}"))
    return DepthaiStereoRectification(left, right, rots[0], rots[1])


# ================================================================================================
# depthcloud's own camera and rig files
# ================================================================================================

FORMAT_VERSION = 1
_RECT_SHAPES = {"R1": (3, 3), "R2": (3, 3), "P1": (3, 4), "P2": (3, 4), "Q": (4, 4)}
_RECT_KEYS = (*_RECT_SHAPES, "roi1", "roi2", "alpha")
_CAMERA_KEYS = ("depthcloud_format", "kind", "image_width", "image_height", "camera_matrix",
                "distortion_model", "distortion_coefficients", "metadata")
_RIG_KEYS = ("depthcloud_format", "kind", "rectified", "image_width", "image_height", "image_width_right",
             "image_height_right", "M1", "D1", "distortion_model1", "M2", "D2", "distortion_model2", "R", "T",
             *_RECT_KEYS, "metadata")


@dataclass(frozen=True, eq=False)
class CameraFile:
    """A depthcloud camera file: the intrinsics and the metadata saved with them."""

    intrinsics: Intrinsics
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class RigFile:
    """A depthcloud rig file: the rig, the rectification saved with it (R1, R2 (3, 3); P1, P2 (3, 4);
    Q (4, 4); roi1, roi2 (x, y, w, h); alpha — whichever were saved) and the metadata."""

    rig: StereoRig
    rectification: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _dist_matrix(intr: Intrinsics) -> np.ndarray:
    # OpenCV functions want a distortion vector even for a pinhole: five zeros, as calibrateCamera gives.
    return np.asarray(intr.dist if intr.dist else (0.0,) * 5, dtype=np.float64).reshape(1, -1)


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"metadata: expected a mapping, got {type(metadata).__name__}")
    for k in metadata:
        _cv_key(k, "metadata")
    return {"metadata": dict(metadata)} if metadata else {}


def save_camera(
    path: PathArg, intrinsics: Intrinsics, *, overwrite: bool = False, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Save one camera as depthcloud camera YAML, which ``cv2.FileStorage`` also reads.

    Keys: camera_matrix, distortion_coefficients (1×N; five zeros for a pinhole), image_width,
    image_height (OpenCV's names), plus depthcloud_format, kind: camera, distortion_model and an
    optional metadata map (rms, date, ...; str, int, float or arrays). Exact round trip with
    :func:`load_camera`. Refuses an existing path unless ``overwrite``.
    """
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    doc: dict[str, Any] = {
        "depthcloud_format": FORMAT_VERSION, "kind": "camera",
        "image_width": intrinsics.width, "image_height": intrinsics.height,
        "camera_matrix": intrinsics.K, "distortion_model": intrinsics.model,
        "distortion_coefficients": _dist_matrix(intrinsics), **_metadata(metadata),
    }
    return write_opencv_storage(path, doc, overwrite=overwrite)


def save_rig(
    path: PathArg,
    rig: StereoRig,
    *,
    overwrite: bool = False,
    rectification: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Save a stereo rig as depthcloud rig YAML, laid out like OpenCV's stereo sample files.

    Keys: M1 D1 M2 D2 R T (T as 3×1, metres), image_width/image_height (plus image_width_right/
    image_height_right when the right camera's size differs), depthcloud_format, kind: rig, rectified,
    distortion_model1/2, and optionally the rectification (R1, R2 (3, 3), P1, P2 (3, 4), Q (4, 4),
    roi1, roi2 (x, y, w, h), alpha) and a metadata map. Exact round trip with :func:`load_rig_file`.
    """
    if not isinstance(rig, StereoRig):
        raise InputError(f"rig: expected StereoRig, got {type(rig).__name__}")
    rect = _check_rectification(rectification or {}, error=InputError, path=None)
    doc: dict[str, Any] = {
        "depthcloud_format": FORMAT_VERSION, "kind": "rig", "rectified": int(rig.rectified),
        "image_width": rig.left.width, "image_height": rig.left.height,
    }
    if rig.right.size != rig.left.size:
        doc.update(image_width_right=rig.right.width, image_height_right=rig.right.height)
    doc.update(
        M1=rig.left.K, D1=_dist_matrix(rig.left), distortion_model1=rig.left.model,
        M2=rig.right.K, D2=_dist_matrix(rig.right), distortion_model2=rig.right.model,
        R=np.asarray(rig.R), T=np.asarray(rig.T).reshape(3, 1),
    )
    for key in _RECT_KEYS:
        if key in rect:
            doc[key] = list(rect[key]) if key.startswith("roi") else rect[key]
    doc.update(_metadata(metadata))
    return write_opencv_storage(path, doc, overwrite=overwrite)


def _check_rectification(rect: Mapping[str, Any], *, error: type[DepthcloudError], path: PathArg | None) -> dict[str, Any]:
    """Validated rectification entries; ``error`` is InputError for arguments, FormatError for files."""
    if not isinstance(rect, Mapping):
        raise error(f"rectification: expected a mapping, got {type(rect).__name__}", path=path)
    unknown = sorted(str(k) for k in rect if k not in _RECT_KEYS)
    if unknown:
        raise error(f"rectification: unknown key(s) {', '.join(unknown)}; known: {', '.join(_RECT_KEYS)}",
                    path=path, key=unknown[0])
    out: dict[str, Any] = {}
    for key, value in rect.items():
        try:
            if key in _RECT_SHAPES:
                out[key] = _as_matrix(value, _RECT_SHAPES[key], path=path or "rectification", key=key)
            elif key == "alpha":
                out[key] = _as_float(value, path=path or "rectification", key=key)
            else:
                roi = tuple(_as_int(x, path=path or "rectification", key=key, low=0)
                            for x in _as_vector(value, path=path or "rectification", key=key, sizes=(4,)))
                out[key] = roi
        except FormatError as exc:
            if error is FormatError:
                raise
            raise error(f"rectification: {exc.message}", key=key) from exc
    return out


def load_camera(path: PathArg) -> Intrinsics:
    """The intrinsics of a depthcloud camera file (see :func:`save_camera`)."""
    return load_camera_file(path).intrinsics


def load_camera_file(path: PathArg) -> CameraFile:
    """A depthcloud camera file with its metadata."""
    return _own_camera(read_opencv_storage(path), path)


def load_rig(path: PathArg) -> StereoRig:
    """The rig of a depthcloud rig file (see :func:`save_rig`)."""
    return load_rig_file(path).rig


def load_rig_file(path: PathArg) -> RigFile:
    """A depthcloud rig file with its rectification and metadata."""
    return _own_rig(read_opencv_storage(path), path)


def _own_kind(doc: Mapping[str, Any], path: PathArg, want: str | None) -> str:
    if "depthcloud_format" not in doc:
        raise FormatError("not a depthcloud calibration file (no depthcloud_format key)", path=path,
                          key="depthcloud_format")
    version = _as_int(doc["depthcloud_format"], path=path, key="depthcloud_format", low=1)
    if version > FORMAT_VERSION:
        raise FormatError(f"format version {version} is newer than this depthcloud reads ({FORMAT_VERSION})",
                          path=path, key="depthcloud_format")
    kind = doc.get("kind")
    if kind not in ("camera", "rig"):
        raise FormatError(f"expected 'camera' or 'rig', got {kind!r}", path=path, key="kind")
    if want is not None and kind != want:
        raise FormatError(f"is a {kind} file, expected a {want} file", path=path, key="kind")
    return kind


def _own_metadata(doc: Mapping[str, Any], path: PathArg) -> Mapping[str, Any]:
    meta = doc.get("metadata", {})
    if not isinstance(meta, dict):
        raise FormatError("expected a map", path=path, key="metadata")
    return MappingProxyType(meta)


def _own_intrinsics(doc: Mapping[str, Any], path: PathArg, K: str, D: str, model: str,
                    size: tuple[int, int]) -> Intrinsics:
    Km = _as_matrix(doc[K], (3, 3), path=path, key=K)
    name = doc.get(model, "opencv")
    if name not in ("none", "opencv", "fisheye"):
        raise FormatError(f"expected none, opencv or fisheye, got {_clip(str(name))!r}", path=path, key=model)
    dist = () if name == "none" else _as_vector(doc[D], path=path, key=D)
    return _intrinsics(Km, size[0], size[1], dist, name, path=path, key=D)


def _own_camera(doc: Mapping[str, Any], path: PathArg) -> CameraFile:
    _own_kind(doc, path, "camera")
    _require(doc, ("image_width", "image_height", "camera_matrix", "distortion_coefficients"), path=path,
             what="depthcloud camera")
    _refuse_unknown(doc, _CAMERA_KEYS, path=path, what="depthcloud camera")
    size = _image_size(doc, path, None)
    intr = _own_intrinsics(doc, path, "camera_matrix", "distortion_coefficients", "distortion_model", size)
    return CameraFile(intr, _own_metadata(doc, path))


def _own_rig(doc: Mapping[str, Any], path: PathArg) -> RigFile:
    _own_kind(doc, path, "rig")
    _require(doc, ("image_width", "image_height", "M1", "D1", "M2", "D2", "R", "T"), path=path, what="depthcloud rig")
    _refuse_unknown(doc, _RIG_KEYS, path=path, what="depthcloud rig")
    size_l = _image_size(doc, path, None)
    size_r = size_l
    if "image_width_right" in doc or "image_height_right" in doc:
        size_r = _image_size(doc, path, None, ("image_width_right", "image_height_right"))
    left = _own_intrinsics(doc, path, "M1", "D1", "distortion_model1", size_l)
    right = _own_intrinsics(doc, path, "M2", "D2", "distortion_model2", size_r)
    rectified = _as_int(doc.get("rectified", 0), path=path, key="rectified", low=0)
    if rectified > 1:
        raise FormatError(f"expected 0 or 1, got {rectified}", path=path, key="rectified")
    rig = _rig(left, right, doc["R"], doc["T"], bool(rectified), path=path)
    rect = _check_rectification({k: doc[k] for k in _RECT_KEYS if k in doc}, error=FormatError, path=path)
    return RigFile(rig, MappingProxyType(rect), _own_metadata(doc, path))


# ================================================================================================
# Any format
# ================================================================================================


def load_calibration(
    path: PathArg, *, extrinsics: PathArg | None = None, image_size: tuple[int, int] | None = None
) -> Intrinsics | StereoRig:
    """A camera or a stereo rig from any calibration file depthcloud knows (see ``KNOWN_FORMATS``).

    The format is found from the content: JSON with cameraData → depthai (the rig of sockets 1, 2);
    ``%YAML``/XML FileStorage → depthcloud's own file if it has ``depthcloud_format``, else an OpenCV
    stereo file (M1 D1 M2 D2 with R T, here or in ``extrinsics``) or camera file (camera_matrix);
    ``cam0=`` lines → Middlebury calib.txt (a rectified rig); YAML with camera_matrix rows/cols/data →
    ROS camera_info. ``image_size`` = (width, height) is used only when an OpenCV file lacks it.
    Anything else is a FormatError listing the known formats.
    """
    data = read_input(path)
    text = _text(data, path)
    head = text.lstrip()
    if head.startswith("{"):
        doc = _json_doc(text, path)
        if isinstance(doc, dict) and ("cameraData" in doc or "camera_data" in doc):
            return parse_depthai(doc, source=str(path)).rig(1, 2)
        return _opencv_any(read_opencv_storage(path), path, extrinsics, image_size)
    if head.startswith("%YAML") or head.startswith("<?xml") or head.startswith("<opencv_storage"):
        return _opencv_any(read_opencv_storage(path), path, extrinsics, image_size)
    if re.search(r"^\s*cam0\s*=", text, re.M):
        return parse_middlebury_calib(text, source=path).rig
    if re.search(r"^camera_matrix\s*:", text, re.M):
        return parse_ros_camera_info(text, source=path)
    raise _unknown(path)


def _unknown(path: PathArg) -> FormatError:
    return FormatError(f"not a calibration file depthcloud knows; known formats: {'; '.join(KNOWN_FORMATS)}",
                       path=path)


def _json_doc(text: str, path: PathArg) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"not valid JSON: {getattr(exc, 'msg', exc)}", path=path,
                          line=getattr(exc, "lineno", None)) from exc


def _opencv_any(doc: Mapping[str, Any], path: PathArg, extrinsics: PathArg | None,
                image_size: tuple[int, int] | None) -> Intrinsics | StereoRig:
    if "depthcloud_format" in doc:
        kind = _own_kind(doc, path, None)
        return _own_camera(doc, path).intrinsics if kind == "camera" else _own_rig(doc, path).rig
    if "M1" in doc:
        return _opencv_stereo(doc, path, extrinsics, image_size)
    if "camera_matrix" in doc:
        return _opencv_camera(doc, path, image_size)
    raise _unknown(path)
