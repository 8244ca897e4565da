"""The compact stream encoding (uint16 depth + JPEG colour + intrinsics): pure round trips against
the Unprojector, and the server serving it beside the point encodings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from websockets.asyncio.client import connect

from depthcloud.camera import Intrinsics
from depthcloud.errors import InputError, ProtocolError
from depthcloud.geometry import Unprojector
from depthcloud.serve import client, protocol
from depthcloud.sources.synthetic import default_intrinsics, render_scene
from test_serve_server import running, still


def _scene(intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    depth, color = render_scene(intr, 0.0)
    return depth, color


def _max_ray(intr: Intrinsics) -> float:
    """Largest |x̂|, |ŷ| of the image: a depth error e moves x and y by at most e times this."""
    return max(abs(-intr.cx / intr.fx), abs((intr.width - 1 - intr.cx) / intr.fx),
               abs(-intr.cy / intr.fy), abs((intr.height - 1 - intr.cy) / intr.fy), 1.0)


def test_compact_decodes_to_the_unprojected_cloud_within_the_quantisation(asym_intrinsics):
    intr = asym_intrinsics
    depth, color = _scene(intr)
    depth[5, 7] = np.nan
    depth[6, 8] = np.inf
    msg = protocol.encode_compact(depth, intr, seq=7, color=color, stamp=1.5)
    header, cloud = protocol.decode_cloud(msg)
    ref = Unprojector(intr)(depth, color=color)
    assert header.encoding == "compact" and header.seq == 7 and header.stamp == 1.5 and header.count == len(ref)
    assert header.extra["width"] == 64 and header.extra["height"] == 48
    assert header.extra["intrinsics"] == {"fx": intr.fx, "fy": intr.fy, "cx": intr.cx, "cy": intr.cy}
    assert len(cloud) == len(ref)
    # depth comes back within scale/2; x and y within that times the ray (plus float32 rounding)
    tol = header.scale / 2 * _max_ray(intr) + 1e-6
    assert np.abs(cloud.points - ref.points).max() <= tol
    assert np.abs(cloud.points[:, 2] - ref.points[:, 2]).max() <= header.scale / 2 + 1e-6
    assert header.scale == pytest.approx(float(depth[np.isfinite(depth)].max()) / 65535, rel=1e-6)
    # JPEG colours: close on average, not bit-exact
    assert cloud.colors is not None
    assert np.abs(cloud.colors.astype(int) - ref.colors.astype(int)).mean() < 8


def test_compact_matches_the_f32_cloud_of_an_848x480_frame_and_is_under_a_quarter_of_its_bytes():
    intr = default_intrinsics(848, 480)
    depth, color = _scene(intr)
    compact = protocol.encode_compact(depth, intr, seq=1, color=color)
    ref = Unprojector(intr)(depth, color=color)
    f32 = protocol.encode_cloud(ref, seq=1, encoding="f32", colors=True)
    header, cloud = protocol.decode_cloud(compact)
    assert np.abs(cloud.points - ref.points).max() <= header.scale / 2 * _max_ray(intr) + 1e-6
    assert len(compact) * 4 <= len(f32)


def test_compact_frame_keeps_the_image_and_rotates_into_the_served_frame(asym_intrinsics):
    intr = asym_intrinsics
    # a ramp 0.5 → 6 m across rows and columns, so the depth range cuts through the image
    depth = (0.5 + 5.5 * np.add.outer(np.arange(48) / 47, np.arange(64) / 63) / 2).astype(np.float32)
    lo, hi = 2.0, 4.0
    msg = protocol.encode_compact(depth, intr, seq=2, frame="zup", min_depth_m=lo, max_depth_m=hi)
    frame = protocol.decode_compact(msg)
    kept = (depth >= np.float32(lo)) & (depth <= np.float32(hi))
    assert 0 < kept.sum() < kept.size
    assert frame.depth.dtype == np.uint16 and frame.depth.shape == (48, 64) and frame.color is None
    assert np.array_equal(frame.depth > 0, kept)
    assert np.abs(frame.depth[kept] * frame.scale - depth[kept]).max() <= frame.scale / 2 + 1e-7
    assert frame.frame == "zup" and np.allclose(frame.rotation, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    ref = Unprojector(intr)(depth, min_depth_m=lo, max_depth_m=hi).to_frame("zup")
    cloud = frame.cloud()
    assert cloud.frame == "zup" and cloud.colors is None
    assert np.abs(cloud.points - ref.points).max() <= frame.scale / 2 * _max_ray(intr) + 1e-6


@pytest.mark.parametrize("compress", ["zstd", "deflate"])
def test_compact_with_no_valid_depth_and_compressed(compress):
    intr = default_intrinsics(32, 24)
    empty = protocol.decode_cloud(protocol.encode_compact(np.zeros((24, 32), np.float32), intr, seq=0))[1]
    assert len(empty) == 0
    depth, color = _scene(intr)
    plain = protocol.encode_compact(depth, intr, seq=0, color=color)
    packed = protocol.encode_compact(depth, intr, seq=0, color=color, compress=compress)
    assert len(packed) < len(plain)
    a, b = protocol.decode_compact(packed), protocol.decode_compact(plain)
    assert np.array_equal(a.depth, b.depth) and np.array_equal(a.color, b.color)


def test_deflate_body_that_lies_about_its_length_is_refused(asym_intrinsics):
    depth, _ = _scene(asym_intrinsics)
    msg = protocol.encode_compact(depth, asym_intrinsics, seq=0, compress="deflate")
    head_len = int.from_bytes(msg[6:10], "little")
    head = json.loads(msg[10:10 + head_len])
    head["body_bytes"] -= 2
    text = json.dumps(head).encode()
    bad = msg[:6] + len(text).to_bytes(4, "little") + text + msg[10 + head_len:]
    with pytest.raises(ProtocolError, match="holds more than"):
        protocol.decode_compact(bad)


def test_compact_refuses_what_the_shader_cannot_draw():
    intr = default_intrinsics(32, 24)
    depth, _ = _scene(intr)
    distorted = Intrinsics(intr.fx, intr.fy, intr.cx, intr.cy, 32, 24, dist=(0.1, 0.0, 0.0, 0.0, 0.0))
    with pytest.raises(InputError, match=r"lens distortion \(opencv\).*ask for f32"):
        protocol.encode_compact(depth, distorted, seq=0)
    skewed = Intrinsics(intr.fx, intr.fy, intr.cx, intr.cy, 32, 24, skew=0.5)
    with pytest.raises(InputError, match="skew"):
        protocol.encode_compact(depth, skewed, seq=0)
    with pytest.raises(InputError, match=r"depth: its size 32x24 does not match the intrinsics 64x48"):
        protocol.encode_compact(depth, default_intrinsics(64, 48), seq=0)
    with pytest.raises(InputError, match="use encode_compact"):
        protocol.encode_cloud(Unprojector(intr)(depth), seq=0, encoding="compact")
    with pytest.raises(ProtocolError, match="max_points does not apply to the compact encoding"):
        protocol.parse_request(json.dumps({"op": "get", "encoding": "compact", "max_points": 10}))
    with pytest.raises(ProtocolError, match="expected a compact message"):
        protocol.decode_compact(protocol.encode_cloud(Unprojector(intr)(depth), seq=0))


def test_compact_scale_fits_the_range_in_uint16():
    for reach in (0.3, 1.0, 5.0, 65.535, 300.0):
        s = protocol.compact_scale(reach)
        assert s * 65535 >= reach and math.isclose(s, reach / 65535, rel_tol=1e-6)
        assert np.float32(s) == s
    assert protocol.compact_scale(0.0) == pytest.approx(0.001)


async def test_server_serves_compact_equal_to_its_f32_cloud():
    async with running(still(96, 72), decimation=2) as srv:
        url = srv.url
        compact = await client.aget_cloud(url, encoding="compact", colors=True, compress="deflate")
        f32 = await client.aget_cloud(url, encoding="f32", colors=True)
        assert len(compact) == len(f32) > 0
        reach = float(np.abs(f32.points).max())
        assert np.abs(compact.points - f32.points).max() <= reach / 65535 * 2
        async with connect(url + "/v1", max_size=None) as ws:
            await ws.send(json.dumps({"op": "get", "encoding": "compact", "decimation": 1}))
            frame = protocol.decode_compact(await ws.recv())
            assert frame.depth.shape == (72, 96) and frame.color is None
            await ws.send(json.dumps({"op": "info"}))
            assert "compact" in json.loads(await ws.recv())["encodings"]


async def test_server_refuses_compact_under_a_voxel_grid_and_the_session_goes_on():
    async with running(still(64, 48), voxel_m=0.05) as srv, connect(srv.url + "/v1", max_size=None) as ws:
        await ws.send(json.dumps({"op": "get", "encoding": "compact"}))
        reply = json.loads(await ws.recv())
        assert reply["code"] == "bad_request" and "--voxel" in reply["error"]
        await ws.send(json.dumps({"op": "get", "encoding": "f32"}))
        assert len(protocol.decode_cloud(await ws.recv())[1]) > 0
