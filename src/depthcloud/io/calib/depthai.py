"""depthai / OAK calibration JSON: the EEPROM dump form and farm-ng's ``OakCalibration`` as protobuf
JSON (translations are centimetres in the file, metres here).

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import read_input
from depthcloud.io.calib._common import (
    PathArg,
    _as_float,
    _as_int,
    _as_matrix,
    _as_vector,
    _intrinsics,
    _require,
    _rotation,
    _text,
)


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
