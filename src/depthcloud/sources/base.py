"""The FrameSource contract: async, newest-frame-wins streams of :class:`~depthcloud.frame.Frame`.

A consumer does::

    async with open_source("synthetic:640x480@30") as source:
        async for frame in source:          # always the newest frame; a slow consumer skips
            ...
        frame = await source.next_frame(timeout_s=1.0)   # SourceTimeout / SourceError / SourceEnded

A source keeps ONE slot: the newest frame. Publishing over a frame nobody took counts it as
``dropped`` (skipped by a slow consumer); a generating source that cannot keep its own rate counts
``missed`` (frames lost at the source). Nothing ever queues up.

:class:`ThreadedSource` runs blocking capture (``_open``/``_read``/``_close``) in a thread off the
event loop and applies a :class:`ReconnectPolicy` when ``_read`` raises :class:`SourceError`.
Sources that are async by nature subclass :class:`FrameSource` directly, implement ``_start`` and
``_stop``, and call ``_publish``/``_set_state``/``_end`` from the event loop or any thread.

This module must not import the server or the CLI.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from depthcloud import _validate as v
from depthcloud.errors import SourceError, SourceTimeout
from depthcloud.frame import Frame

__all__ = [
    "FrameSource",
    "RateLimiter",
    "ReconnectPolicy",
    "SourceEnded",
    "SourceState",
    "SourceStats",
    "ThreadedSource",
]

SourceState = Literal["starting", "running", "reconnecting", "failed", "stopped"]


class SourceEnded(SourceError):
    """A finite source (a recording without loop, a frame limit) has delivered its last frame."""


@dataclass(frozen=True)
class SourceStats:
    """A snapshot of a source.

    state: "starting" | "running" | "reconnecting" | "failed" | "stopped".
    frames: frames published; dropped: published frames no consumer took (overwritten by a newer one);
    missed: frames lost at the source (a generator behind its rate, a recording's gaps);
    fps: publish rate over the last second or so; last_error: the latest error text, or None;
    last_stamp: the stamp (seconds) of the newest frame, or None; reconnects: reopen attempts so far.
    """

    state: SourceState
    frames: int
    dropped: int
    missed: int
    fps: float
    last_error: str | None
    last_stamp: float | None
    reconnects: int


@dataclass(frozen=True)
class ReconnectPolicy:
    """What a source does when capture fails (``_read`` raises SourceError).

    max_retries: reopen attempts in a row before the source gives up ("failed"); 0 = fail at once.
    backoff_s: the first wait; each further attempt waits ``backoff_factor`` times longer, at most
    ``max_backoff_s``.
    """

    max_retries: int = 5
    backoff_s: float = 0.5
    backoff_factor: float = 2.0
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        v.integer("reconnect.max_retries", self.max_retries, low=0)
        v.number("reconnect.backoff_s", self.backoff_s, nonnegative=True)
        v.number("reconnect.backoff_factor", self.backoff_factor, low=1.0)
        v.number("reconnect.max_backoff_s", self.max_backoff_s, nonnegative=True)

    def delay_s(self, attempt: int) -> float:
        """The wait before reopen attempt ``attempt`` (1-based)."""
        return min(self.max_backoff_s, self.backoff_s * self.backoff_factor ** (attempt - 1))


class RateLimiter:
    """Paces a generating loop at ``rate_hz`` on the monotonic clock.

    A loop that wakes late (a busy machine) catches up by running the pending ticks back to back, as a
    camera's frame buffer would, as long as it is at most ``max_lag`` ticks behind; ticks older than
    that are skipped and reported as missed.
    """

    def __init__(self, rate_hz: float, *, max_lag: int = 4) -> None:
        self.period_s = 1.0 / v.number("rate_hz", rate_hz, positive=True)
        self.max_lag = v.integer("max_lag", max_lag, low=0)
        self._next: float | None = None

    def wait(self, stop: threading.Event) -> int:
        """Sleep until the next tick; return how many ticks were skipped (-1 if ``stop`` was set)."""
        now = time.monotonic()
        if self._next is None:
            self._next = now
            return 0
        self._next += self.period_s
        missed = 0
        behind = now - self._next
        if behind > self.max_lag * self.period_s:
            missed = math.floor(behind / self.period_s) - self.max_lag
            self._next += missed * self.period_s
        delay = self._next - now
        if delay > 0 and stop.wait(delay):
            return -1
        return -1 if stop.is_set() else missed


class FrameSource(ABC):
    """An async stream of Frames; see the module docstring for the contract.

    Subclasses implement ``async _start()`` (open; raise SourceError on failure) and ``async _stop()``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._taken_cond = threading.Condition(self._lock)
        self._latest: Frame | None = None
        self._published = 0  # frames published so far
        self._taken = 0  # value of _published when the consumer last took a frame
        self._dropped = 0
        self._missed = 0
        self._reconnects = 0
        self._state: SourceState = "stopped"
        self._ended = False
        self._error: str | None = None
        self._times: collections.deque[float] = collections.deque(maxlen=64)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._taken_wake: asyncio.Event | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state}>"

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the source; raises SourceError (or a subclass error) when it cannot be opened."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._taken_wake = asyncio.Event()
        self._ended = False
        self._set_state("starting")
        try:
            await self._start()
        except BaseException as exc:
            self._set_state("failed", str(exc))
            raise
        self._started = True
        with self._lock:
            if self._state == "starting":
                self._state = "running"

    async def stop(self) -> None:
        """Stop capture and release the device or file; idempotent."""
        if not self._started:
            return
        self._started = False
        try:
            await self._stop()
        finally:
            with self._lock:
                if self._state != "failed":
                    self._state = "stopped"
            self._notify()

    @abstractmethod
    async def _start(self) -> None: ...

    @abstractmethod
    async def _stop(self) -> None: ...

    async def __aenter__(self) -> FrameSource:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- consuming --------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Frame]:
        return self

    async def __anext__(self) -> Frame:
        try:
            return await self.next_frame()
        except SourceEnded:
            raise StopAsyncIteration from None

    async def next_frame(self, *, timeout_s: float | None = None) -> Frame:
        """The newest frame newer than the last one returned.

        Raises SourceTimeout when none comes within ``timeout_s`` seconds (None = wait as long as the
        source lives), SourceEnded after a finite source's last frame, SourceError when the source
        failed for good or is not started.
        """
        limit = None if timeout_s is None else v.number("timeout_s", timeout_s, nonnegative=True)
        if self._wake is None:
            raise SourceError(f"{self.name}: not started; use 'async with source:' or await source.start()")
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            self._wake.clear()
            with self._lock:
                if self._published > self._taken and self._latest is not None:
                    self._taken = self._published
                    self._taken_cond.notify_all()
                    if self._taken_wake is not None:
                        self._taken_wake.set()
                    return self._latest
                state, error, ended = self._state, self._error, self._ended
            if state == "failed":
                raise SourceError(f"{self.name}: failed: {error}")
            if ended:
                raise SourceEnded(f"{self.name}: ended after {self._published} frames")
            if state == "stopped":
                raise SourceError(f"{self.name}: stopped")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise SourceTimeout(f"{self.name}: no frame within {limit:g} s (state {state})")
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                continue

    @property
    def stats(self) -> SourceStats:
        with self._lock:
            times = list(self._times)
            fps = 0.0
            if len(times) >= 2:
                now = time.monotonic()
                recent = [t for t in times if now - t <= 2.0]
                if len(recent) >= 2 and recent[-1] > recent[0]:
                    fps = (len(recent) - 1) / (recent[-1] - recent[0])
            return SourceStats(
                state=self._state, frames=self._published, dropped=self._dropped, missed=self._missed,
                fps=fps, last_error=self._error, last_stamp=None if self._latest is None else self._latest.stamp,
                reconnects=self._reconnects,
            )

    # -- for implementations (any thread) ---------------------------------------------------------
    def _publish(self, frame: Frame) -> None:
        """Make ``frame`` the newest; an untaken previous frame counts as dropped."""
        with self._lock:
            if self._published > self._taken:
                self._dropped += 1
            self._latest = frame
            self._published += 1
            self._times.append(time.monotonic())
        self._notify()

    async def _await_taken(self) -> None:
        """Wait (on the event loop) until the consumer has taken the newest frame: a lossless async
        source (a file played as fast as it is read) calls this before publishing the next one."""
        wake = self._taken_wake
        while wake is not None:
            wake.clear()
            with self._lock:
                if self._published <= self._taken or self._state in ("stopped", "failed"):
                    return
            await wake.wait()

    def _count_missed(self, n: int) -> None:
        if n > 0:
            with self._lock:
                self._missed += n

    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._error = error
            if state == "reconnecting":
                self._reconnects += 1
        self._notify()

    def _end(self) -> None:
        """A finite source has no more frames; the frame in the slot can still be taken."""
        with self._lock:
            self._ended = True
        self._notify()

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            # The loop may close between the check above and this call (a consumer that is gone).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)


