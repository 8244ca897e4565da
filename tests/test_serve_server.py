"""The server in-process on 127.0.0.1 (ephemeral ports), with real websocket and HTTP clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import need, optional_import, until
from depthcloud import Frame
from depthcloud.errors import ConfigError, ProtocolError, SourceError
from depthcloud.geometry import depth_to_points
from depthcloud.serve import client, protocol
from depthcloud.serve import server as server_module
from depthcloud.serve.config import ServeConfig
from depthcloud.serve.server import CloudServer, is_loopback
from depthcloud.sources import ReconnectPolicy, ThreadedSource
from depthcloud.sources.synthetic import SyntheticSource, default_intrinsics, render_scene

NODE_CLIENT = Path(__file__).parent / "node" / "compat_client.js"


def synthetic(width: int = 160, height: int = 120, fps: float = 50.0) -> Callable[[], SyntheticSource]:
    return lambda: SyntheticSource(default_intrinsics(width, height), fps=fps)


@contextlib.asynccontextmanager
async def running(factory: Callable[[], Any] | None = synthetic(), **options: Any) -> AsyncIterator[CloudServer]:
    """A started server with a first cloud; ``factory=None`` opens ``options["source"]`` by its spec."""
    cfg = ServeConfig(**{"source": "synthetic:160x120@50", "port": 0, **options})
    async with CloudServer(cfg, source_factory=factory) as srv:
        await until(lambda: srv.snapshot is not None)
        yield srv


async def http_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A minimal HTTP/1.1 GET over asyncio streams (no third-party client, nothing blocking)."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), hdrs, body


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Still(ThreadedSource):
    """The same frame again and again (every snapshot holds the same cloud), or just once."""

    def __init__(self, depth: np.ndarray, color: np.ndarray | None, intr: Any, *, once: bool = False) -> None:
        super().__init__("still")
        self.frame = Frame(depth, intr, color, stamp=0.0)
        self.once = once
        self.sent = False

    def _open(self) -> None: ...

    def _close(self) -> None: ...

    def _read(self) -> Frame | None:
        if self.once and self.sent:
            self._stop_event.wait()
            return None
        self.sent = True
        time.sleep(0.02)
        return self.frame


def still(width: int = 96, height: int = 72, *, once: bool = False, offset_m: float = 0.0) -> Callable[[], Still]:
    intr = default_intrinsics(width, height)
    depth, color = render_scene(intr, 0.0)
    depth = np.where(depth > 0, depth + np.float32(offset_m), 0).astype(np.float32)
    return lambda: Still(depth, color, intr, once=once)


# -- compatible mode ---------------------------------------------------------------------------

async def test_grasshopper_like_client_gets_the_cloud_to_1e_6():
    async with running(still()) as srv, connect(srv.url + "/", max_size=None) as ws:
        await ws.send("2")
        reply = await ws.recv()
        assert isinstance(reply, str)  # a text frame, as Grasshopper's websocket component expects
        points = json.loads(reply)
        assert points and all(isinstance(p, list) and len(p) == 3 for p in points)
        assert all(isinstance(x, float) for p in points for x in p)
        got = np.asarray(points, dtype=np.float64)
        want = srv.snapshot.cloud(2).points  # every snapshot of a still scene holds this cloud
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-6


async def test_compat_cloud_matches_an_independent_unprojection():
    # A still scene so the reply can be checked against an unprojection done here.
    intr = default_intrinsics(96, 72)
    depth, _ = render_scene(intr, 0.0)
    async with running(still(), decimation=1) as srv, connect(srv.url, max_size=None) as ws:
        await ws.send("1")
        got = np.asarray(json.loads(await ws.recv()))
    ref = depth_to_points(depth, intr).points
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-6


async def test_compat_magnitudes_are_derived_from_one_capture():
    async with running() as srv, connect(srv.url, max_size=None) as ws:
        sizes = {}
        for m in (1, 2, 4, 8):
            await ws.send(str(m))
            sizes[m] = len(json.loads(await ws.recv()))
        assert sizes[1] > sizes[2] > sizes[4] > sizes[8] > 0
        assert srv.health()["source"]["restarts"] == 0


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_node_ws_client_parses_the_same_cloud():
    node_path = os.environ.get("NODE_PATH", "/usr/share/nodejs")
    if not any((Path(d) / "ws").is_dir() for d in node_path.split(os.pathsep)):
        pytest.skip("node's ws package is missing (Debian node-ws or npm install ws)")
    async with running(still()) as srv:
        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_CLIENT), srv.url + "/", "2", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "NODE_PATH": node_path},
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        doc = json.loads(out)
        got = np.asarray(doc["points"], dtype=np.float64)
        assert doc["binary"] is False and doc["count"] == len(got) > 0
        want = srv.snapshot.cloud(2).points
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-6


async def test_compat_errors_are_json_objects_and_the_session_goes_on():
    async with running() as srv, connect(srv.url, max_size=None) as ws:
        for bad, match in (("9", "magnitude 1..8"), ("hello", "got 'hello'"), (b"\x01\x02", "got a binary message")):
            await ws.send(bad)
            reply = json.loads(await ws.recv())
            assert isinstance(reply, dict) and match in reply["error"]
            assert not reply["error"].startswith(("ProtocolError", "InputError"))  # no Python class names (issue 14)
        await ws.send("4")
        assert isinstance(json.loads(await ws.recv()), list)


async def test_compat_json_over_http_is_the_default_magnitude():
    async with running(still(), decimation=4) as srv:
        status, headers, body = await http_get(srv.url, "/cloud.json")
        assert status == 200 and headers["content-type"] == "application/json"
        assert int(headers["content-length"]) == len(body)
        np.testing.assert_allclose(json.loads(body), srv.snapshot.cloud(4).points, atol=1e-6)


# -- binary mode -------------------------------------------------------------------------------

async def test_binary_get_round_trip_and_encodings():
    async with running() as srv, connect(srv.url + "/v1", max_size=None) as ws:
        for encoding, tol in (("f32", 0.0), ("f16", 0.004), ("i16mm", 0.0005 + 1e-6)):
            for compress in ("none", "zstd"):
                await ws.send(json.dumps({"op": "get", "encoding": encoding, "colors": True, "compress": compress}))
                header, cloud = protocol.decode_cloud(await ws.recv())
                snap = srv.snapshot
                assert snap is not None and header.seq <= snap.seq
                assert header.units == "m" and header.frame == "optical" and cloud.colors is not None
                if header.seq == snap.seq:
                    assert np.abs(cloud.points - snap.cloud().points).max() <= tol


async def test_info_and_client_helpers_sync_and_async():
    async with running(frame="zup") as srv:
        doc = await client.ainfo(srv.url)
        assert doc["type"] == "info" and doc["state"] == "running" and doc["frame"] == "zup"
        cloud = await client.aget_cloud(srv.url, max_points=500, decimation=4)
        assert len(cloud) <= 500 and cloud.frame == "zup" and cloud.colors is not None
        compat = await client.aget_compat(srv.url, 8)
        assert len(compat) == len(srv.snapshot.cloud(8))
        sync_cloud = await asyncio.to_thread(client.get_cloud, srv.url, encoding="f16", compress="zstd")
        assert len(sync_cloud) > 0 and sync_cloud.frame == "zup"
        sync_info = await asyncio.to_thread(client.info, srv.url.replace("ws://", "http://"))
        assert sync_info["seq"] >= 1
        sync_compat = await asyncio.to_thread(client.get_compat, srv.url, 2)
        assert len(sync_compat) > 0


async def test_subscribe_streams_new_clouds_and_unsubscribe_stops():
    async with running() as srv:
        seqs = []
        async for cloud in client.asubscribe(srv.url, max_fps=20, colors=False):
            assert cloud.colors is None
            seqs.append(srv.snapshot.seq)
            if len(seqs) == 3:
                break
        async with connect(srv.url + "/v1", max_size=None) as ws:
            await ws.send('{"op": "subscribe"}')
            assert json.loads(await ws.recv())["type"] == "subscribed"
            first, _ = protocol.decode_cloud(await ws.recv())
            second, _ = protocol.decode_cloud(await ws.recv())
            assert second.seq > first.seq
            await ws.send('{"op": "unsubscribe"}')
            while isinstance(msg := await ws.recv(), bytes):
                pass  # clouds already on the way
            assert json.loads(msg)["type"] == "unsubscribed"


async def test_sync_subscribe_generator():
    async with running() as srv:
        def take(n: int) -> int:
            gen = client.subscribe(srv.url, max_fps=30, max_points=100)
            clouds = [next(gen) for _ in range(n)]
            gen.close()
            return sum(len(c) for c in clouds)
        assert await asyncio.to_thread(take, 2) == 200


@pytest.mark.slow
async def test_slow_subscriber_skips_stale_clouds():
    # ~6 MB a message: the socket buffers hold one or two, so a reader that naps must skip.
    async with running(synthetic(848, 480, 30), decimation=1) as srv:
        async with connect(srv.url + "/v1", max_size=None, max_queue=1) as ws:
            await ws.send('{"op": "subscribe", "colors": true}')
            await ws.recv()
            seqs = [protocol.decode_cloud(await ws.recv())[0].seq]
            await asyncio.sleep(2.0)
            for _ in range(6):
                seqs.append(protocol.decode_cloud(await ws.recv())[0].seq)
        gaps = np.diff(seqs)
        assert (gaps >= 1).all()  # never an old cloud again
        assert gaps.max() > 1  # clouds made while the reader napped were skipped, not queued


async def test_encoding_is_shared_by_concurrent_requests():
    async with running(still(once=True), source_timeout_s=600) as srv:  # one frame: every request, one seq
        conns = [await connect(srv.url + "/v1", max_size=None).__aenter__() for _ in range(10)]
        try:
            await asyncio.gather(*(c.send('{"op": "get", "encoding": "f16"}') for c in conns))
            replies = await asyncio.gather(*(c.recv() for c in conns))
        finally:
            for c in conns:
                await c.close()
        assert len({bytes(r) for r in replies}) == 1
        assert (srv._counters.cache_misses, srv._counters.cache_hits) == (1, 9)


# -- HTTP --------------------------------------------------------------------------------------

async def test_http_routes():
    async with running() as srv:
        status, headers, body = await http_get(srv.url, "/health")
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "ok" and doc["source"]["state"] == "running"
        assert doc["age_s"] >= 0 and doc["clients"] == 0 and doc["source"]["fps"] >= 0
        status, headers, body = await http_get(srv.url, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        samples = {ln.split()[0]: float(ln.split()[1]) for ln in body.decode().splitlines() if not ln.startswith("#")}
        assert samples["depthcloud_source_up"] == 1.0 and samples["depthcloud_frames_total"] >= 1
        status, _, body = await http_get(srv.url, "/cloud.ply")
        from depthcloud.io import decode_pcd, decode_ply

        assert status == 200 and len(decode_ply(body)) > 0
        status, _, body = await http_get(srv.url, "/cloud.pcd")
        assert status == 200 and len(decode_pcd(body)) > 0
        status, _, body = await http_get(srv.url, "/nope")
        assert status == 404 and b"routes:" in body


async def test_metrics_follow_the_prometheus_text_format():
    async with running() as srv, connect(srv.url) as ws:
        await ws.send("8")
        await ws.recv()
        await ws.send("0")
        await ws.recv()
        _, _, body = await http_get(srv.url, "/metrics")
    lines = body.decode().splitlines()
    names = set()
    for ln in lines:
        if ln.startswith("# TYPE"):
            _, _, name, kind = ln.split()
            assert kind in ("gauge", "counter") and name not in names
            names.add(name)
        elif not ln.startswith("#"):
            name_labels, value = ln.rsplit(" ", 1)
            float(value)
            assert name_labels.split("{")[0] in names
    assert 'depthcloud_requests_total{kind="compat"} 2' in lines
    assert 'depthcloud_errors_total{code="bad_request"} 1' in lines


# -- safety ------------------------------------------------------------------------------------

async def test_token_by_header_or_query_and_refusals():
    async with running(token="s3cret") as srv:
        assert (await http_get(srv.url, "/health"))[0] == 401
        assert (await http_get(srv.url, "/health?token=wrong"))[0] == 401
        assert (await http_get(srv.url, "/health?token=s3cret"))[0] == 200
        assert (await http_get(srv.url, "/health", {"Authorization": "Bearer s3cret"}))[0] == 200
        with pytest.raises(InvalidStatus) as info:
            async with connect(srv.url + "/v1"):
                pass
        assert info.value.response.status_code == 401 and b"missing or wrong token" in info.value.response.body
        with pytest.raises(ProtocolError, match="refused with HTTP 401: missing or wrong token"):
            await client.aget_cloud(srv.url, token="nope")
        assert len(await client.aget_cloud(srv.url, token="s3cret")) > 0
        async with connect(srv.url + "/?token=s3cret") as ws:
            await ws.send("8")
            assert isinstance(json.loads(await ws.recv()), list)
        assert srv.health()["status"] == "ok"


async def test_max_clients():
    async with running(max_clients=2) as srv:
        a = await connect(srv.url).__aenter__()
        b = await connect(srv.url).__aenter__()
        try:
            await until(lambda: len(srv._connections) == 2)
            with pytest.raises(ProtocolError, match="HTTP 503: too many clients"):
                await client.aget_compat(srv.url, 2)
        finally:
            await a.close()
            await b.close()
        await until(lambda: len(srv._connections) == 0)
        assert len(await client.aget_compat(srv.url, 8)) > 0


async def test_malformed_requests_get_clear_replies_and_the_server_stays_healthy():
    async with running() as srv, connect(srv.url + "/v1", max_size=None) as ws:
        cases = [
            ("{not json", "request is not valid JSON"),
            ('{"op": "explode"}', "unknown op 'explode'"),
            ('{"op": "get", "encoding": "f64"}', "encoding must be one of"),
            (b"\x00\x01binary", "expected a JSON text request, got a binary message"),
        ]
        for message, match in cases:
            await ws.send(message)
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and reply["code"] == "bad_request" and match in reply["error"]
        await ws.send('{"op": "info"}')
        assert json.loads(await ws.recv())["state"] == "running"
    async with running() as srv:
        # Oversized: the connection is closed with 1009 and a reason; other clients are unaffected.
        async with connect(srv.url + "/v1", max_size=None) as ws:
            await ws.send("x" * (server_module.MAX_REQUEST_BYTES + 1))
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        assert "too big" in info.value.rcvd.reason or "limit" in info.value.rcvd.reason
        assert srv.health()["status"] == "ok"
        assert len(await client.aget_cloud(srv.url)) > 0


async def test_reply_over_the_message_limit_is_refused_with_advice():
    async with running(max_message_mb=0.01) as srv:
        with pytest.raises(ProtocolError, match=r"too_large.*over the server's limit of 0.01 MiB; ask for fewer"):
            await client.aget_cloud(srv.url)
        assert len(await client.aget_cloud(srv.url, max_points=200)) == 200
        with pytest.raises(ProtocolError, match="over the server's limit"):
            await client.aget_compat(srv.url, 1)


async def test_i16mm_out_of_range_is_a_clear_error():
    async with running(still(offset_m=40.0)) as srv, connect(srv.url + "/v1", max_size=None) as ws:
        await ws.send('{"op": "get", "encoding": "i16mm"}')
        reply = json.loads(await ws.recv())
        assert reply["code"] == "bad_request" and "i16mm holds coordinates up to 32.767 m" in reply["error"]
        await ws.send('{"op": "get", "encoding": "f16"}')
        assert protocol.decode_cloud(await ws.recv())[1].points[:, 2].min() > 40.0


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")


async def test_non_loopback_bind_needs_a_token_or_insecure(caplog, monkeypatch):
    # Tests bind loopback only: pretend 127.0.0.1 is a public address.
    monkeypatch.setattr(server_module, "is_loopback", lambda host: False)
    with pytest.raises(ConfigError, match=r"key 'host': binding 127\.0\.0\.1 makes the clouds reachable from other "
                                          r"machines, and no token is set: give --token TOKEN .* or --insecure"):
        async with CloudServer(ServeConfig(port=0), source_factory=synthetic()):
            pass
    with caplog.at_level("WARNING", logger="depthcloud.serve"):
        async with CloudServer(ServeConfig(port=0, insecure=True), source_factory=synthetic()):
            pass
    assert "reachable from other machines and anyone may connect (--insecure)" in caplog.text
    async with CloudServer(ServeConfig(port=0, token="s3cret"), source_factory=synthetic()):
        pass


async def test_port_in_use_and_bad_spec_raise_before_serving():
    async with running() as srv:
        with pytest.raises(ConfigError, match=f"key 'port': cannot listen on 127.0.0.1:{srv.port}"):
            async with CloudServer(ServeConfig(port=srv.port), source_factory=synthetic()):
                pass
    with pytest.raises(ConfigError, match="unknown scheme 'nosuch'"):
        async with CloudServer(ServeConfig(source="nosuch:1", port=0)):
            pass


# -- faults ------------------------------------------------------------------------------------

class Flaky(ThreadedSource):
    """A source whose device can be 'unplugged' (``alive`` cleared) and plugged back."""

    def __init__(self, alive: threading.Event, *, retries: int) -> None:
        super().__init__("flaky", reconnect=ReconnectPolicy(max_retries=retries, backoff_s=0.05, max_backoff_s=0.1))
        self.alive = alive
        self.intr = default_intrinsics(80, 60)
        self.t = 0

    def _open(self) -> None:
        if not self.alive.is_set():
            raise SourceError("flaky: device not found")

    def _read(self) -> Frame:
        time.sleep(0.02)
        if not self.alive.is_set():
            raise SourceError("flaky: device unplugged")
        self.t += 1
        depth, color = render_scene(self.intr, self.t / 50)
        return Frame(depth, self.intr, color, seq=self.t, stamp=self.t / 50)

    def _close(self) -> None: ...


@pytest.mark.parametrize("retries", [0, 1000], ids=["fails-for-good-server-reopens", "source-reconnects"])
async def test_source_dies_and_returns(monkeypatch, retries):
    monkeypatch.setattr(server_module, "_RESTART_BACKOFF_S", (0.05, 0.2))
    alive = threading.Event()
    alive.set()
    async with running(lambda: Flaky(alive, retries=retries), source_timeout_s=1.0) as srv:
        async with connect(srv.url + "/v1", max_size=None) as sub, connect(srv.url, max_size=None) as compat:
            await sub.send('{"op": "subscribe", "max_fps": 20}')
            await sub.recv()
            alive.clear()
            await until(lambda: srv.health()["status"] != "ok")
            status, _, body = await http_get(srv.url, "/health")
            doc = json.loads(body)
            assert status == 503 and doc["source"]["state"] in ("reconnecting", "failed", "stalled")
            assert "flaky: device" in doc["source"]["last_error"]
            # The subscriber is told, once, in a clear error message (after clouds already on the way).
            while isinstance(msg := await asyncio.wait_for(sub.recv(), 5), bytes):
                pass
            err = json.loads(msg)
            assert err["type"] == "error" and err["code"].startswith("source_") and "the source is" in err["error"]
            await compat.send("2")
            assert "the source is" in json.loads(await compat.recv())["error"]
            with pytest.raises(ProtocolError, match="the source is"):
                await client.aget_cloud(srv.url)
            assert (await http_get(srv.url, "/cloud.ply"))[0] == 503
            alive.set()
            await until(lambda: srv.health()["status"] == "ok", timeout_s=15)
            # Serving resumes by itself: the subscriber gets clouds again, new clients too.
            while isinstance(msg := await asyncio.wait_for(sub.recv(), 5), str):
                assert json.loads(msg)["code"].startswith("source_")  # reports from while it was down
            header, _ = protocol.decode_cloud(msg)
            assert header.seq >= 1
            await compat.send("2")
            assert isinstance(json.loads(await compat.recv()), list)
        if retries == 0:
            assert srv.health()["source"]["restarts"] >= 1


async def test_clients_vanishing_mid_reply_leak_nothing():
    async with running(synthetic(320, 240, 30), decimation=1) as srv:
        async def settle() -> tuple[int, int]:
            await until(lambda: len(srv._connections) == 0)
            await asyncio.sleep(0.2)
            return len(asyncio.all_tasks()), open_fds()

        async with connect(srv.url, max_size=None) as ws:  # warm caches and thread pools
            await ws.send("1")
            await ws.recv()
        tasks0, fds0 = await settle()
        for round_ in range(3):
            conns = [await connect(srv.url + ("/v1" if i % 2 else "/"), max_size=None).__aenter__() for i in range(8)]
            for i, ws in enumerate(conns):
                await ws.send('{"op": "subscribe"}' if i % 2 else "1")
            await asyncio.sleep(0.05 * round_)
            for ws in conns:
                ws.transport.abort()  # gone without a close frame, mid-reply
        tasks1, fds1 = await settle()
        assert tasks1 <= tasks0 and fds1 <= fds0
        assert srv.health()["status"] == "ok"
        assert len(await client.aget_compat(srv.url, 4)) > 0


async def test_a_finite_source_is_replayed_and_stays_healthy(monkeypatch):
    monkeypatch.setattr(server_module, "_RESTART_BACKOFF_S", (0.05, 0.2))
    factory = lambda: SyntheticSource(default_intrinsics(64, 48), fps=50, frames=2)  # noqa: E731
    async with running(factory) as srv:
        await until(lambda: srv.snapshot.seq >= 6)  # three recordings' worth: it was reopened
        assert srv.health()["status"] == "ok" and srv.health()["source"]["last_error"] is None
        assert len(await client.aget_compat(srv.url, 2)) > 0


@pytest.mark.data
async def test_serves_a_realsense_recording(data_dir):
    optional_import("pyrealsense2")
    bag = need(data_dir, "realsense_bag/single_depth_color_640x480.bag")
    async with running(None, source=f"bag:{bag}", decimation=1, frame="zup") as srv:
        # The recording loops (two depth frames): the two requests may meet different frames, so the
        # binary clouds of both are collected and the compatible-mode one compared with its own frame.
        clouds: dict[int, Any] = {}
        for _ in range(40):
            compat = await client.aget_compat(srv.url, 1)
            for _ in range(2):
                c = await client.aget_cloud(srv.url)
                clouds[len(c)] = c
            if len(compat) in clouds:
                break
        cloud = clouds[len(compat)]
        assert all(c.has_colors for c in clouds.values())  # colour on every frame, loops included
        assert srv.health()["source"]["restarts"] == 0  # a loop is not a restart
    # D435 at 640x480: a cloud of a few hundred thousand points within the camera's range, z up.
    assert 10_000 < len(cloud) <= 640 * 480 and cloud.frame == "zup"
    assert len(compat) == len(cloud)
    np.testing.assert_allclose(compat.points, cloud.points, atol=1e-6)
    forward = cloud.points[:, 0]  # zup: x is the camera's viewing direction
    assert forward.min() > 0 and forward.max() < 20


async def test_pipeline_options_shape_the_cloud():
    async with running(still(), decimation=2) as srv:
        plain = srv.snapshot.cloud()
    async with running(still(), decimation=2, max_depth_m=2.0, min_depth_m=0.5) as srv:
        near = await client.aget_cloud(srv.url)
    async with running(still(), decimation=2, voxel_m=0.1, frame="opengl") as srv:
        coarse = await client.aget_cloud(srv.url)
    async with running(still(), decimation=2, temporal=True, spatial=True) as srv:
        filtered = await client.aget_cloud(srv.url, colors=False)
    assert 0 < len(near) < len(plain) and near.points[:, 2].max() <= 2.0 and near.points[:, 2].min() >= 0.5
    assert 0 < len(coarse) < len(plain) and coarse.frame == "opengl"
    assert coarse.points[:, 2].max() < 0  # opengl looks down -z
    assert len(filtered) > 0 and filtered.colors is None


@pytest.mark.parametrize("call, match", [
    (lambda: client.get_cloud("ftp://host:1"), r"url: expected 'ws://HOST:PORT\[/PATH\]', got 'ftp://host:1'"),
    (lambda: client.get_cloud("ws://"), "url: expected"),
    (lambda: client.get_cloud("ws://127.0.0.1:9", encoding="f64"), "encoding must be one of f32, f16, i16mm"),
    (lambda: client.get_cloud("ws://127.0.0.1:9", max_points=0), "max_points: expected an integer in 1"),
    (lambda: client.get_compat("ws://127.0.0.1:9", 9), r"decimation: expected an integer in 1..8, got 9"),
    (lambda: next(client.subscribe("ws://127.0.0.1:9", max_fps=-1)), r"max_fps must be a number in \(0, 1000\]"),
    (lambda: client.get_cloud("ws://127.0.0.1:9", max_message_mb=0), "max_message_mb: expected a positive number"),
])
def test_client_refuses_bad_arguments_before_connecting(call, match):
    from depthcloud.errors import InputError

    with pytest.raises(InputError, match=match):
        call()


def test_client_reports_an_unreachable_server():
    with pytest.raises(ProtocolError, match=r"ws://127.0.0.1:9/v1: "):
        client.info("127.0.0.1:9", timeout_s=2)


async def test_a_client_that_stops_reading_does_not_block_the_others():
    # Replies of ~1 MB to a client that never reads fill its socket; the server must go on serving.
    async with running(synthetic(320, 240, 50), decimation=1) as srv:
        stalled = await connect(srv.url, max_size=None, max_queue=1)
        for _ in range(20):
            await stalled.send("1")
        await asyncio.sleep(0.3)

        async def normal() -> int:
            async with connect(srv.url, max_size=None) as ws:
                for _ in range(5):
                    await ws.send("1")
                    assert isinstance(json.loads(await ws.recv()), list)
            return 5

        done = await asyncio.wait_for(asyncio.gather(*(normal() for _ in range(3))), 30)
        assert sum(done) == 15 and srv.health()["status"] == "ok"
        stalled.transport.abort()
