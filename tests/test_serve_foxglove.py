"""`serve --foxglove`: a plain websockets client speaking the Foxglove WebSocket protocol (advertise,
subscribe, binary messageData) decodes the published protobuf messages with the schemas the server
advertises, and gets the server's cloud, colour image and calibration."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import cv2
import numpy as np
import pytest
from websockets.asyncio.client import connect

from depthcloud.errors import MissingDependencyError
from depthcloud.serve import foxglove_bridge
from depthcloud.serve.foxglove_bridge import FoxgloveBridge
from test_serve_server import running, still

pytest.importorskip("foxglove", reason="foxglove-sdk is not installed (pip install 'depthcloud[foxglove]')")
# The protocol was named foxglove.websocket.v1; foxglove-sdk 0.30 answers to its successor only.
SUBPROTOCOLS = ["foxglove.websocket.v1", "foxglove.sdk.v1"]


def message_class(channel: dict[str, Any]) -> Any:
    """The protobuf class of an advertised channel, built from its FileDescriptorSet schema."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    assert channel["encoding"] == "protobuf" and channel["schemaEncoding"] == "protobuf"
    fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel["schema"]))
    pool = descriptor_pool.DescriptorPool()
    pending = list(fds.file)
    while pending:  # dependencies first, whatever order the set lists them in
        for f in list(pending):
            if all(dep in {p.name for p in fds.file if p not in pending} for dep in f.dependency):
                pool.Add(f)
                pending.remove(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(channel["schemaName"]))


async def receive_topics(port: int, topics: set[str]) -> dict[str, Any]:
    """Subscribe to ``topics`` and return the first decoded message of each."""
    async with connect(f"ws://127.0.0.1:{port}", subprotocols=SUBPROTOCOLS, compression=None, max_size=None) as ws:
        assert ws.subprotocol in SUBPROTOCOLS
        channels: dict[str, dict[str, Any]] = {}
        while not topics <= set(channels):
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if msg["op"] == "advertise":
                channels.update({c["topic"]: c for c in msg["channels"]})
        subs = {i: channels[t] for i, t in enumerate(sorted(topics), start=1)}
        await ws.send(json.dumps({"op": "subscribe",
                                  "subscriptions": [{"id": i, "channelId": c["id"]} for i, c in subs.items()]}))
        got: dict[str, Any] = {}
        while len(got) < len(topics):
            data = await asyncio.wait_for(ws.recv(), 20)
            if isinstance(data, str) or data[0] != 0x01:  # messageData opcode
                continue
            sub_id, _log_time = struct.unpack_from("<IQ", data, 1)
            ch = subs[sub_id]
            got.setdefault(ch["topic"], message_class(ch).FromString(data[13:]))
        return got


def points_of(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    names = {f.name: f for f in msg.fields}
    assert msg.point_stride == 16 and names["x"].offset == 0 and names["red"].offset == 12
    rec = np.frombuffer(msg.data, dtype=[("xyz", "<f4", 3), ("rgba", "u1", 4)])
    return rec["xyz"], rec["rgba"][:, :3]


async def test_foxglove_client_gets_the_servers_cloud_image_and_calibration():
    async with running(still(96, 72), decimation=2) as srv, FoxgloveBridge(srv, port=0) as bridge:
        got = await receive_topics(bridge.port, {"/depthcloud/points", "/depthcloud/color",
                                                 "/depthcloud/calibration"})
        snap = srv.snapshot
        assert snap is not None
        cloud = snap.cloud()  # every snapshot of the still source holds this same cloud
        pts, rgb = points_of(got["/depthcloud/points"])
        assert got["/depthcloud/points"].frame_id == "camera_optical"
        assert np.array_equal(pts, cloud.points) and np.array_equal(rgb, cloud.colors)
        image = got["/depthcloud/color"]
        assert image.format == "jpeg" and image.frame_id == "camera_optical"
        decoded = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        assert decoded.shape == snap.frame.color.shape
        assert np.abs(decoded.astype(int) - snap.frame.color.astype(int)).mean() < 8
        cal = got["/depthcloud/calibration"]
        intr = snap.frame.intrinsics
        assert (cal.width, cal.height) == (96, 72) and cal.distortion_model == "plumb_bob"
        assert np.allclose(np.asarray(cal.K).reshape(3, 3), intr.K) and list(cal.D) == [0.0] * 5
        assert np.allclose(np.asarray(cal.P).reshape(3, 4)[:, :3], intr.K)


async def test_foxglove_points_follow_the_served_frame_and_a_transform_places_the_camera():
    from scipy.spatial.transform import Rotation

    async with running(still(64, 48), frame="zup") as srv, FoxgloveBridge(srv, port=0) as bridge:
        got = await receive_topics(bridge.port, {"/depthcloud/points", "/depthcloud/tf"})
        msg = got["/depthcloud/points"]
        assert msg.frame_id == "camera_zup"
        assert np.array_equal(points_of(msg)[0], srv.snapshot.cloud().points)
        tf = got["/depthcloud/tf"]
        assert (tf.parent_frame_id, tf.child_frame_id) == ("camera_zup", "camera_optical")
        q = tf.rotation
        rot = Rotation.from_quat([q.x, q.y, q.z, q.w])
        # the optical axes seen from the z-up frame: forward (z) is x, right (x) is −y, down (y) is −z
        assert np.allclose(rot.apply([[0, 0, 1], [1, 0, 0], [0, 1, 0]]), [[1, 0, 0], [0, -1, 0], [0, 0, -1]])


def test_missing_sdk_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "foxglove":
            raise ImportError("No module named 'foxglove'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match=r"foxglove-sdk.*depthcloud\[foxglove\]"):
        foxglove_bridge._sdk()


@pytest.mark.slow
def test_serve_foxglove_flag_starts_the_bridge_and_stops_on_sigterm():
    import os
    import re
    import signal
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "depthcloud", "serve", "--source", "synthetic:64x48@10", "--port",
                             "0", "--foxglove", "--foxglove-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert re.search(r"viewer: http://127\.0\.0\.1:\d+/view$", lines[1].strip()), lines
        m = re.search(r"foxglove: ws://127\.0\.0\.1:(\d+) ", lines[2])
        assert m, lines
        got = asyncio.run(receive_topics(int(m.group(1)), {"/depthcloud/points"}))
        assert len(points_of(got["/depthcloud/points"])[0]) > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_foxglove_flag_defaults_to_port_8765(monkeypatch, capsys):
    from depthcloud.cli import main
    from depthcloud.errors import ConfigError

    seen = []

    def fake(server, host, port):
        seen.append((host, port))
        raise ConfigError("stop here", key="foxglove")

    monkeypatch.setattr(foxglove_bridge, "foxglove_bridge", fake)
    assert main(["serve", "--source", "synthetic:32x24@5", "--port", "0", "--foxglove"]) == 2
    assert main(["serve", "--source", "synthetic:32x24@5", "--port", "0", "--foxglove", "--foxglove-port", "9001"]) == 2
    assert main(["serve", "--source", "synthetic:32x24@5", "--port", "0", "--foxglove-port", "9002", "--max-clients",
                 "0"]) == 2  # no --foxglove: no bridge (and the bad max-clients stops it before binding)
    assert seen == [("127.0.0.1", 8765), ("127.0.0.1", 9001)]
    assert "stop here" in capsys.readouterr().err