class ThreadedSource(FrameSource):
    """A source whose capture is blocking: it runs in a daemon thread off the event loop.

    Subclasses implement ``_open()`` (raise SourceError when the device/file cannot be opened),
    ``_read() -> Frame | None`` (block for the next frame; None = end of stream; SourceError = lost,
    reconnect per policy; any other exception = failed for good) and ``_close()``. The first
    ``_open`` runs in ``start()``, so a missing device or file raises there. ``self._stop_event`` is
    set when stopping; blocking waits should use it.
    """

    #: how long stop() waits for the capture thread to finish its current read
    join_timeout_s = 5.0
    #: True: wait for the consumer to take each frame before publishing the next (recordings played
    #: as fast as possible lose nothing); False: newest frame wins, skipped ones count as dropped.
    lossless = False

    def __init__(self, name: str, *, reconnect: ReconnectPolicy | None = None) -> None:
        super().__init__(name)
        self.reconnect = reconnect or ReconnectPolicy()
        if not isinstance(self.reconnect, ReconnectPolicy):
            raise SourceError(f"reconnect: expected ReconnectPolicy, got {type(self.reconnect).__name__}")
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self) -> Frame | None: ...

    @abstractmethod
    def _close(self) -> None: ...

    async def _start(self) -> None:
        self._stop_event.clear()
        await asyncio.to_thread(self._open)
        self._set_state("running")
        self._thread = threading.Thread(target=self._capture, name=f"depthcloud-{self.name}", daemon=True)
        self._thread.start()

    async def _stop(self) -> None:
        self._stop_event.set()
        thread = self._thread
        if thread is not None:
            await asyncio.to_thread(thread.join, self.join_timeout_s)
        self._thread = None

    def _safe_close(self) -> None:
        # Closing a device that is already gone may fail; there is nothing left to do about it.
        with contextlib.suppress(Exception):
            self._close()

    def _wait_taken(self) -> None:
        with self._taken_cond:
            while self._published > self._taken and not self._stop_event.is_set():
                self._taken_cond.wait(0.1)

    def _capture(self) -> None:
        failures = 0
        is_open = True
        try:
            while not self._stop_event.is_set():
                try:
                    if not is_open:
                        self._open()
                        is_open = True
                        failures = 0
                        self._set_state("running")
                    frame = self._read()
                except SourceError as exc:
                    self._safe_close()
                    is_open = False
                    failures += 1
                    if failures > self.reconnect.max_retries:
                        self._set_state("failed", f"{exc} (gave up after {failures - 1} reconnect attempts)")
                        return
                    self._set_state("reconnecting", str(exc))
                    self._stop_event.wait(self.reconnect.delay_s(failures))
                    continue
                except Exception as exc:
                    self._set_state("failed", f"{type(exc).__name__}: {exc}")
                    return
                if frame is None:
                    if not self._stop_event.is_set():
                        self._end()
                    return
                if self.lossless:
                    self._wait_taken()
                self._publish(frame)
        finally:
            if is_open:
                self._safe_close()
