"""Server faults and load behaviour from issue 14 (defects 6, 9, 11, 12), in-process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from tests.conftest import REPO, need, optional_import, until
from websockets.asyncio.client import connect

from depthcloud import Frame
from depthcloud.errors import ConfigError, ProtocolError, SourceError
from depthcloud.serve import client
from depthcloud.serve import protocol as protocol_module
from depthcloud.serve import server as server_module
from depthcloud.serve.config import ServeConfig, load_config
from depthcloud.serve.server import CloudServer
from depthcloud.sources import ThreadedSource
from depthcloud.sources.synthetic import SyntheticSource, default_intrinsics, render_scene


class Slow(ThreadedSource):
    """Opens after ``open_s`` (a camera warming up; forever if ``blocked``), then renders frames."""

    def __init__(self, open_s: float, *, size: tuple[int, int] = (80, 60), fail: bool = False,
                 blocked: threading.Event | None = None) -> None:
        super().__init__("slow")
        self.open_s, self.fail, self.blocked = open_s, fail, blocked
        self.intr = default_intrinsics(*size)
        self.t = 0

    def _open(self) -> None:
        if self.blocked is not None:
            self.blocked.wait()
        self._stop_event.wait(self.open_s)
        if self.fail:
            raise SourceError("broken.dcrec: corrupt record header")

    def _read(self) -> Frame:
        time.sleep(0.02)
        self.t += 1
        depth, color = render_scene(self.intr, self.t / 50)
        return Frame(depth, self.intr, color, seq=self.t, stamp=self.t / 50)

    def _close(self) -> None: ...


@contextlib.asynccontextmanager
async def serving(factory: Callable[[], Any], **options: Any) -> AsyncIterator[CloudServer]:
    """A started server; unlike tests/test_serve_server.running it does not wait for a first cloud."""
    cfg = ServeConfig(**{"source": "synthetic:80x60@50", "port": 0, **options})
    async with CloudServer(cfg, source_factory=factory) as srv:
        yield srv


# -- defect 6: the first request waits for the first frame; `get` says why nothing came ----------------

async def test_a_compat_client_right_after_start_gets_the_first_cloud():
    async with serving(lambda: Slow(0.5)) as srv:
        assert srv.snapshot is None
        async with connect(srv.url, max_size=None) as ws:
            await ws.send("2")
            reply = json.loads(await ws.recv())
        assert isinstance(reply, list) and len(reply) > 0  # not {"error": "the source is starting"}
        status, body = await _http(srv.url, "/cloud.json")
        assert status == 200 and isinstance(json.loads(body), list)


async def test_get_reports_the_servers_reason_when_nothing_comes(monkeypatch):
    monkeypatch.setattr(server_module, "FIRST_FRAME_WAIT_S", 30.0)  # the server waits longer than the client
    blocked = threading.Event()
    async with serving(lambda: Slow(0.0, blocked=blocked)) as srv:
        with pytest.raises(ProtocolError, match=r"/v1: no answer within 1 s; the server says: the source is starting"):
            await asyncio.to_thread(client.get_cloud, srv.url, timeout_s=1.0)
        blocked.set()


async def _http(url: str, path: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -- defect 11 ---------------------------------------------------------------------------------------

async def test_a_5000_digit_request_is_an_error_reply_and_the_session_goes_on():
    async with serving(lambda: Slow(0.0)) as srv, connect(srv.url, max_size=None) as ws:
        await ws.send("9" * 5000)
        err = json.loads(await ws.recv())
        assert "expected a decimation magnitude 1..8 as text, got '9999" in err["error"]
        await ws.send("2")
        assert isinstance(json.loads(await ws.recv()), list)


def test_parse_compat_request_never_reaches_the_int_digit_limit():
    with pytest.raises(protocol_module.ProtocolError, match=r"magnitude 1\.\.8"):
        protocol_module.parse_compat_request("1" * 100_000)
    assert protocol_module.parse_compat_request(" 8 ") == 8


async def test_stop_is_prompt_and_clean_with_a_subscriber_that_stopped_reading():
    """Ctrl-C took 19 s and left 'Task was destroyed but it is pending' with such a client."""
    tasks_before = {t for t in asyncio.all_tasks() if not t.done()}
    srv = CloudServer(ServeConfig(source="synthetic:320x240@50", port=0, decimation=1),
                      source_factory=lambda: SyntheticSource(default_intrinsics(320, 240), fps=50))
    await srv.start()
    await until(lambda: srv.snapshot is not None)
    stalled = await connect(srv.url + "/v1", max_size=None, max_queue=1)
    await stalled.send('{"op": "subscribe"}')
    await until(lambda: srv.health()["clients"] == 1)
    await asyncio.sleep(1.0)  # its socket fills with clouds it never reads
    await asyncio.wait_for(srv.stop(), 10)  # a hang guard: without the cut, close frames wait on it
    stalled.transport.abort()
    await asyncio.sleep(0.1)
    left = {t for t in asyncio.all_tasks() if not t.done()} - tasks_before - {asyncio.current_task()}
    assert not left, left


async def test_an_unreadable_recording_fails_after_a_bounded_number_of_tries(monkeypatch, caplog):
    monkeypatch.setattr(server_module, "_RESTART_BACKOFF_S", (0.01, 0.02))
    opened = []

    def factory() -> Slow:
        opened.append(1)
        return Slow(0.0, fail=True)

    with caplog.at_level(logging.WARNING, logger="depthcloud.serve"):
        async with serving(factory, source="replay:broken.dcrec") as srv:
            await until(lambda: srv.health()["source"]["state"] == "failed")
            await asyncio.sleep(0.3)
            health = srv.health()
            tries = len(opened)
    assert tries == server_module.MAX_FILE_FAILURES  # the first source and the reopen attempts
    assert health["source"]["last_error"].endswith("(gave up after 3 tries: the recording cannot be read)")
    assert "source failed for good" in caplog.text


async def test_a_live_source_is_still_retried(monkeypatch):
    monkeypatch.setattr(server_module, "_RESTART_BACKOFF_S", (0.01, 0.02))
    opened = []

    def factory() -> Slow:
        opened.append(1)
        return Slow(0.0, fail=True)

    async with serving(factory, source="realsense"):
        await until(lambda: len(opened) > server_module.MAX_FILE_FAILURES + 2)


def test_empty_token_and_open_binds_need_insecure():
    with pytest.raises(ConfigError, match="key 'token': an empty token would turn authentication off"):
        ServeConfig(token="")
    assert ServeConfig(token="", insecure=True).token is None
    with pytest.raises(ConfigError, match="empty token"):
        load_config({}, environ={"DEPTHCLOUD_TOKEN": ""})
    assert load_config({"insecure": True}, environ={"DEPTHCLOUD_TOKEN": ""}).token is None


# -- defect 9: a finite source replayed is a loop, not a restart ------------------------------------------

async def test_replaying_a_finite_source_is_a_quiet_loop(monkeypatch, caplog):
    monkeypatch.setattr(server_module, "_RESTART_BACKOFF_S", (0.01, 0.02))
    factory = lambda: SyntheticSource(default_intrinsics(64, 48), fps=50, frames=2)  # noqa: E731
    with caplog.at_level(logging.INFO, logger="depthcloud.serve"):
        async with serving(factory) as srv:
            await until(lambda: srv.health()["source"]["loops"] >= 3)
            source = srv.health()["source"]
    assert source["restarts"] == 0 and source["last_error"] is None
    assert "reopening" not in caplog.text and "playing it again" not in caplog.text


@pytest.mark.data
async def test_a_looped_bag_has_colour_on_every_frame(data_dir):
    optional_import("pyrealsense2")
    from depthcloud.sources import open_source

    bag = need(data_dir, "realsense_bag/single_depth_color_640x480.bag")
    async with open_source(f"bag:{bag}", realtime=False, loop=True) as src:
        frames = [await src.next_frame(timeout_s=20) for _ in range(7)]  # three and a half passes
    seen = [(f.seq, f.color is not None) for f in frames]
    assert all(has for _, has in seen), seen
    assert [f.seq for f in frames] == sorted(f.seq for f in frames), seen


# -- defect 12: shared encodings, idle release -------------------------------------------------------

async def test_one_encoding_per_request_kind_at_a_time(monkeypatch):
    """Fifty clients and a new frame every 20 ms: encodings are joined, never queued per client."""
    active, peak, calls = [0], [0], [0]
    lock = threading.Lock()
    real = protocol_module.encode_compat

    def counting(points: np.ndarray) -> bytes:
        with lock:
            active[0] += 1
            calls[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.03)  # slower than the frame rate, as a big cloud on a busy machine
            return real(points)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(server_module.protocol, "encode_compat", counting)
    async with serving(lambda: SyntheticSource(default_intrinsics(80, 60), fps=50)) as srv:
        await until(lambda: srv.snapshot is not None)

        async def one() -> int:
            async with connect(srv.url, max_size=None) as ws:
                for _ in range(4):
                    await ws.send("2")
                    assert isinstance(json.loads(await ws.recv()), list)
            return 4

        replies = sum(await asyncio.gather(*(one() for _ in range(50))))
    assert replies == 200
    assert peak[0] == 1  # one key ("2"): one encoding at a time
    assert calls[0] < replies / 4  # most replies shared an encoding


async def test_idle_server_releases_its_caches(monkeypatch):
    monkeypatch.setattr(server_module, "IDLE_RELEASE_S", 0.5)
    released: list[int] = []
    monkeypatch.setattr(server_module, "release_memory", lambda: released.append(1) or True)
    async with serving(lambda: SyntheticSource(default_intrinsics(80, 60), fps=50)) as srv:
        await until(lambda: srv.snapshot is not None)
        async with connect(srv.url, max_size=None) as ws:
            for m in ("1", "3", "5"):
                await ws.send(m)
                assert isinstance(json.loads(await ws.recv()), list)
        assert len(srv._cache) == 3
        released.clear()
        await until(lambda: released)
        assert srv._cache == {}
        await asyncio.sleep(1.0)
        assert len(released) == 1  # once per idle period
        assert len(await client.aget_compat(srv.url, 2)) > 0
        await until(lambda: len(released) == 2)


def test_release_memory_calls_malloc_trim_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    assert server_module.release_memory() is True


# -- SIGINT and SIGTERM, also for a background job whose SIGINT is ignored -----------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_stops_on_sigint_and_sigterm_even_with_sigint_ignored(sig):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "depthcloud", "serve", "--source", "synthetic:64x48@10", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as a shell's background job
    )
    try:
        assert proc.stdout is not None
        assert "serving synthetic:64x48@10 on ws://127.0.0.1:" in proc.stdout.readline()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err and "Task was destroyed" not in err


async def _raw_http(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def test_http_answers_get_and_head_and_refuses_other_methods():
    """DELETE was served like GET and HEAD returned the body (issue 14, defect 11)."""
    async with serving(lambda: Slow(0.0)) as srv:
        await until(lambda: srv.snapshot is not None)
        get = await _raw_http(srv.port, b"GET /cloud.ply HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await _raw_http(srv.port, b"HEAD /cloud.ply HTTP/1.1\r\nHost: x\r\n\r\n")
        g_head, _, g_body = get.partition(b"\r\n\r\n")
        h_head, _, h_body = head.partition(b"\r\n\r\n")
        assert g_head.startswith(b"HTTP/1.1 200") and h_head.startswith(b"HTTP/1.1 200")
        assert h_body == b"" and f"Content-Length: {len(g_body)}".encode() in h_head
        for method in (b"DELETE", b"POST", b"PUT"):
            reply = await _raw_http(srv.port, method + b" /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 405 Method Not Allowed") and b"Allow: GET, HEAD" in reply
            assert method.decode().encode() + b" is not served here" in reply
