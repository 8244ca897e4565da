"""The point-cloud server: the newest cloud on demand over websocket and HTTP, on one port.

Shape of the work:

* A **worker thread** with its own event loop drives the frame source, applies the filters at full
  resolution and publishes a :class:`Snapshot` (seq, frame, the cloud at the default decimation).
  Capture and filtering never run on the server's event loop, so a slow client cannot stall them.
  When the source fails for good the worker reopens it (backoff up to 5 s) and the failure shows in
  ``/health`` and in the replies; when it comes back, serving resumes by itself.
* Clouds at other **decimation magnitudes** (compatible-mode clients pick 1–8) are derived lazily
  from the snapshot's full-resolution frame and cached on the snapshot: no capture per client.
* Per request only the **encoding** runs, in a small thread pool, **cached** per (seq, what was
  asked): fifty clients asking for the same frame share one encoding. The cache is dropped when the
  next snapshot arrives.
* **Subscribers** get the newest cloud each time; a slow one skips the clouds it had no time for
  (nothing queues per client beyond the one message being written).

Routes (one port): websocket ``/`` (compatible mode), websocket ``/v1`` (binary mode), HTTP
``/view`` (the browser viewer, see ``viewer_assets.py``), ``/cloud.ply``, ``/cloud.pcd``, ``/cloud.json``,
``/health``, ``/metrics``. See docs/protocol.md.

This module must not parse command lines; the CLI builds a :class:`ServeConfig` and calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import http
import ipaddress
import json
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from depthcloud.cloud import PointCloud
from depthcloud.errors import (
    ConfigError,
    DepthcloudError,
    InputError,
    MissingDependencyError,
    SourceError,
    SourceTimeout,
)
from depthcloud.frame import Frame
from depthcloud.pipeline import CloudPipeline
from depthcloud.serve import protocol, viewer_assets
from depthcloud.serve.config import ServeConfig
from depthcloud.sources.base import SourceEnded

__all__ = ["MAX_REQUEST_BYTES", "CloudServer", "Snapshot", "is_loopback"]

log = logging.getLogger("depthcloud.serve")

#: the largest message a client may send; requests are small JSON or a digit
MAX_REQUEST_BYTES = 64 * 1024
#: how long a request that arrives before the first frame (the source is starting) waits for it
FIRST_FRAME_WAIT_S = 3.0
#: a recording (bag:, replay:, amiga:FILE.bin) that fails this many times in a row without giving a
#: frame is "failed" for good: a file that cannot be read will not become readable by retrying
MAX_FILE_FAILURES = 3
#: without a request for this long, cached encodings are released and freed memory given back
IDLE_RELEASE_S = 2.0
#: at most this many encodings (one per distinct request) are kept
_CACHE_KEYS = 32
_POLL_S = 0.25  # how often the worker looks at the source's state between frames
_RESTART_BACKOFF_S = (0.2, 5.0)
_CLOSE_GRACE_S = 1.0  # how long stop() lets connections close politely before cutting them


def release_memory() -> bool:
    """Give freed heap memory back to the operating system (glibc's malloc_trim); False elsewhere."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process already runs on
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def bound_port(server: Any) -> int:
    """The TCP port a started websockets server listens on (useful with ``port=0``)."""
    if server is None:
        raise InputError("the server is not started")
    return int(next(iter(server.sockets)).getsockname()[1])


def url_host(host: str) -> str:
    """``host`` as it goes into a URL: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    """True when ``host`` binds only this machine (``localhost``, 127.x, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Snapshot:
    """The newest processed frame: ``seq`` counts snapshots since the server started.

    frame: the filtered full-resolution Frame; clouds per magnitude are made on first use and kept.
    """

    def __init__(self, seq: int, frame: Frame, pipeline: CloudPipeline, default_magnitude: int) -> None:
        self.seq = seq
        self.frame = frame
        self.stamp = frame.stamp
        self.made = time.monotonic()
        self.default_magnitude = default_magnitude
        self._pipeline = pipeline
        self._clouds: dict[int, PointCloud] = {}
        self._lock = threading.Lock()

    def cloud(self, magnitude: int | None = None) -> PointCloud:
        m = self.default_magnitude if magnitude is None else magnitude
        with self._lock:
            found = self._clouds.get(m)
            if found is None:
                found = self._clouds[m] = self._pipeline.cloud(self.frame, m)
            return found

    def forget_extra_clouds(self) -> None:
        """Drop the clouds made for other magnitudes than the default (made again when asked)."""
        with self._lock:
            self._clouds = {m: c for m, c in self._clouds.items() if m == self.default_magnitude}


@dataclass(frozen=True)
class WorkerStatus:
    state: str  # starting | running | reconnecting | failed | stalled | stopped
    last_error: str | None
    fps: float
    frames: int
    dropped: int
    restarts: int
    loops: int = 0


class _Worker:
    """Runs the source in its own thread and event loop; publishes snapshots to the server."""

    def __init__(
        self,
        first_source: Any,
        factory: Callable[[], Any],
        pipeline: CloudPipeline,
        config: ServeConfig,
        publish: Callable[[Snapshot | None], None],
    ) -> None:
        self._next_source = first_source
        self._factory = factory
        self._pipeline = pipeline
        self._config = config
        self._publish = publish
        self._source: Any = None
        self._seq = 0
        self._restarts = 0
        self._loops = 0
        self._frames = 0
        self._last_error: str | None = None
        self._state = "starting"
        self._last_frame_at = 0.0
        self._times: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._main, name="depthcloud-serve-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout_s)

    def status(self) -> WorkerStatus:
        with self._lock:
            source, state, error = self._source, self._state, self._last_error
            now = time.monotonic()
            recent = [t for t in self._times if now - t <= 2.0]
            fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) >= 2 and recent[-1] > recent[0] else 0.0
            stalled = self._frames > 0 and now - self._last_frame_at > self._config.source_timeout_s
        dropped = 0
        if source is not None:
            stats = source.stats
            dropped = stats.dropped
            if state == "running" and stats.state != "running":
                state, error = stats.state, stats.last_error or error
        if state == "running" and stalled:
            state = "stalled"
            error = f"no frame for more than {self._config.source_timeout_s:g} s"
        return WorkerStatus(state, error, fps, self._frames, dropped, self._restarts, self._loops)

    def _set(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self._state = state
            if error is not None:
                self._last_error = error
        self._publish(None)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        if self._stopping.is_set():
            return
        backoff = _RESTART_BACKOFF_S[0]
        failures = 0  # in a row, without a frame in between
        try:
            while not self._stopping.is_set():
                source, self._next_source = self._next_source, None
                frames_before = self._frames
                try:
                    if source is None:
                        source = self._factory()
                    with self._lock:
                        self._source = source
                    async with source:
                        self._pipeline.reset()
                        self._set("running")
                        await self._stream(source)
                        backoff = _RESTART_BACKOFF_S[0]
                except SourceEnded as exc:
                    # A finite source that cannot loop by itself is replayed: its last cloud stays
                    # served meanwhile. A replay is not a failure: counted as a loop, logged at DEBUG.
                    log.debug("%s; playing it again", exc)
                    with self._lock:
                        self._source = None
                        self._loops += 1
                    failures = 0
                    await asyncio.sleep(_RESTART_BACKOFF_S[0])
                    continue
                except SourceError as exc:
                    failures = 0 if self._frames > frames_before else failures + 1
                    if self._give_up(failures, str(exc)):
                        return
                    log.warning("source failed: %s; reopening in %.1f s", exc, backoff)
                    self._set("reconnecting", str(exc))
                except DepthcloudError as exc:
                    failures = 0 if self._frames > frames_before else failures + 1
                    if self._give_up(failures, str(exc)):
                        return
                    log.warning("processing failed: %s; reopening in %.1f s", exc, backoff)
                    self._set("reconnecting", str(exc))
                with self._lock:
                    self._source = None
                if self._stopping.is_set():
                    break
                self._restarts += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _RESTART_BACKOFF_S[1])
        except asyncio.CancelledError:
            pass
        finally:
            if self._state != "failed":
                self._set("stopped")

    def _give_up(self, failures: int, error: str) -> bool:
        """A recording that failed MAX_FILE_FAILURES times in a row without a frame: "failed" for good."""
        from depthcloud.sources import is_recording

        if not (is_recording(self._config.source) and failures >= MAX_FILE_FAILURES):
            return False
        message = f"{error} (gave up after {failures} tries: the recording cannot be read)"
        log.error("source failed for good: %s", message)
        with self._lock:
            self._source = None
        self._set("failed", message)
        return True

    async def _stream(self, source: Any) -> None:
        seen_state = "running"
        # The stop flag, not only cancellation: Python 3.11's wait_for (inside next_frame) can
        # swallow a cancel that lands as a frame arrives.
        while not self._stopping.is_set():
            try:
                frame = await source.next_frame(timeout_s=_POLL_S)
            except SourceTimeout:
                state = self.status().state
                if state != seen_state:
                    seen_state = state
                    self._publish(None)
                continue
            prepared = self._pipeline.prepare(frame)
            self._seq += 1
            snap = Snapshot(self._seq, prepared, self._pipeline, self._config.decimation)
            snap.cloud()  # the default cloud is made here, off the server's loop
            now = time.monotonic()
            with self._lock:
                self._frames += 1
                self._last_frame_at = now
                self._times = [*self._times[-63:], now]
            seen_state = "running"
            self._publish(snap)


class _Unavailable(Exception):
    """A request that cannot be served now; ``code`` goes to binary clients, ``status`` to HTTP."""

    def __init__(self, code: str, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class _Counters:
    requests: dict[str, int]
    errors: dict[str, int]
    bytes_sent: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    connections_total: int = 0
    rejected: int = 0


class CloudServer:
    """The websocket + HTTP server. Use as ``async with CloudServer(config) as server:``.

    config: what to serve and how (see :class:`ServeConfig`; ``port=0`` picks a free port).
    source_factory: makes a new, unstarted FrameSource each time the source is (re)opened;
    default ``open_source(config.source)``. The first source is made in :meth:`start`, so a bad
    spec raises there.
    """

    def __init__(self, config: ServeConfig, *, source_factory: Callable[[], Any] | None = None) -> None:
        if not isinstance(config, ServeConfig):
            raise InputError(f"config: expected ServeConfig, got {type(config).__name__}")
        self.config = config
        if source_factory is None:
            from depthcloud.sources import open_source, source_options

            # A recording that can loop by itself does (colour and pacing carry over; no reopening).
            loop = {"loop": True} if "loop" in (source_options(config.source) or ()) else {}

            def source_factory() -> Any:
                return open_source(config.source, **loop)

        self._factory = source_factory
        self._pipeline = CloudPipeline(config.cloud_options())
        self._snapshot: Snapshot | None = None
        self._changed = asyncio.Event()
        # key of a request → (seq, its encoding): one per key, the newest (see _encoded).
        self._cache: dict[tuple[Any, ...], tuple[int, asyncio.Future[bytes]]] = {}
        self._last_request = time.monotonic()
        self._janitor: asyncio.Task[None] | None = None
        self._connections: set[Any] = set()
        self._counters = _Counters(requests={}, errors={})
        self._max_out = int(config.max_message_mb * 2**20)
        self._started_at = time.monotonic()
        self._server: Any = None
        self._worker: _Worker | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[Snapshot], None]] = []

    def add_listener(self, listener: Callable[[Snapshot], None]) -> None:
        """Call ``listener(snapshot)`` on the server's event loop for each new snapshot (it must
        return at once: hand heavy work to a thread, as the Foxglove bridge does)."""
        self._listeners.append(listener)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> CloudServer:
        """Make the first source, bind the port and start the worker."""
        try:
            from websockets.asyncio.server import serve
        except ImportError as exc:
            raise MissingDependencyError.for_extra("websockets", "serve") from exc
        first = self._factory()
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="depthcloud-encode")
        if not is_loopback(self.config.host):
            if not self.config.token and not self.config.insecure:
                self._executor.shutdown(wait=False)
                raise ConfigError(
                    f"binding {self.config.host} makes the clouds reachable from other machines, and no token is "
                    "set: give --token TOKEN (clients send it), or --insecure to serve anyone", key="host")
            log.warning("binding %s: the server is reachable from other machines%s", self.config.host,
                        "" if self.config.token else " and anyone may connect (--insecure)")
        try:
            self._server = await serve(
                self._handle, self.config.host, self.config.port,
                process_request=self._process_request, max_size=MAX_REQUEST_BYTES, compression=None,
                max_queue=4, write_limit=2**16, close_timeout=2, logger=log.getChild("websockets"),
            )
        except OSError as exc:
            self._executor.shutdown(wait=False)
            raise ConfigError(f"cannot listen on {self.config.host}:{self.config.port} ({exc.strerror or exc})",
                              key="port") from exc
        self._worker = _Worker(first, self._factory, self._pipeline, self.config, self._publish_threadsafe)
        self._worker.start()
        self._started_at = time.monotonic()
        self._janitor = asyncio.create_task(self._release_when_idle())
        return self

    async def stop(self) -> None:
        """Close every connection, stop the worker and the encoders; idempotent and prompt.

        Connections get a close frame; one that cannot take it within a second (a client that stopped
        reading has a full socket) is cut, so stopping never waits on a client.
        """
        await _cancel(self._janitor)
        self._janitor = None
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), _CLOSE_GRACE_S)
            except TimeoutError:
                for ws in list(self._connections):
                    ws.transport.abort()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._server.wait_closed(), 5 * _CLOSE_GRACE_S)
            self._server = None
        if self._worker is not None:
            await asyncio.to_thread(self._worker.stop)
            self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._cache.clear()

    async def __aenter__(self) -> CloudServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Serve until cancelled (Ctrl-C in the CLI)."""
        if self._server is None:
            await self.start()
        await self._server.serve_forever()

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``)."""
        return bound_port(self._server)

    @property
    def url(self) -> str:
        return f"ws://{url_host(self.config.host)}:{self.port}"

    @property
    def snapshot(self) -> Snapshot | None:
        """The newest snapshot (None before the first frame)."""
        return self._snapshot

    # -- worker → loop ----------------------------------------------------------------------------
    def _publish_threadsafe(self, snap: Snapshot | None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(self._on_publish, snap)

    def _on_publish(self, snap: Snapshot | None) -> None:
        if snap is not None:
            self._snapshot = snap
            for listener in self._listeners:
                try:
                    listener(snap)
                except Exception:  # a broken listener must not stop serving
                    log.exception("snapshot listener %r failed", listener)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _release_when_idle(self) -> None:
        """Without requests for IDLE_RELEASE_S: drop the cached encodings and the snapshot's extra
        clouds, and give the freed memory back to the system (once per idle period)."""
        released = True
        while True:
            await asyncio.sleep(IDLE_RELEASE_S / 4)
            idle = time.monotonic() - self._last_request > IDLE_RELEASE_S
            if not idle:
                released = False
            elif not released:
                self._cache = {k: e for k, e in self._cache.items() if not e[1].done()}
                snap = self._snapshot
                if snap is not None:
                    snap.forget_extra_clouds()
                await asyncio.to_thread(release_memory)  # trimming a large heap takes a moment
                released = True

    # -- what can be served -----------------------------------------------------------------------
    def status(self) -> WorkerStatus:
        if self._worker is None:
            return WorkerStatus("stopped", None, 0.0, 0, 0, 0)
        return self._worker.status()

    async def _available_soon(self) -> Snapshot:
        """:meth:`_available`, but a request made before the first frame (the source is starting)
        waits for that frame, at most FIRST_FRAME_WAIT_S, instead of being told to come back."""
        self._last_request = time.monotonic()
        deadline = time.monotonic() + FIRST_FRAME_WAIT_S
        while True:
            changed = self._changed
            try:
                return self._available()
            except _Unavailable as exc:
                remaining = deadline - time.monotonic()
                if self._snapshot is not None or exc.code not in ("source_starting", "no_frame") or remaining <= 0:
                    raise
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _available(self) -> Snapshot:
        st = self.status()
        if st.state != "running":
            detail = f": {st.last_error}" if st.last_error else ""
            raise _Unavailable(f"source_{st.state}", f"the source is {st.state}{detail}")
        snap = self._snapshot
        if snap is None:
            raise _Unavailable("no_frame", "no frame from the source yet; try again shortly")
        return snap

    async def _encoded(self, snap: Snapshot, key: tuple[Any, ...], make: Callable[[], bytes]) -> tuple[int, bytes]:
        """(seq, bytes) of ``snap`` encoded for ``key`` (what the request asked), shared by every client.

        One encoding per key is kept, the newest. While one is being made, requests for that key join
        it instead of starting another, even when a newer frame has arrived meanwhile (their reply is
        then at most one encoding old). So encode work never queues up behind many clients — latency
        stays about one encoding — and memory holds one encoding per key, whatever the client count.
        """
        self._last_request = time.monotonic()
        entry = self._cache.get(key)
        if entry is not None and (entry[0] >= snap.seq or not entry[1].done()):
            self._counters.cache_hits += 1
            seq, fut = entry
        else:
            self._counters.cache_misses += 1
            assert self._loop is not None and self._executor is not None
            seq, fut = snap.seq, self._loop.run_in_executor(self._executor, make)
            fut.add_done_callback(_retrieve)
            self._cache.pop(key, None)
            self._cache[key] = (seq, fut)
            for old in [k for k, (_, f) in self._cache.items() if f.done()][: max(0, len(self._cache) - _CACHE_KEYS)]:
                del self._cache[old]  # least recently made first
        data = await asyncio.shield(fut)
        if len(data) > self._max_out:
            raise _Unavailable(
                "too_large",
                f"the reply would be {len(data) / 2**20:.1f} MiB, over the server's limit of "
                f"{self.config.max_message_mb:g} MiB; ask for fewer points (max_points, a higher "
                "decimation) or compression",
                status=413,
            )
        return seq, data

    def _compat_bytes(self, snap: Snapshot, magnitude: int) -> Awaitable[tuple[int, bytes]]:
        return self._encoded(snap, ("compat", magnitude),
                             lambda: protocol.encode_compat(snap.cloud(magnitude).points))

    def _compact(self, snap: Snapshot, req: protocol.Request) -> bytes:
        """The ``compact`` message (depth image, JPEG colour, intrinsics) of a snapshot's frame."""
        cfg = self.config
        if cfg.voxel_m > 0:
            raise InputError("encoding compact sends the depth image, which the server's voxel grid (--voxel) "
                             "cannot apply to; ask for f32 points")
        f = self._pipeline.decimated(snap.frame, req.decimation or snap.default_magnitude)
        return protocol.encode_compact(f.depth, f.intrinsics, seq=snap.seq, color=f.color if req.colors else None,
                                       stamp=f.stamp, frame=cfg.frame, min_depth_m=cfg.min_depth_m,
                                       max_depth_m=cfg.max_depth_m, compress=req.compress)

    def _binary_bytes(self, snap: Snapshot, req: protocol.Request) -> Awaitable[tuple[int, bytes]]:
        def make() -> bytes:
            if req.encoding == "compact":
                return self._compact(snap, req)
            return protocol.encode_cloud(
                snap.cloud(req.decimation), seq=snap.seq, encoding=req.encoding, colors=req.colors,
                compress=req.compress, max_points=req.max_points,
            )
        return self._encoded(snap, ("v1", req.decimation, *req.cache_key()), make)

    # -- websocket sessions -----------------------------------------------------------------------
    async def _handle(self, ws: Any) -> None:
        if len(self._connections) >= self.config.max_clients:
            self._counters.rejected += 1
            await ws.close(1013, f"too many clients (limit {self.config.max_clients})")
            return
        self._connections.add(ws)
        self._counters.connections_total += 1
        path = urlsplit(ws.request.path).path
        try:
            if path == "/v1":
                await self._binary_session(ws)
            else:
                await self._compat_session(ws)
        except Exception as exc:  # a closed connection ends a session; nothing else should
            if not _is_closed(exc):
                log.exception("session on %s failed", path)
        finally:
            self._connections.discard(ws)

    def _count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    async def _compat_session(self, ws: Any) -> None:
        async for message in ws:
            self._count(self._counters.requests, "compat")
            try:
                magnitude = protocol.parse_compat_request(message)
                _, data = await self._compat_bytes(await self._available_soon(), magnitude)
            except (DepthcloudError, _Unavailable) as exc:
                code = exc.code if isinstance(exc, _Unavailable) else "bad_request"
                self._count(self._counters.errors, code)
                await ws.send(protocol.compat_error_message(_text(exc)))
                continue
            await ws.send(data, text=True)
            self._counters.bytes_sent += len(data)

    async def _binary_session(self, ws: Any) -> None:
        stream: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                try:
                    req = protocol.parse_request(message)
                except DepthcloudError as exc:
                    self._count(self._counters.requests, "invalid")
                    self._count(self._counters.errors, "bad_request")
                    await ws.send(protocol.error_message("bad_request", str(exc)))
                    continue
                self._count(self._counters.requests, req.op)
                if req.op == "info":
                    await ws.send(json.dumps(self.info()))
                elif req.op == "get":
                    await self._send_cloud(ws, req)
                elif req.op == "subscribe":
                    await _cancel(stream)
                    await ws.send(json.dumps({"type": "subscribed", "max_fps": req.max_fps}))
                    stream = asyncio.create_task(self._stream(ws, req))
                else:  # unsubscribe
                    await _cancel(stream)
                    stream = None
                    await ws.send(json.dumps({"type": "unsubscribed"}))
        finally:
            await _cancel(stream)

    async def _send_cloud(self, ws: Any, req: protocol.Request, snap: Snapshot | None = None) -> int | None:
        """Send one cloud (or an error reply); returns the seq sent, or None after an error."""
        try:
            snap = snap or await self._available_soon()
            seq, data = await self._binary_bytes(snap, req)
        except (DepthcloudError, _Unavailable) as exc:
            code = exc.code if isinstance(exc, _Unavailable) else "bad_request"
            self._count(self._counters.errors, code)
            await ws.send(protocol.error_message(code, _text(exc)))
            return None
        await ws.send(data)
        self._counters.bytes_sent += len(data)
        return seq

    async def _stream(self, ws: Any, req: protocol.Request) -> None:
        period = 0.0 if req.max_fps is None else 1.0 / req.max_fps
        last_seq = -1
        reported: str | None = None
        while True:
            changed = self._changed
            try:
                snap = self._available()
            except _Unavailable as exc:
                if exc.message != reported:
                    reported = exc.message
                    self._count(self._counters.errors, exc.code)
                    await ws.send(protocol.error_message(exc.code, exc.message))
                await changed.wait()
                continue
            reported = None
            if snap.seq == last_seq:
                await changed.wait()
                continue
            t0 = time.monotonic()
            last_seq = await self._send_cloud(ws, req, snap) or snap.seq
            if period:
                await asyncio.sleep(max(0.0, period - (time.monotonic() - t0)))

    # -- HTTP on the same port --------------------------------------------------------------------
    def _authorized(self, request: Any, query: dict[str, list[str]]) -> bool:
        return token_ok(self.config.token, request, query)

    async def _process_request(self, connection: Any, request: Any) -> Any:
        """HTTP on the websocket port: GET (and HEAD: the same headers, no body); other methods 405."""
        method = getattr(request, "method", "GET")
        if method not in ("GET", "HEAD"):
            self._count(self._counters.errors, "method_not_allowed")
            resp = connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED,
                                      f"{method} is not served here; routes answer GET (and HEAD)\n")
            resp.headers["Allow"] = "GET, HEAD"
            return resp
        resp = await self._route(connection, request)
        if method == "HEAD" and resp is not None:
            return dataclasses.replace(resp, body=b"")  # Content-Length still says what GET would send
        return resp

    async def _route(self, connection: Any, request: Any) -> Any:
        parts = urlsplit(request.path)
        path, query = parts.path, parse_qs(parts.query)
        if not self._authorized(request, query) and not viewer_assets.is_public(path):
            self._count(self._counters.errors, "unauthorized")
            resp = connection.respond(http.HTTPStatus.UNAUTHORIZED,
                                      "missing or wrong token: send 'Authorization: Bearer TOKEN' or ?token=TOKEN\n")
            resp.headers["WWW-Authenticate"] = 'Bearer realm="depthcloud"'
            return resp
        if path in ("/", "/v1"):
            if len(self._connections) >= self.config.max_clients:
                self._counters.rejected += 1
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                          f"too many clients (limit {self.config.max_clients})\n")
            return None  # the websocket handshake goes on
        self._count(self._counters.requests, "http")
        page = viewer_assets.response(path)
        if page is not None:
            return page
        if path == "/health":
            doc = self.health()
            status = http.HTTPStatus.OK if doc["status"] == "ok" else http.HTTPStatus.SERVICE_UNAVAILABLE
            return _response(status, json.dumps(doc).encode(), "application/json")
        if path == "/metrics":
            return _response(http.HTTPStatus.OK, self.metrics().encode(), "text/plain; version=0.0.4")
        kinds = {"/cloud.ply": "application/octet-stream", "/cloud.pcd": "application/octet-stream",
                 "/cloud.json": "application/json"}
        if path not in kinds:
            return connection.respond(http.HTTPStatus.NOT_FOUND,
                                      "not found; routes: / and /v1 (websocket), /view (browser viewer), "
                                      "/cloud.ply, /cloud.pcd, /cloud.json, /health, /metrics\n")
        try:
            snap = await self._available_soon()
            if path == "/cloud.json":
                _, data = await self._compat_bytes(snap, snap.default_magnitude)
            else:
                fmt = path.rsplit(".", 1)[1]
                _, data = await self._encoded(snap, (fmt,), lambda: _encode_file(fmt, snap.cloud()))
        except (DepthcloudError, _Unavailable) as exc:
            code = exc.code if isinstance(exc, _Unavailable) else "error"
            self._count(self._counters.errors, code)
            return connection.respond(exc.status if isinstance(exc, _Unavailable) else 500, _text(exc) + "\n")
        self._counters.bytes_sent += len(data)
        return _response(http.HTTPStatus.OK, data, kinds[path])

    # -- reports ----------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The ``info`` reply (binary mode)."""
        snap = self._snapshot
        st = self.status()
        cloud = None if snap is None else snap.cloud()
        return {
            "type": "info", "server": "depthcloud", "protocol": protocol.VERSION, "source": self.config.source,
            "state": st.state, "last_error": st.last_error, "seq": None if snap is None else snap.seq,
            "stamp": None if snap is None else snap.stamp, "frame": self.config.frame,
            "count": None if cloud is None else len(cloud), "has_colors": bool(cloud is not None and cloud.has_colors),
            "decimation": self.config.decimation, "encodings": list(protocol.ENCODINGS),
            "compressions": list(protocol.COMPRESSIONS), "max_message_bytes": self._max_out,
            "max_request_bytes": MAX_REQUEST_BYTES,
        }

    def health(self) -> dict[str, Any]:
        """The ``/health`` document: source state, fps, age of the newest frame, clients."""
        st = self.status()
        snap = self._snapshot
        ok = st.state == "running" and snap is not None
        return {
            "status": "ok" if ok else "unavailable",
            "source": {"spec": self.config.source, "state": st.state, "fps": round(st.fps, 2),
                       "frames": st.frames, "dropped": st.dropped, "restarts": st.restarts, "loops": st.loops,
                       "last_error": st.last_error},
            "seq": None if snap is None else snap.seq,
            "age_s": None if snap is None else round(time.monotonic() - snap.made, 3),
            "clients": len(self._connections),
            "uptime_s": round(time.monotonic() - self._started_at, 1),
        }

    def metrics(self) -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        st = self.status()
        snap = self._snapshot
        c = self._counters
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                lines.append(f"{name}{labels} {_num(value)}")

        metric("depthcloud_source_up", "gauge", "1 when the source is running",
               [("", 1.0 if st.state == "running" else 0.0)])
        metric("depthcloud_source_fps", "gauge", "frames per second processed", [("", st.fps)])
        metric("depthcloud_frames_total", "counter", "frames processed", [("", st.frames)])
        metric("depthcloud_source_restarts_total", "counter", "times the source was reopened", [("", st.restarts)])
        metric("depthcloud_frame_age_seconds", "gauge", "age of the newest cloud",
               [("", math.nan if snap is None else time.monotonic() - snap.made)])
        metric("depthcloud_clients", "gauge", "open websocket connections", [("", len(self._connections))])
        metric("depthcloud_connections_total", "counter", "websocket connections accepted",
               [("", c.connections_total)])
        metric("depthcloud_rejected_total", "counter", "connections refused at the client limit", [("", c.rejected)])
        metric("depthcloud_requests_total", "counter", "requests by kind",
               [(f'{{kind="{k}"}}', n) for k, n in sorted(c.requests.items())])
        metric("depthcloud_errors_total", "counter", "error replies by code",
               [(f'{{code="{k}"}}', n) for k, n in sorted(c.errors.items())])
        metric("depthcloud_sent_bytes_total", "counter", "payload bytes sent", [("", c.bytes_sent)])
        metric("depthcloud_encode_cache_hits_total", "counter", "replies served from the encoding cache",
               [("", c.cache_hits)])
        metric("depthcloud_encode_cache_misses_total", "counter", "replies that had to be encoded",
               [("", c.cache_misses)])
        metric("depthcloud_asyncio_tasks", "gauge", "tasks alive on the server's event loop",
               [("", len(asyncio.all_tasks(self._loop)) if self._loop is not None else 0)])
        metric("process_open_fds", "gauge", "open file descriptors", [("", _open_fds())])
        return "\n".join(lines) + "\n"


