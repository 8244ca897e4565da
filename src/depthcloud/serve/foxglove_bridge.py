"""``depthcloud serve --foxglove``: the server's newest frames published over the Foxglove WebSocket
protocol with Foxglove's own SDK (``foxglove-sdk``), so Foxglove Studio shows them live.

Topics (``prefix`` ``/depthcloud`` by default), one message per new snapshot:

* ``…/points`` — ``foxglove.PointCloud``: the served cloud (default decimation, the served frame);
  ``x y z`` float32 at offsets 0, 4, 8 and ``red green blue alpha`` uint8 at 12–15 (stride 16).
  ``frame_id`` is ``camera_<frame>`` (``camera_optical``, ``camera_zup``, ``camera_opengl``).
* ``…/color`` — ``foxglove.CompressedImage`` (JPEG) of the full-resolution colour image,
  ``frame_id`` ``camera_optical`` (only when the source has colour).
* ``…/calibration`` — ``foxglove.CameraCalibration`` of that image (K, D, R = I, P = [K | 0]).
* ``…/tf`` — ``foxglove.FrameTransform`` placing ``camera_optical`` in ``camera_<frame>`` (a pure
  rotation), so the image and the points line up; only when the served frame is not ``optical``.

Publishing runs in its own thread and takes only the newest snapshot (a slow Foxglove client never
holds up the server); nothing is encoded while no client subscribes. Binds 127.0.0.1 by default.
This module must not parse command lines.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from depthcloud.errors import ConfigError, MissingDependencyError
from depthcloud.serve.server import CloudServer, Snapshot, is_loopback

__all__ = ["FoxgloveBridge", "foxglove_bridge", "frame_transform", "point_cloud_message"]

log = logging.getLogger("depthcloud.serve.foxglove")



def _distortion(intr: Any) -> tuple[str, list[float]]:
    """Foxglove's (ROS's) name and coefficients for the camera's distortion model."""
    d = [float(x) for x in intr.dist]
    if intr.model == "fisheye":
        return "kannala_brandt", d
    if len(d) > 5:
        return "rational_polynomial", (d + [0.0] * 8)[:8]
    return "plumb_bob", (d + [0.0] * 5)[:5]


def _sdk() -> Any:
    try:
        import foxglove
    except ImportError as exc:
        raise MissingDependencyError.for_extra("foxglove-sdk", "foxglove") from exc
    return foxglove


def _timestamp(t: float) -> Any:
    from foxglove.messages import Timestamp

    sec = int(t)
    return Timestamp(sec=sec, nsec=min(round((t - sec) * 1e9), 999_999_999))


