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
import re
from collections.abc import Mapping
from typing import Any

from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError
from depthcloud.io._files import read_input
from depthcloud.io.calib._common import PathArg, _text
from depthcloud.io.calib.depthai import (
    DepthaiCalibration,
    DepthaiCamera,
    DepthaiStereoRectification,
    parse_depthai,
    read_depthai_calib,
)
from depthcloud.io.calib.middlebury import MiddleburyCalib, parse_middlebury_calib, read_middlebury_calib
from depthcloud.io.calib.opencv import (
    _opencv_camera,
    _opencv_stereo,
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
    "FORMAT_VERSION",
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


KNOWN_FORMATS = (
    "Middlebury calib.txt",
    "OpenCV FileStorage YAML/XML (camera_matrix + distortion_coefficients, or M1 D1 M2 D2 R T)",
    "ROS camera_info YAML",
    "depthai/OAK calibration JSON",
    "depthcloud camera/rig YAML",
)




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
