"""Calibration files: read the formats cameras and datasets ship, write depthcloud's own.

Formats read (``load_calibration`` picks one by content; one module per format in this package):

* Middlebury ``calib.txt`` (``cam0=[f 0 cx; 0 f cy; 0 0 1]``, ``baseline`` in mm, ``doffs``…).
* OpenCV FileStorage YAML/XML: a camera (``camera_matrix``, ``distortion_coefficients``, as in OpenCV's
  ``left_intrinsics.yml``) or a stereo pair (``M1 D1 M2 D2`` and ``R T``, as OpenCV's stereo sample
  writes them to ``intrinsics.yml`` and ``extrinsics.yml``).
* ROS ``camera_info`` YAML (what ``camera_calibration_parsers`` reads and writes).
* depthai/OAK calibration JSON, in the EEPROM dump form (``cameraData: [[socket, {...}], ...]``) and in the
  protobuf-JSON form of farm-ng's ``OakCalibration`` (lowerCamelCase or snake_case keys).
* Open3D ``PinholeCameraIntrinsic`` JSON (``width``, ``height``, column-major ``intrinsic_matrix``).
* COLMAP ``cameras.txt`` (pinhole, radial, OpenCV and fisheye models; principal point moved from
  COLMAP's corner-origin pixels to depthcloud's centre-origin ones).
* depthcloud's own camera and rig files: OpenCV FileStorage YAML that OpenCV itself reads, with the
  depthcloud keys ``depthcloud_format``, ``kind``, ``distortion_model``, ``rectified``, ``metadata``.

Units: pixels for intrinsics; translations are returned in metres (Middlebury mm and depthai cm are
converted here, once). Rigs follow ``depthcloud.camera``: X_right = R·X_left + T.

Every problem with a file's content is a :class:`FormatError` naming the file, and the line or key when
known. This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError
from depthcloud.io._files import read_input
from depthcloud.io.calib._common import PathArg, _json_doc, _text
from depthcloud.io.calib.colmap import (
    COLMAP_MODELS,
    looks_like_colmap,
    parse_colmap_cameras,
    read_colmap_camera,
    read_colmap_cameras,
)
from depthcloud.io.calib.depthai import (
    DepthaiCalibration,
    DepthaiCamera,
    DepthaiStereoRectification,
    parse_depthai,
    read_depthai_calib,
)
from depthcloud.io.calib.middlebury import MiddleburyCalib, parse_middlebury_calib, read_middlebury_calib
from depthcloud.io.calib.open3d import is_open3d_intrinsic, parse_open3d_intrinsic, read_open3d_intrinsic
from depthcloud.io.calib.opencv import (
    _opencv_camera,
    _opencv_stereo,
    _parse_storage_text,
    read_opencv_camera,
    read_opencv_stereo,
    read_opencv_stereo_cameras,
    read_opencv_storage,
    write_opencv_storage,
)
from depthcloud.io.calib.ours import (
    FORMAT_VERSION,
    CameraFile,
    RigFile,
    _own_camera,
    _own_kind,
    _own_rig,
    load_camera,
    load_camera_file,
    load_rig,
    load_rig_file,
    save_camera,
    save_rig,
)
from depthcloud.io.calib.ros import parse_ros_camera_info, read_ros_camera_info, write_ros_camera_info

__all__ = [
    "COLMAP_MODELS",
    "FORMAT_VERSION",
    "KNOWN_FORMATS",
    "CameraFile",
    "DepthaiCalibration",
    "DepthaiCamera",
    "DepthaiStereoRectification",
    "MiddleburyCalib",
    "RigFile",
    "calibration_format",
    "load_calibration",
    "load_camera",
    "load_camera_file",
    "load_rig",
    "load_rig_file",
    "parse_colmap_cameras",
    "parse_depthai",
    "parse_middlebury_calib",
    "parse_open3d_intrinsic",
    "parse_ros_camera_info",
    "read_colmap_camera",
    "read_colmap_cameras",
    "read_depthai_calib",
    "read_middlebury_calib",
    "read_open3d_intrinsic",
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


KNOWN_FORMATS = (
    "Middlebury calib.txt",
    "OpenCV FileStorage YAML/XML (camera_matrix + distortion_coefficients, or M1 D1 M2 D2 R T)",
    "ROS camera_info YAML",
    "depthai/OAK calibration JSON",
    "depthcloud camera/rig YAML",
    "Open3D PinholeCameraIntrinsic JSON",
    "COLMAP cameras.txt",
)


def calibration_format(path: PathArg) -> str:
    """Which format ``path`` holds, from its content: "depthai", "open3d", "depthcloud", "opencv",
    "middlebury", "ros" or "colmap". Anything else is a FormatError listing the known formats."""
    return _detect(_text(read_input(path), path), path)[0]


def _detect(text: str, path: PathArg) -> tuple[str, Any]:
    """(format name, parsed JSON document or None)."""
    head = text.lstrip()
    if head.startswith("{"):
        doc = _json_doc(text, path)
        if isinstance(doc, dict) and ("cameraData" in doc or "camera_data" in doc):
            return "depthai", doc
        if is_open3d_intrinsic(doc):
            return "open3d", doc
        return ("depthcloud" if isinstance(doc, dict) and "depthcloud_format" in doc else "opencv"), None
    if head.startswith("%YAML") or head.startswith("<?xml") or head.startswith("<opencv_storage"):
        return ("depthcloud" if re.search(r"^\s*depthcloud_format\s*:", text, re.M) else "opencv"), None
    if re.search(r"^\s*cam0\s*=", text, re.M):
        return "middlebury", None
    if re.search(r"^camera_matrix\s*:", text, re.M):
        return "ros", None
    if looks_like_colmap(text):
        return "colmap", None
    raise _unknown(path)


def load_calibration(
    path: PathArg,
    *,
    extrinsics: PathArg | None = None,
    image_size: tuple[int, int] | None = None,
    camera_id: int | None = None,
    rectified: bool = False,
) -> Intrinsics | StereoRig:
    """A camera or a stereo rig from any calibration file depthcloud knows (see ``KNOWN_FORMATS``).

    The format is found from the content (see :func:`calibration_format`): JSON with cameraData →
    depthai (the rig of sockets 1, 2); JSON with intrinsic_matrix → Open3D PinholeCameraIntrinsic;
    ``%YAML``/XML FileStorage → depthcloud's own file if it has ``depthcloud_format``, else an OpenCV
    stereo file (M1 D1 M2 D2 with R T, here or in ``extrinsics``) or camera file (camera_matrix);
    ``cam0=`` lines → Middlebury calib.txt (a rectified rig); YAML with camera_matrix rows/cols/data →
    ROS camera_info; ``ID MODEL W H PARAMS`` lines → COLMAP cameras.txt (``camera_id``, default the
    first). ``image_size`` = (width, height) is used only when an OpenCV file lacks it.
    ``rectified``: for a depthcloud rig file that stores its rectification (``calibrate stereo``
    writes one), return the rig the *rectified* images have (pinhole, from P1 and P2) — what a
    disparity map computed on them needs. Anything else is a FormatError listing the known formats.
    """
    text = _text(read_input(path), path)
    fmt, doc = _detect(text, path)
    if camera_id is not None and fmt != "colmap":
        raise FormatError(f"a camera id ({camera_id}) applies to COLMAP cameras.txt, not to this {fmt} file", path=path)
    if fmt == "depthai":
        return parse_depthai(doc, source=str(path)).rig(1, 2)
    if fmt == "open3d":
        return parse_open3d_intrinsic(doc, source=path)
    if fmt == "middlebury":
        return parse_middlebury_calib(text, source=path).rig
    if fmt == "ros":
        return parse_ros_camera_info(text, source=path)
    if fmt == "colmap":
        cams = parse_colmap_cameras(text, source=path)
        if camera_id is None:
            return next(iter(cams.values()))
        if camera_id not in cams:
            raise FormatError(f"no camera with id {camera_id}; ids present: {', '.join(map(str, cams))}", path=path)
        return cams[camera_id]
    return _opencv_any(_parse_storage_text(text, path), path, extrinsics, image_size, rectified)


def _unknown(path: PathArg) -> FormatError:
    return FormatError(f"not a calibration file depthcloud knows; known formats: {'; '.join(KNOWN_FORMATS)}",
                       path=path)


def _opencv_any(doc: Mapping[str, Any], path: PathArg, extrinsics: PathArg | None,
                image_size: tuple[int, int] | None, rectified: bool) -> Intrinsics | StereoRig:
    if "depthcloud_format" in doc:
        kind = _own_kind(doc, path, None)
        if kind == "camera":
            return _own_camera(doc, path).intrinsics
        rig_file = _own_rig(doc, path)
        if not rectified:
            return rig_file.rig
        try:
            return rig_file.rectified_rig()
        except FormatError as exc:
            raise FormatError(exc.message, path=path, key=exc.key) from exc
    if "M1" in doc:
        return _opencv_stereo(doc, path, extrinsics, image_size)
    if "camera_matrix" in doc:
        return _opencv_camera(doc, path, image_size)
    raise _unknown(path)
