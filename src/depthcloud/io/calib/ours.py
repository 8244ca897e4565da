"""depthcloud's own camera and rig files: OpenCV FileStorage YAML that OpenCV itself reads, with the
depthcloud keys ``depthcloud_format``, ``kind``, ``distortion_model``, ``rectified``, ``metadata``.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import DepthcloudError, FormatError, InputError
from depthcloud.io.calib._common import (
    PathArg,
    _as_float,
    _as_int,
    _as_matrix,
    _as_vector,
    _clip,
    _intrinsics,
    _refuse_unknown,
    _require,
)
from depthcloud.io.calib.opencv import (
    _cv_key,
    _image_size,
    _rig,
    read_opencv_storage,
    write_opencv_storage,
)

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

    def rectified_rig(self) -> StereoRig:
        """The rig the rectified images have (what disparity maps computed on them need): pinhole
        cameras from P1 and P2 at the rig's image size, baseline −P2[0, 3] / P2[0, 0] metres,
        doffs = P2[0, 2] − P1[0, 2]. A rig that is already rectified is returned as it is."""
        if self.rig.rectified:
            return self.rig
        if "P1" not in self.rectification or "P2" not in self.rectification:
            raise FormatError("an unrectified rig without its rectification (P1, P2); disparity maps need the "
                              "rectified rig: run `depthcloud calibrate stereo`, which saves both", key="P1")
        P1, P2 = np.asarray(self.rectification["P1"]), np.asarray(self.rectification["P2"])
        w, h = self.rig.left.size
        try:
            left = Intrinsics(float(P1[0, 0]), float(P1[1, 1]), float(P1[0, 2]), float(P1[1, 2]), w, h)
            right = Intrinsics(float(P2[0, 0]), float(P2[1, 1]), float(P2[0, 2]), float(P2[1, 2]), w, h)
            return StereoRig.from_rectified(left, abs(float(P2[0, 3]) / float(P2[0, 0])), right=right)
        except InputError as exc:
            raise FormatError(f"the stored rectification does not make a rig: {exc.message}", key="P2") from exc


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