def point_cloud_message(points: np.ndarray, colors: np.ndarray | None, *, frame_id: str, t: float) -> Any:
    """A ``foxglove.PointCloud`` of (N, 3) float32 metres and (N, 3) uint8 RGB (None = white)."""
    from foxglove.messages import (
        PackedElementField,
        PackedElementFieldNumericType,
        PointCloud,
        Pose,
        Quaternion,
        Vector3,
    )

    n = len(points)
    packed = np.empty(n, dtype=[("xyz", "<f4", 3), ("rgba", "u1", 4)])
    packed["xyz"] = points
    packed["rgba"][:, :3] = 255 if colors is None else colors
    packed["rgba"][:, 3] = 255
    f32, u8 = PackedElementFieldNumericType.Float32, PackedElementFieldNumericType.Uint8
    fields = [PackedElementField(name=name, offset=off, type=kind) for name, off, kind in (
        ("x", 0, f32), ("y", 4, f32), ("z", 8, f32), ("red", 12, u8), ("green", 13, u8), ("blue", 14, u8),
        ("alpha", 15, u8))]
    pose = Pose(position=Vector3(x=0.0, y=0.0, z=0.0), orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
    return PointCloud(timestamp=_timestamp(t), frame_id=frame_id, pose=pose, point_stride=16, fields=fields,
                      data=packed.tobytes())


class FoxgloveBridge:
    """Publishes a :class:`CloudServer`'s snapshots on a Foxglove WebSocket server of its own.

    host/port: where the Foxglove server listens (loopback and 8765 by default; 0 = a free port).
    """

    def __init__(self, server: CloudServer, *, host: str = "127.0.0.1", port: int = 8765,
                 prefix: str = "/depthcloud", jpeg_quality: int = 85) -> None:
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"expected a port 0..65535, got {port}", key="foxglove")
        self._cloud_server = server
        self.host, self._port, self.prefix, self.jpeg_quality = host, int(port), prefix.rstrip("/"), jpeg_quality
        self._ws: Any = None
        self._context: Any = None
        self._channels: dict[str, Any] = {}
        self._latest: Snapshot | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.published = 0

    @property
    def port(self) -> int:
        if self._ws is None:
            raise ConfigError("the Foxglove server is not started", key="foxglove")
        return int(self._ws.port)

    def start(self) -> FoxgloveBridge:
        foxglove = _sdk()
        from foxglove.channels import (
            CameraCalibrationChannel,
            CompressedImageChannel,
            FrameTransformChannel,
            PointCloudChannel,
        )

        if not is_loopback(self.host):
            log.warning("Foxglove server on %s: the stream is reachable from other machines (it has no token)",
                        self.host)
        # The context must outlive start(): channels on a dropped context are never advertised.
        self._context = ctx = foxglove.Context()
        try:
            self._ws = foxglove.start_server(name="depthcloud", host=self.host, port=self._port, context=ctx)
        except Exception as exc:  # the SDK raises its own error types for a port in use
            raise ConfigError(f"cannot start the Foxglove server on {self.host}:{self._port} ({exc})",
                              key="foxglove") from exc
        self._channels = {
            "points": PointCloudChannel(f"{self.prefix}/points", context=ctx),
            "color": CompressedImageChannel(f"{self.prefix}/color", context=ctx),
            "calibration": CameraCalibrationChannel(f"{self.prefix}/calibration", context=ctx),
        }
        if self._cloud_server.config.frame != "optical":
            self._channels["tf"] = FrameTransformChannel(f"{self.prefix}/tf", context=ctx)
        self._thread = threading.Thread(target=self._run, name="depthcloud-foxglove", daemon=True)
        self._thread.start()
        self._cloud_server.add_listener(self._offer)
        return self

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._ws is not None:
            self._ws.stop()
            self._ws = None
        self._channels, self._context = {}, None

    async def __aenter__(self) -> FoxgloveBridge:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def _offer(self, snap: Snapshot) -> None:
        with self._wake:
            self._latest = snap
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._latest is None and not self._stopping:
                    self._wake.wait()
                snap, self._latest = self._latest, None
                if self._stopping or snap is None:
                    return
            try:
                self.publish(snap)
            except Exception:  # one bad frame must not end publishing
                log.exception("publishing frame %d to Foxglove failed", snap.seq)

    def publish(self, snap: Snapshot) -> None:
        """Publish one snapshot on every channel a client subscribes to."""
        from foxglove.messages import CameraCalibration, CompressedImage

        ch = self._channels
        t = time.time()
        frame = snap.frame
        if ch["points"].has_sinks():
            cloud = snap.cloud()
            ch["points"].log(point_cloud_message(cloud.points, cloud.colors, frame_id=f"camera_{cloud.frame}", t=t))
        if frame.color is not None and ch["color"].has_sinks():
            import cv2

            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame.color[..., ::-1]),
                                   [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                ch["color"].log(CompressedImage(timestamp=_timestamp(t), frame_id="camera_optical",
                                                data=buf.tobytes(), format="jpeg"))
        if ch["calibration"].has_sinks():
            intr = frame.intrinsics
            model, D = _distortion(intr)
            K = [float(x) for x in intr.K.ravel()]
            P = [K[0], K[1], K[2], 0.0, K[3], K[4], K[5], 0.0, K[6], K[7], K[8], 0.0]
            ch["calibration"].log(CameraCalibration(
                timestamp=_timestamp(t), frame_id="camera_optical", width=intr.width, height=intr.height,
                distortion_model=model, D=D,
                K=K, R=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], P=P))
        if "tf" in ch and ch["tf"].has_sinks():
            ch["tf"].log(frame_transform(self._cloud_server.config.frame, t))
        self.published += 1


def frame_transform(frame: str, t: float) -> Any:
    """``camera_optical`` as a child of ``camera_<frame>``: p_frame = R · p_optical, no translation."""
    from foxglove.messages import FrameTransform, Quaternion, Vector3
    from scipy.spatial.transform import Rotation

    from depthcloud.cloud import frame_rotation

    x, y, z, w = Rotation.from_matrix(frame_rotation("optical", frame)).as_quat()
    return FrameTransform(timestamp=_timestamp(t), parent_frame_id=f"camera_{frame}", child_frame_id="camera_optical",
                          translation=Vector3(x=0.0, y=0.0, z=0.0),
                          rotation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)))


@contextlib.asynccontextmanager
async def foxglove_bridge(server: CloudServer, host: str, port: int | None) -> AsyncIterator[FoxgloveBridge | None]:
    """A started :class:`FoxgloveBridge` on ``host:port`` for the CLI, or None when ``port`` is None."""
    if port is None:
        yield None
        return
    async with FoxgloveBridge(server, host=host, port=port) as bridge:
        yield bridge