def token_ok(token: str | None, request: Any, query: dict[str, list[str]]) -> bool:
    """True when no token is required, or the request carries it (``Authorization: Bearer`` or
    ``?token=``), compared in constant time."""
    if token is None:
        return True
    given = None
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    elif "token" in query:
        given = query["token"][0]
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def _num(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    return repr(float(x)) if isinstance(x, float) else str(x)


def _text(exc: BaseException) -> str:
    """What a client is told: the message itself, never a Python class name (clients are not Python)."""
    if isinstance(exc, (_Unavailable, DepthcloudError)):
        return exc.message if isinstance(exc, _Unavailable) else str(exc)
    return f"internal error: {exc}"


def _open_fds() -> float:
    try:
        return float(len(os.listdir("/proc/self/fd")))
    except OSError:
        return math.nan


def _retrieve(fut: asyncio.Future[bytes]) -> None:
    """Mark a shared encoding's exception as seen (every waiter gets it; none may be left)."""
    if not fut.cancelled():
        fut.exception()


def _is_closed(exc: BaseException) -> bool:
    from websockets.exceptions import ConnectionClosed

    return isinstance(exc, ConnectionClosed)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _encode_file(fmt: str, cloud: PointCloud) -> bytes:
    if fmt == "ply":
        from depthcloud.io.ply import encode_ply

        return encode_ply(cloud, binary=True)
    from depthcloud.io.pcd import encode_pcd

    return encode_pcd(cloud, data="binary")


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Any:
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close")])
    return Response(int(status), status.phrase, headers, body)
