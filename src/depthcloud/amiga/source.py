"""The Amiga as a :class:`~depthcloud.sources.base.FrameSource`: ``amiga:service_config.json`` (a live
OAK camera service) or ``amiga:events.bin`` (a recorded event log, replayed without a network).

Frames carry depth in float32 metres (Z = f·B/d from the 8-bit disparity), the intrinsics of the camera
the disparity is aligned to at the disparity resolution, the OAK's sequence number and timestamp.
This module must not import the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from depthcloud import _validate as v
from depthcloud.errors import ConfigError, DepthcloudError, FormatError, SourceError
from depthcloud.frame import Frame
from depthcloud.sources.base import FrameSource

from .client import ClientStats, DisparityModels, OakClient, read_service_config
from .emulator import recording_scene
from .messages import decode_disparity

__all__ = ["AmigaSource", "open_amiga_source", "replay_frames"]


async def replay_frames(
    path: str | Path, *, align_socket: int = 2, fps: float | None = None, stats: ClientStats | None = None
) -> AsyncIterator[Frame]:
    """Depth Frames from the ``disparity`` messages of a recorded event log, in file order.

    fps: pace them (None = as fast as they are taken). A log without a calibration raises FormatError.
    A corrupt frame is skipped and, when ``stats`` is given, counted there with the reason.
    """
    rec = recording_scene(path)
    if rec.calibration is None:
        raise FormatError("no OakCalibration in this event log; record it with 'depthcloud amiga record'", path=path)
    period = None if fps is None else 1.0 / v.number("fps", fps, positive=True)
    models = DisparityModels(rec.calibration, align_socket=align_socket)
    for item in rec.frames:
        if item.stream != "disparity":
            continue
        meta = item.message.meta
        try:
            disp = decode_disparity(item.message.image_data, width=meta.resolution.width,
                                    height=meta.resolution.height)
        except FormatError as exc:
            if stats is not None:
                stats.corrupt += 1
                stats.problems.append(f"frame {meta.sequence_num}: {exc.message}")
            continue
        if stats is not None:
            stats.decoded += 1
        model = models(disp)
        yield Frame(model.depth(disp), model.intrinsics, seq=int(meta.sequence_num), stamp=float(meta.timestamp),
                    frame_id="oak")
        if period is not None:
            await asyncio.sleep(period)


class AmigaSource(FrameSource):
    """Frames from an OAK camera service (``service_config.json``) or an event log (``.bin``).

    options: every_n, timeout_s (live), fps (replay pacing), align_socket, name (the service in a
    multi-service config). A recording replayed without ``fps`` is lossless: each frame waits until the
    consumer took the previous one, so every recorded frame is delivered; with ``fps`` (or live) the
    newest frame wins and a slow consumer skips frames (counted as dropped).
    """

    def __init__(
        self,
        target: str | Path,
        *,
        every_n: int | None = None,
        timeout_s: float = 5.0,
        fps: float | None = None,
        align_socket: int = 2,
        name: str | None = None,
    ) -> None:
        super().__init__(f"amiga:{target}")
        self.target = Path(target)
        self.every_n = every_n
        self.timeout_s = timeout_s
        self.fps = fps
        self.align_socket = align_socket
        self.service = name
        self.lossless = self.target.suffix == ".bin" and fps is None
        self._client: OakClient | None = None
        # Frames decoded and corrupt frames skipped (with why): the replay's own, or the client's.
        self.decode_stats = ClientStats()
        self._task: asyncio.Task[None] | None = None

    def _frames(self) -> AsyncIterator[Frame]:
        if self.target.suffix == ".bin":
            return replay_frames(self.target, align_socket=self.align_socket, fps=self.fps, stats=self.decode_stats)
        config = read_service_config(self.target, name=self.service)
        self._client = OakClient(config, timeout_s=self.timeout_s)
        self.decode_stats = self._client.stats
        return self._client.frames(every_n=self.every_n, align_socket=self.align_socket)

    async def _start(self) -> None:
        frames = self._frames()
        # The first frame proves the service (or file) works; open fails loudly rather than later.
        try:
            first = await anext(frames)
        except StopAsyncIteration:
            raise SourceError(f"{self.name}: no disparity frames") from None
        self._publish(first)
        self._task = asyncio.get_running_loop().create_task(self._pump(frames))

    async def _pump(self, frames: AsyncIterator[Frame]) -> None:
        try:
            async for frame in frames:
                if self.lossless:
                    await self._await_taken()
                self._publish(frame)
        except DepthcloudError as exc:  # a lost service, a corrupt recording: the consumer hears of it
            self._set_state("failed", str(exc))
            return
        self._end()

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.close()
            self._client = None


def open_amiga_source(arg: str, **options: Any) -> AmigaSource:
    """The ``amiga:CONFIG`` source spec: CONFIG is a ``service_config.json`` or a recorded ``.bin``."""
    if not arg:
        raise ConfigError("amiga: expected 'amiga:service_config.json' or 'amiga:events.bin'")
    return AmigaSource(arg, **options)
