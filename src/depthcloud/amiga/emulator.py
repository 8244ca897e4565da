"""An OAK camera service without a camera: farm-ng-core's real ``EventServiceGrpc`` on loopback.

The emulator answers ``/calibration`` requests with an ``OakCalibration`` (built from a depthai
calibration JSON or taken from a recording) and publishes ``OakFrame`` messages on ``/disparity``
(and ``/left``, ``/right``, ``/rgb`` when a recording has them), as the camera service does. Any
client of farm-ng-core's ``EventClient`` — farm-ng's own examples included — talks to it unchanged.

Layouts: a service name without a slash (``oak0``) publishes ``/disparity``; an AmigaOS 2.3 name
(``oak/1``) publishes ``oak/1/disparity``. Subscriptions get every ``every_n``-th message, by the
service's own sequence numbers.

Frames come from :func:`planes_scene` (fronto-parallel planes at known distances: the disparity of
each is round(f·B/Z), 8-bit, as the camera computes it) or from a recorded event log, replayed with
payloads byte for byte.

The server binds 127.0.0.1 unless told otherwise (farm-ng's ``serve()`` binds every interface, so it
is not used). farm-ng-core counts messages per path in one process-wide object, so two emulators
in one process must use different names. This module must not import the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import InputError, MissingDependencyError, SourceError

from .client import disparity_model, stream_path
from .eventlog import EventLogReader
from .messages import OakMessages, encode_disparity, oak_messages

__all__ = ["OakEmulator", "Published", "Recording", "planes_disparity", "planes_scene", "recording_scene"]


@dataclass(frozen=True)
class Published:
    """One message to publish: the stream (``disparity``, ``left``, …) and the ``OakFrame``."""

    stream: str
    message: Any


def planes_disparity(
    width: int, height: int, focal_px: float, baseline_m: float, depths_m: Sequence[float]
) -> np.ndarray:
    """(height, width) uint8 disparity of fronto-parallel planes side by side, left to right.

    Plane i covers columns [i·W/n, (i+1)·W/n) and has disparity round(focal_px·baseline_m / Z_i),
    whole pixels as the OAK's 8-bit output (so its depth reads back as f·B/d, not exactly Z_i).
    """
    w = v.integer("width", width, low=1)
    h = v.integer("height", height, low=1)
    fb = v.number("focal_px", focal_px, positive=True) * v.number("baseline_m", baseline_m, positive=True)
    zs = [v.number("depths_m", z, positive=True) for z in depths_m]
    if not zs:
        raise InputError("depths_m: expected at least one plane distance")
    d = np.zeros((h, w), np.uint8)
    edges = np.linspace(0, w, len(zs) + 1).round().astype(int)
    for z, a, b in zip(zs, edges[:-1], edges[1:], strict=True):
        disp = round(fb / z)
        if not 1 <= disp <= 255:
            raise InputError(f"depths_m: a plane at {z} m has disparity {disp} px, outside the 8-bit 1..255")
        d[:, a:b] = disp
    return d


def planes_scene(
    calibration: Any,
    *,
    width: int = 640,
    height: int = 400,
    depths_m: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
    encoding: str = "jpeg",
    quality: int = 95,
    align_socket: int = 2,
    messages: OakMessages | None = None,
) -> Iterator[Published]:
    """Endless ``disparity`` OakFrames of :func:`planes_disparity` for this calibration's camera.

    The frames carry the OAK's 640×400 resolution by default, ``sequence_num`` counting from 0 and
    ``timestamp`` in host seconds. encoding: ``"jpeg"`` (as the service sends), ``"png"`` or ``"raw"``.
    """
    msgs = messages or oak_messages()
    model = disparity_model(calibration, width, height, align_socket=align_socket)
    image = encode_disparity(planes_disparity(width, height, model.focal_px, model.baseline_m, depths_m),
                             encoding=encoding, quality=quality)
    seq = 0
    while True:
        frame = msgs.OakFrame(image_data=image)
        frame.meta.sequence_num = seq
        frame.meta.timestamp = time.time()
        frame.meta.resolution.width = width
        frame.meta.resolution.height = height
        frame.meta.pixel_format = 2 if encoding == "raw" else 3  # RAW8 / Encoded
        yield Published("disparity", frame)
        seq += 1


@dataclass(frozen=True)
class Recording:
    """What an event log holds for the emulator: the calibration (or None), the OakFrames of every
    stream in file order, records skipped because their payload did not parse, and the log's
    truncation report (None when it ended on a whole record)."""

    calibration: Any | None
    frames: list[Published]
    skipped: list[str]
    problem: str | None


def recording_scene(path: str | PathLike[str], *, messages: OakMessages | None = None) -> Recording:
    """Read a recorded event log for replay. Payloads are parsed into ``OakFrame`` messages, which
    re-serialise to the same bytes; records of other types are left out."""
    msgs = messages or oak_messages()
    reader = EventLogReader(path)
    calibration = None
    frames: list[Published] = []
    skipped: list[str] = []
    for rec in reader:
        kind = rec.type_name.rsplit(".", 1)[-1]
        stream = rec.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            if kind == "OakCalibration" and calibration is None:
                calibration = msgs.OakCalibration.FromString(rec.payload)
            elif kind == "OakFrame":
                frames.append(Published(stream, msgs.OakFrame.FromString(rec.payload)))
        except Exception as exc:  # protobuf's DecodeError: one bad record must not lose the others
            skipped.append(f"record at byte {rec.offset} ({rec.path}): {exc}")
    return Recording(calibration, frames, skipped, reader.problem)


class OakEmulator:
    """An OAK camera service on farm-ng-core's ``EventServiceGrpc``.

    calibration: the ``OakCalibration`` message ``/calibration`` answers with.
    frames: what to publish, in order (:func:`planes_scene`, or ``recording_scene(...).frames``).
    name: the service name (``oak0``; ``oak/1`` for the AmigaOS 2.3 layout). host, port: where to
    listen; 127.0.0.1 by default, port 0 = a free port chosen now (see ``port`` after start).
    fps: publishing rate. loop: start ``frames`` over when they end (needs a sequence).
    wait_for_client: hold the first message until a subscriber takes it, so a replay is not lost
    to a client that connects a moment late.

    Use ``async with OakEmulator(...) as emu:`` or ``await start()`` / ``await stop()``;
    ``await emu.done()`` waits until a finite ``frames`` has been published.
    """

    def __init__(
        self,
        calibration: Any,
        frames: Sequence[Published] | Iterator[Published],
        *,
        name: str = "oak0",
        host: str = "127.0.0.1",
        port: int = 0,
        fps: float = 10.0,
        loop: bool = False,
        wait_for_client: bool = False,
        messages: OakMessages | None = None,
    ) -> None:
        self.messages = messages or oak_messages()
        if not (hasattr(calibration, "DESCRIPTOR") and calibration.DESCRIPTOR.name == "OakCalibration"):
            raise InputError(f"calibration: expected an OakCalibration message, got {type(calibration).__name__}")
        if not isinstance(name, str) or not name.strip("/"):
            raise InputError(f"name: expected a service name such as 'oak0' or 'oak/1', got {name!r}")
        if loop and not isinstance(frames, Sequence):
            raise InputError("frames: loop=True needs a list of frames, not an iterator")
        self.calibration = calibration
        self.frames = frames
        self.name = name
        self.host = host
        self.port = v.integer("port", port, low=0, high=65535)
        self.fps = v.number("fps", fps, positive=True)
        self.loop = loop
        self.wait_for_client = wait_for_client
        self.published = 0
        self.requests = 0
        self._server: Any = None
        self._service: Any = None
        self._task: asyncio.Task[None] | None = None

    def path(self, stream: str) -> str:
        """Where this service publishes ``stream``."""
        return stream_path(self.name, stream)

    async def __aenter__(self) -> OakEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> int:
        """Listen and start publishing; returns the port."""
        try:
            import grpc
            from farm_ng.core.event_service import EventServiceGrpc
            from farm_ng.core.event_service_pb2 import EventServiceConfig
        except ImportError as exc:
            raise MissingDependencyError.for_extra("farm-ng-core", "amiga") from exc
        # gRPC shares ports (SO_REUSEPORT) by default: a second emulator on a busy port would
        # silently split the clients between two services. Refuse instead.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        address = f"{self.host}:{self.port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if port == 0:
            await server.stop(None)
            raise SourceError(f"cannot listen on {address} (in use, or not an address of this machine)")
        self.port = port
        config = EventServiceConfig(name=self.name, port=port, host=self.host,
                                    log_level=EventServiceConfig.LogLevel.ERROR)
        self._service = EventServiceGrpc(server, config)
        self._service.add_request_reply_handler(self._on_request)
        # farm-ng-core keeps send counts (the events' sequence numbers, which every_n divides) in a
        # process-wide singleton; start this service's streams from 0 as a fresh camera does.
        streams = {"disparity", "left", "right", "rgb"}
        if isinstance(self.frames, Sequence):
            streams |= {item.stream for item in self.frames}
        for stream in streams:
            self._service.metrics.update_data(f"{self.path(stream)}/send_count", 0)
        await server.start()
        self._server = server
        self._task = asyncio.get_running_loop().create_task(self._publish_all())
        return port

    async def stop(self) -> None:
        """Stop publishing and close the server (subscribers' streams end)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._server is not None:
            await self._server.stop(grace=0.2)
            self._server = None

    async def done(self) -> None:
        """Wait until every frame has been published (never returns for endless frames)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _on_request(self, request: Any) -> Any:
        from google.protobuf.empty_pb2 import Empty

        self.requests += 1
        if request.event.uri.path.rstrip("/").endswith("calibration"):
            return self.calibration
        return Empty()

    def _items(self) -> Iterator[Published]:
        while True:
            yield from self.frames
            if not self.loop:
                return

    async def _publish_all(self) -> None:
        period = 1.0 / self.fps
        clock = asyncio.get_running_loop()
        next_t = clock.time()
        waiting = self.wait_for_client
        for item in self._items():
            while True:
                result = await self._service.publish(self.path(item.stream), item.message)
                if not waiting or result.number_clients > 0:
                    break
                await asyncio.sleep(min(period, 0.05))
            waiting = False
            self.published += 1
            next_t = max(next_t + period, clock.time())
            await asyncio.sleep(next_t - clock.time())
