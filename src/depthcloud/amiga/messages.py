"""The OAK camera service's messages, and the disparity images they carry.

farm-ng's OAK service speaks protobuf messages of package ``farm_ng.oak.proto`` (file
``farm_ng/oak/oak.proto``). When farm-ng-amiga is installed its generated ``oak_pb2`` is used; without
it, :func:`oak_messages` builds a wire-compatible schema here — the same package, file name, message
names, field numbers and types, taken from the message layout (not from farm-ng-amiga's code) — in a
private descriptor pool, so farm-ng-core alone suffices and both can live in one process.

The fallback schema holds the messages this package needs, complete: ``OakCalibration`` (with
``CameraData``, ``Extrinsics``, ``StereoRectificationData``) and ``OakFrame`` (with ``OakImageMeta``,
``CameraSettings``, ``EncoderOptions``, ``Resolution`` and their enums). Every field is named, so a
frame parsed and re-serialised keeps its bytes (protobuf would move unknown fields to the end).

Disparity as the OAK service sends it: 8-bit integer disparity in pixels (no subpixel bits), usually
JPEG-encoded, sometimes PNG or raw bytes. :func:`decode_disparity` accepts all three.

This module must not open network connections; it reads calibration files only.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import FormatError, InputError, MissingDependencyError

__all__ = [
    "OakMessages",
    "decode_disparity",
    "encode_disparity",
    "oak_calibration_from_json",
    "oak_messages",
    "read_oak_calibration",
]

_PACKAGE = "farm_ng.oak.proto"
_FILE = "farm_ng/oak/oak.proto"
_VEC3 = ".farm_ng.core.proto.Vec3F32"

# (number, name, type, repeated); a type starting with "." names a message or enum.
_SCHEMA: dict[str, list[tuple[int, str, str, bool]]] = {
    "CameraSettings": [
        (1, "auto_exposure", "bool", False),
        (2, "exposure_time", "uint32", False),
        (3, "iso_value", "uint32", False),
        (4, "lens_pos", "uint32", False),
    ],
    "EncoderOptions": [
        (1, "profile", f".{_PACKAGE}.EncoderProfile", False),
        (2, "rate_control_mode", f".{_PACKAGE}.RateControlMode", False),
        (3, "cbr_preferred_bitrate_kbps", "uint32", False),
        (4, "vbr_or_mjpeg_quality", "uint32", False),
        (5, "frames_per_keyframe", "uint32", False),
    ],
    "Resolution": [(1, "width", "uint32", False), (2, "height", "uint32", False)],
    "OakImageMeta": [
        (1, "category", "int64", False),
        (2, "instance_num", "int64", False),
        (3, "sequence_num", "int64", False),
        (4, "timestamp", "double", False),
        (5, "timestamp_device", "double", False),
        (6, "settings", f".{_PACKAGE}.CameraSettings", False),
        (7, "timestamp_recv", "double", False),
        (8, "encoder_options", f".{_PACKAGE}.EncoderOptions", False),
        (9, "resolution", f".{_PACKAGE}.Resolution", False),
        (10, "pixel_format", f".{_PACKAGE}.PixelFormat", False),
    ],
    "OakFrame": [(1, "meta", f".{_PACKAGE}.OakImageMeta", False), (2, "image_data", "bytes", False)],
    "Extrinsics": [
        (1, "rotation_matrix", "double", True),
        (2, "spec_translation", _VEC3, False),
        (3, "to_camera_socket", "int32", False),
        (4, "translation", _VEC3, False),
    ],
    "CameraData": [
        (1, "camera_number", "uint32", False),
        (2, "camera_type", "int32", False),
        (3, "distortion_coeff", "double", True),
        (4, "extrinsics", f".{_PACKAGE}.Extrinsics", False),
        (5, "height", "uint32", False),
        (6, "intrinsic_matrix", "double", True),
        (7, "lens_position", "uint32", False),
        (8, "spec_hfov_deg", "double", False),
        (9, "width", "uint32", False),
    ],
    "StereoRectificationData": [
        (1, "left_camera_socket", "uint32", False),
        (2, "rectified_rotation_left", "double", True),
        (3, "rectified_rotation_right", "double", True),
        (4, "right_camera_socket", "uint32", False),
    ],
    "OakCalibration": [
        (1, "batch_name", "string", False),
        (2, "batch_time", "int32", False),
        (3, "board_conf", "string", False),
        (4, "board_custom", "string", False),
        (5, "board_name", "string", False),
        (6, "board_options", "int32", False),
        (7, "board_rev", "string", False),
        (8, "camera_data", f".{_PACKAGE}.CameraData", True),
        (9, "hardware_conf", "string", False),
        (10, "imu_extrinsics", f".{_PACKAGE}.Extrinsics", False),
        (11, "miscellaneous_data", "string", True),
        (12, "product_name", "string", False),
        (13, "stereo_rectification_data", f".{_PACKAGE}.StereoRectificationData", False),
        (14, "version", "uint32", False),
    ],
}
_ENUMS = {
    "EncoderProfile": [("H264_BASELINE", 0), ("H264_HIGH", 1), ("H264_MAIN", 2), ("H265_MAIN", 3), ("MJPEG", 4)],
    "RateControlMode": [("CBR", 0), ("VBR", 1)],
    "PixelFormat": [("UNKNOWN", 0), ("YUV420", 1), ("RAW8", 2), ("Encoded", 3)],
}


@dataclass(frozen=True)
class OakMessages:
    """The message classes in use and where they come from (``"farm_ng.oak"`` or ``"depthcloud"``)."""

    OakCalibration: Any
    OakFrame: Any
    OakImageMeta: Any
    origin: str


def _fallback_messages() -> OakMessages:
    try:
        from farm_ng.core import linalg_pb2
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError as exc:
        raise MissingDependencyError.for_extra("farm-ng-core", "amiga") from exc
    scalar = {
        "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
        "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
        "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
        "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    }
    enum_names = {f".{_PACKAGE}.{name}" for name in _ENUMS}
    fdp = descriptor_pb2.FileDescriptorProto(
        name=_FILE, package=_PACKAGE, syntax="proto3", dependency=[linalg_pb2.DESCRIPTOR.name]
    )
    for enum_name, values in _ENUMS.items():
        enum = fdp.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for msg_name, fields in _SCHEMA.items():
        msg = fdp.message_type.add(name=msg_name)
        for number, name, type_name, repeated in fields:
            field = msg.field.add(name=name, number=number, json_name=_camel(name))
            field.label = (
                descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if repeated
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            )
            if type_name.startswith("."):
                field.type_name = type_name
                field.type = (
                    descriptor_pb2.FieldDescriptorProto.TYPE_ENUM
                    if type_name in enum_names
                    else descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                )
            else:
                field.type = scalar[type_name]
    pool = descriptor_pool.DescriptorPool()
    linalg = descriptor_pb2.FileDescriptorProto()
    linalg_pb2.DESCRIPTOR.CopyToProto(linalg)
    pool.Add(linalg)
    pool.Add(fdp)

    def cls(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))

    return OakMessages(cls("OakCalibration"), cls("OakFrame"), cls("OakImageMeta"), "depthcloud")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@functools.lru_cache(maxsize=2)
def oak_messages(*, installed: bool | None = None) -> OakMessages:
    """The OAK message classes.

    installed: True = farm-ng-amiga's ``oak_pb2`` (error if missing); False = the project's own
    wire-compatible schema; None (default) = ``oak_pb2`` when importable, unless the environment
    variable ``DEPTHCLOUD_AMIGA_OWN_SCHEMA`` is set.
    """
    if installed is None:
        installed = not os.environ.get("DEPTHCLOUD_AMIGA_OWN_SCHEMA")
        if installed:
            try:
                import farm_ng.oak.oak_pb2  # noqa: F401
            except ImportError:
                installed = False
    if not installed:
        return _fallback_messages()
    try:
        from farm_ng.oak import oak_pb2
    except ImportError as exc:
        raise MissingDependencyError.for_extra("farm-ng-amiga (farm_ng.oak)", "amiga") from exc
    return OakMessages(oak_pb2.OakCalibration, oak_pb2.OakFrame, oak_pb2.OakImageMeta, "farm_ng.oak")


def _flat(name: str, value: Any, n: int) -> list[float]:
    """A 3×3 matrix (nested or flat) as n row-major numbers; empty stays empty (a camera with no
    extrinsics, such as the RGB camera of some boards, has an empty rotation)."""
    arr = v.array(name, value, kinds="fiu", nonempty=False)
    if arr.size not in (0, n):
        raise FormatError(f"expected {n} numbers, got shape {arr.shape}", key=name)
    return [float(x) for x in arr.ravel()]


def _extrinsics_to_proto(ext: Mapping[str, Any], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "rotationMatrix" in ext:
        out["rotationMatrix"] = _flat(f"{key}.rotationMatrix", ext["rotationMatrix"], 9)
    for name in ("translation", "specTranslation"):
        if name in ext:
            t = ext[name]
            if not isinstance(t, Mapping) or not {"x", "y", "z"} <= set(t):
                raise FormatError("expected {x, y, z} in centimetres", key=f"{key}.{name}")
            out[name] = {axis: float(t[axis]) for axis in "xyz"}
    if "toCameraSocket" in ext:
        out["toCameraSocket"] = int(ext["toCameraSocket"])
    return out


def oak_calibration_from_json(mapping: Mapping[str, Any], *, messages: OakMessages | None = None) -> Any:
    """An ``OakCalibration`` message from a calibration JSON (parsed into a dict).

    Two forms: a depthai calibration dump (the EEPROM JSON: ``cameraData`` holds ``[socket, {...}]``
    pairs, which become ``CameraData`` messages with ``camera_number`` = socket, 3×3 matrices flattened
    row-major), or the protobuf-JSON form of ``OakCalibration`` itself (``cameraData`` holds objects;
    camelCase or snake_case keys). Translations stay in centimetres, as the camera service sends them.
    Unknown keys are refused (they would be lost). Raises FormatError naming the key.
    """
    from google.protobuf import json_format

    msgs = messages or oak_messages()
    if not isinstance(mapping, Mapping):
        raise FormatError(f"expected a JSON object, got {type(mapping).__name__}")
    cams = mapping.get("cameraData", mapping.get("camera_data"))
    if not isinstance(cams, list):
        raise FormatError("missing or not a list; not an OAK calibration", key="cameraData")
    if all(isinstance(c, Mapping) for c in cams):
        try:
            return json_format.ParseDict(mapping, msgs.OakCalibration())
        except json_format.ParseError as exc:
            raise FormatError(f"not an OakCalibration: {exc}") from exc
    doc: dict[str, Any] = {k: val for k, val in mapping.items() if k not in
                           ("cameraData", "stereoRectificationData", "imuExtrinsics")}
    cameras = []
    for i, item in enumerate(mapping["cameraData"]):
        key = f"cameraData[{i}]"
        if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], Mapping)):
            raise FormatError("expected a [socket, {...}] pair", key=key)
        socket, cam = item
        entry: dict[str, Any] = {"cameraNumber": int(socket)}
        for name in ("cameraType", "height", "width", "lensPosition", "specHfovDeg"):
            if name in cam:
                entry[name] = cam[name]
        if "intrinsicMatrix" in cam:
            entry["intrinsicMatrix"] = _flat(f"{key}.intrinsicMatrix", cam["intrinsicMatrix"], 9)
        if "distortionCoeff" in cam:
            entry["distortionCoeff"] = [float(x) for x in cam["distortionCoeff"]]
        if "extrinsics" in cam:
            entry["extrinsics"] = _extrinsics_to_proto(cam["extrinsics"], f"{key}.extrinsics")
        cameras.append(entry)
    doc["cameraData"] = cameras
    if "imuExtrinsics" in mapping:
        doc["imuExtrinsics"] = _extrinsics_to_proto(mapping["imuExtrinsics"], "imuExtrinsics")
    if "stereoRectificationData" in mapping:
        srd = dict(mapping["stereoRectificationData"])
        for name in ("rectifiedRotationLeft", "rectifiedRotationRight"):
            if name in srd:
                srd[name] = _flat(f"stereoRectificationData.{name}", srd[name], 9)
        doc["stereoRectificationData"] = srd
    if "miscellaneousData" in doc:
        doc["miscellaneousData"] = [str(x) for x in doc["miscellaneousData"]]
    try:
        return json_format.ParseDict(doc, msgs.OakCalibration())
    except json_format.ParseError as exc:
        raise FormatError(f"not an OAK calibration: {exc}") from exc


def decode_disparity(image_data: bytes, *, width: int = 0, height: int = 0) -> np.ndarray:
    """8-bit disparity from an ``OakFrame.image_data``.

    image_data: JPEG or PNG bytes (told apart by their signatures), or raw 8-bit pixels, which need
    ``width`` and ``height`` (from ``OakImageMeta.resolution``).
    Returns (H, W) uint8 disparity in whole pixels (channel 0 of a colour image).
    Raises FormatError when the bytes do not decode to an image of that kind.
    """
    import cv2

    if not isinstance(image_data, bytes | bytearray | memoryview):
        raise InputError(f"image_data: expected bytes, got {type(image_data).__name__}")
    data = bytes(image_data)
    if not data:
        raise FormatError("empty image_data")
    if data[:2] == b"\xff\xd8" or data[:8] == b"\x89PNG\r\n\x1a\n":
        kind = "JPEG" if data[:2] == b"\xff\xd8" else "PNG"
        if kind == "JPEG" and data[-2:] != b"\xff\xd9":
            # OpenCV decodes a cut JPEG into a half-grey image without complaint; refuse it instead.
            raise FormatError("JPEG disparity is truncated (no end-of-image marker)")
        from depthcloud.io.limits import check_image_bytes

        check_image_bytes(data)  # before OpenCV allocates what the header declares
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FormatError(f"{kind} disparity does not decode ({len(data)} bytes)")
        if img.dtype != np.uint8:
            raise FormatError(f"{kind} disparity: expected 8-bit pixels, got {img.dtype}")
        return np.ascontiguousarray(img[:, :, 0] if img.ndim == 3 else img)
    if width <= 0 or height <= 0:
        raise FormatError(
            f"image_data ({len(data)} bytes) is neither JPEG nor PNG, and no resolution says how to read it raw"
        )
    if len(data) != width * height:
        raise FormatError(f"raw disparity: expected {width}x{height} = {width * height} bytes, got {len(data)}")
    return np.frombuffer(data, np.uint8).reshape(height, width).copy()


def encode_disparity(disparity: np.ndarray, *, encoding: str = "jpeg", quality: int = 95) -> bytes:
    """Encode (H, W) uint8 disparity as the camera service sends it: ``"jpeg"``, ``"png"`` or ``"raw"``."""
    import cv2

    d = v.image("disparity", disparity, kinds="u")
    if d.dtype != np.uint8:
        raise InputError(f"disparity: expected dtype uint8 (whole pixels 0..255), got {d.dtype}")
    if encoding == "raw":
        return np.ascontiguousarray(d).tobytes()
    if encoding == "jpeg":
        q = v.integer("quality", quality, low=1, high=100)
        ok, buf = cv2.imencode(".jpg", d, [cv2.IMWRITE_JPEG_QUALITY, q])
    elif encoding == "png":
        ok, buf = cv2.imencode(".png", d)
    else:
        raise InputError(f"encoding: expected 'jpeg', 'png' or 'raw', got {encoding!r}")
    if not ok:
        raise FormatError(f"OpenCV could not encode the disparity as {encoding}")
    return buf.tobytes()


def read_oak_calibration(path: str | PathLike[str], *, messages: OakMessages | None = None) -> Any:
    """Read a calibration JSON file (depthai dump or OakCalibration JSON) into an ``OakCalibration``."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=p)
    if p.is_dir():
        raise InputError("is a folder, expected a calibration JSON", path=p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text ({exc.reason})", path=p) from exc
    except json.JSONDecodeError as exc:
        raise FormatError(f"not valid JSON: {exc.msg} (column {exc.colno})", path=p, line=exc.lineno) from exc
    try:
        return oak_calibration_from_json(data, messages=messages)
    except FormatError as exc:
        raise FormatError(exc.message, path=p, key=exc.key) from exc
