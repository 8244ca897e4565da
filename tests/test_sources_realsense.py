"""RealSense: the D435 .bag against pyrealsense2's own point cloud, distortion mapping, projection
against librealsense's, presets, options, a device that disappears (fake pipeline), missing extra."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import need, optional_import

from depthcloud.camera import Intrinsics
from depthcloud.errors import ConfigError, FormatError, InputError, MissingDependencyError, SourceError
from depthcloud.geometry import Unprojector
from depthcloud.sources import ReconnectPolicy, open_source
from depthcloud.sources.realsense import (
    BagSource,
    RealSenseSource,
    RsCamera,
    align_color_to_depth,
    depth_to_metres,
    intrinsics_from_rs,
    load_preset,
    project_points,
)

rs = optional_import("pyrealsense2")

BAG = "realsense_bag/single_depth_color_640x480.bag"


def _reference_clouds(path: Path) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(frame number, z16, valid vertices) of every depth frame, by pyrealsense2 alone."""
    dev = rs.context().load_device(str(path))
    dev.as_playback().set_real_time(False)
    sensor = next(s for s in dev.query_sensors() if s.is_depth_sensor())
    pc = rs.pointcloud()
    out: list[tuple[int, np.ndarray, np.ndarray]] = []
    done = threading.Event()

    def cb(f: Any) -> None:
        verts = np.asanyarray(pc.calculate(f).get_vertices()).view(np.float32).reshape(-1, 3)
        out.append((f.get_frame_number(), np.asanyarray(f.get_data()).copy(), verts[verts[:, 2] > 0].copy()))
        if len(out) == 2:
            done.set()

    sensor.open(sensor.get_stream_profiles()[0])
    sensor.start(cb)
    done.wait(10)
    sensor.stop()
    sensor.close()
    return out


@pytest.mark.data
async def test_bag_plays_every_depth_frame_and_matches_librealsense_cloud(data_dir: Path) -> None:
    path = need(data_dir, BAG)
    async with open_source(f"bag:{path}", realtime=False) as src:
        frames = [f async for f in src]
    assert isinstance(src, BagSource)
    assert [f.seq for f in frames] == [169, 170]  # sensor-level: both depth frames, not one frameset
    assert frames[1].stamp - frames[0].stamp == pytest.approx(0.16668, abs=1e-4)
    intr = frames[0].intrinsics
    assert (intr.width, intr.height, intr.model) == (640, 480, "none")
    assert intr.fx == pytest.approx(390.431, abs=1e-3) and intr.fy == pytest.approx(390.431, abs=1e-3)
    assert (intr.cx, intr.cy) == pytest.approx((331.388, 242.187), abs=1e-3)
    assert src.depth_scale == pytest.approx(0.001)
    ref = _reference_clouds(path)
    assert [r[0] for r in ref] == [169, 170]
    for frame, (_, raw, verts) in zip(frames, ref, strict=True):
        assert np.array_equal(frame.depth, raw.astype(np.float32) * np.float32(src.depth_scale))
        cloud = Unprojector(frame.intrinsics)(frame.depth)
        assert cloud.points.shape == verts.shape and len(verts) > 280_000
        assert np.abs(cloud.points - verts).max() <= 1e-6  # measured: 0.0 (bit-exact)


@pytest.mark.data
async def test_bag_aligned_colour_and_loop(data_dir: Path) -> None:
    path = need(data_dir, BAG)
    async with open_source(f"bag:{path}", realtime=False, loop=True) as src:
        frames = [await src.next_frame(timeout_s=5.0) for _ in range(5)]
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5, seqs
    stamps = [f.stamp for f in frames]
    assert stamps == sorted(stamps)
    color = frames[-1].color  # the colour frame of the first pass is kept for later passes
    assert color is not None, [f.color is None for f in frames]
    assert color.shape == (480, 640, 3)
    # Colour (fx 613) sees a narrower cone than depth (fx 390): the depth image's border stays black.
    assert (color[:, :20] == 0).all() and color[200:280, 280:360].mean() > 20


@pytest.mark.data
async def test_bag_realtime_is_paced(data_dir: Path) -> None:
    path = need(data_dir, BAG)
    t0 = time.monotonic()
    async with open_source(f"bag:{path}", realtime=True) as src:
        frames = [f async for f in src]
    assert len(frames) >= 1 and time.monotonic() - t0 >= 0.1  # the recording spans 0.167 s


async def test_missing_and_corrupt_bag(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.bag: no such \.bag file"):
        async with open_source(f"bag:{tmp_path / 'nope.bag'}"):
            pass
    bad = tmp_path / "bad.bag"
    bad.write_bytes(b"#ROSBAG V2.0\n" + bytes(range(256)) * 40)
    # Its record lengths are checked before librealsense sees it (issue 14: a corrupt bag made it
    # allocate 1.9 GB), so the spec itself is refused, with where and why.
    with pytest.raises(FormatError, match=r"bad\.bag: byte 13: .*\(a corrupt or truncated \.bag\)"):
        open_source(f"bag:{bad}")
    with pytest.raises(ConfigError, match=r"expected 'bag:FILE\.bag'"):
        open_source("bag:")


def test_preset_json_validation(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"param-depthunits": "1000", "param-disableautoexposure": "0"}))
    assert "param-depthunits" in load_preset(good)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"device": {"fw version": "5.13"}, "parameters": {"param-depthunits": "1000"}}))
    assert load_preset(schema)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "param-depthunits": "1000",\n  oops\n}')
    with pytest.raises(FormatError, match=r"broken\.json: line 3: not a RealSense preset: invalid JSON"):
        load_preset(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"width": 640}))
    with pytest.raises(FormatError, match="not a RealSense advanced-mode preset: expected an object with 'param-"):
        load_preset(other)
    with pytest.raises(SourceError, match="preset file not found"):
        load_preset(tmp_path / "missing.json")
    with pytest.raises(FormatError, match="not a RealSense advanced-mode preset"):
        open_source(f"realsense:preset={other}")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("realsense:fps=7", r"fps: expected one of 6, 15, 30, 60, 90, got 7"),
        ("realsense:width=0", r"width: expected an integer in 1\.\.4096, got 0"),
        ("realsense:height=abc", r"key 'height': realsense: expected an integer"),
        ("realsense:speed=3", r"key 'speed'.*expected key=value with keys"),
        ("realsense:preset=shiny", r"preset: expected a \.json file or one of"),
    ],
)
def test_out_of_range_options(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_source(spec)


def test_spec_parses_into_options() -> None:
    src = open_source("realsense:serial=123,width=640,height=480,fps=15,preset=high_accuracy,color=0")
    assert isinstance(src, RealSenseSource)
    assert (src.serial, src.width, src.height, src.fps, src.preset_name, src.want_color) == (
        "123", 640, 480, 15, "high_accuracy", False
    )


def test_intrinsics_mapping_of_distortion_models() -> None:
    base = dict(width=64, height=48, fx=50.0, fy=51.0, ppx=30.5, ppy=20.5)
    assert intrinsics_from_rs(RsCamera(**base, model="inverse_brown_conrady")).model == "none"  # zeros
    bc = intrinsics_from_rs(RsCamera(**base, model="brown_conrady", coeffs=(0.1, -0.02, 0.001, 0.002, 0.003)))
    assert bc.model == "opencv" and bc.dist == (0.1, -0.02, 0.001, 0.002, 0.003)
    kb = intrinsics_from_rs(RsCamera(**base, model="kannala_brandt4", coeffs=(0.1, 0.01, 0.0, 0.0, 0.0)))
    assert kb.model == "fisheye" and kb.dist == (0.1, 0.01, 0.0, 0.0)
    with pytest.raises(SourceError, match=r"'modified_brown_conrady'.*no OpenCV equivalent"):
        intrinsics_from_rs(RsCamera(**base, model="modified_brown_conrady", coeffs=(0.1, 0, 0, 0, 0)))
    # From a real pyrealsense2.intrinsics object.
    ri = rs.intrinsics()
    ri.width, ri.height, ri.fx, ri.fy, ri.ppx, ri.ppy = 640, 480, 390.5, 391.0, 320.25, 240.75
    ri.model = rs.distortion.brown_conrady
    ri.coeffs = [0.0] * 5
    assert intrinsics_from_rs(ri) == Intrinsics(390.5, 391.0, 320.25, 240.75, 640, 480)


@pytest.mark.parametrize("model", ["none", "brown_conrady", "modified_brown_conrady", "inverse_brown_conrady"])
def test_projection_matches_librealsense(model: str, rng: np.random.Generator) -> None:
    coeffs = (0.12, -0.05, 0.002, -0.003, 0.01)
    cam = RsCamera(640, 480, 613.2, 613.4, 319.9, 239.2, model, coeffs)
    ri = rs.intrinsics()
    ri.width, ri.height, ri.fx, ri.fy, ri.ppx, ri.ppy = 640, 480, cam.fx, cam.fy, cam.ppx, cam.ppy
    ri.model = getattr(rs.distortion, model)
    ri.coeffs = list(coeffs)
    pts = np.column_stack([rng.uniform(-0.8, 0.8, 50), rng.uniform(-0.6, 0.6, 50), rng.uniform(0.5, 4, 50)])
    pts = pts.astype(np.float32)
    mine = project_points(pts, cam)
    ref = np.array([rs.rs2_project_point_to_pixel(ri, p.tolist()) for p in pts], dtype=np.float32)
    assert np.abs(mine - ref).max() < 1e-3  # pixels; measured ~1e-5 (float32 operation order)


def test_align_identity_keeps_colour_and_blackens_invalid(rng: np.random.Generator) -> None:
    intr = Intrinsics(60.0, 62.0, 20.3, 14.7, 40, 30)
    cam = RsCamera(40, 30, 60.0, 62.0, 20.3, 14.7)
    depth = rng.uniform(0.5, 3.0, (30, 40)).astype(np.float32)
    depth[5, 7] = 0.0
    color = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = align_color_to_depth(depth, intr, color, cam, rotation=np.eye(3), translation_m=np.zeros(3))
    expect = color.copy()
    expect[5, 7] = 0
    assert np.array_equal(out, expect)
    # A colour camera shifted 1 m to the right sees every point 1 m further left: all of it outside.
    out = align_color_to_depth(
        np.full((30, 40), 1.0, np.float32), intr, color, cam, rotation=np.eye(3), translation_m=np.array([-1.0, 0, 0])
    )
    assert (out == 0).all()


def test_depth_to_metres_units_and_validation() -> None:
    raw = np.array([[0, 1000, 65535]], dtype=np.uint16)
    m = depth_to_metres(raw, 0.001)
    assert m.dtype == np.float32 and m[0, 0] == 0.0 and m[0, 1] == np.float32(1000) * np.float32(0.001)
    with pytest.raises(InputError, match="depth: expected a unsigned integer array"):
        depth_to_metres(raw.astype(np.float32), 0.001)
    with pytest.raises(InputError, match="depth_scale: expected a positive number"):
        depth_to_metres(raw, 0.0)


# -- a device that disappears ---------------------------------------------------------------------


class FakeDevice:
    """Stands in for a RealSense behind rs.pipeline: delivers `frames` frames, then vanishes
    (RuntimeError, as librealsense raises), and comes back after `gone_for` failed starts."""

    def __init__(self, frames: int, gone_for: int) -> None:
        self.frames = frames
        self.gone_for = gone_for
        self.starts = 0
        self.served = 0
        self.present = True

    def pipeline(self) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, dev: FakeDevice) -> None:
        self.dev = dev

    def start(self, cfg: Any) -> Any:
        self.dev.starts += 1
        if not self.dev.present:
            if self.dev.gone_for <= 0:
                self.dev.present = True
            else:
                self.dev.gone_for -= 1
                raise RuntimeError("No device connected")
        cam = RsCamera(8, 6, 5.0, 5.0, 3.5, 2.5)
        sensor = type("S", (), {"get_depth_scale": lambda self: 0.001})()
        device = type("D", (), {"first_depth_sensor": lambda self: sensor})()
        vsp = type("V", (), {"get_intrinsics": lambda self: cam})()
        stream = type("St", (), {"as_video_stream_profile": lambda self: vsp})()
        return type("P", (), {"get_device": lambda self: device, "get_stream": lambda self, s: stream})()

    def wait_for_frames(self, timeout_ms: int) -> Any:
        if not self.dev.present or self.dev.served >= self.dev.frames:
            self.dev.present = False
            time.sleep(0.01)
            raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
        self.dev.served += 1
        n = self.dev.served
        data = np.full((6, 8), 1000 + n, np.uint16)
        depth = type("F", (), {
            "get_data": lambda self: data, "get_frame_number": lambda self: n,
            "get_timestamp": lambda self: 1000.0 * n,
        })()
        return type("FS", (), {"get_depth_frame": lambda self: depth})()

    def stop(self) -> None:
        pass


POLICY = ReconnectPolicy(max_retries=3, backoff_s=0.01, max_backoff_s=0.02)


async def test_device_disappears_and_comes_back() -> None:
    dev = FakeDevice(frames=2, gone_for=1)
    src = RealSenseSource(width=8, height=6, fps=30, color=False, reconnect=POLICY, pipeline_factory=dev.pipeline)
    dev_frames = []
    async with src:
        dev_frames.append(await src.next_frame(timeout_s=2.0))
        dev.frames = 3  # it will serve one more frame once it is back
        while len(dev_frames) < 2 or dev_frames[-1].seq < 3:
            dev_frames.append(await src.next_frame(timeout_s=2.0))
    st = src.stats
    assert dev_frames[-1].seq == 3 and dev_frames[-1].depth[0, 0] == np.float32(1003) * np.float32(0.001)
    assert (st.reconnects >= 1 and "device lost: Frame didn't arrive" in (st.last_error or "")) or (
        "No device connected" in (st.last_error or "")
    )


async def test_device_gone_for_good_reports_failed_and_never_hangs() -> None:
    dev = FakeDevice(frames=1, gone_for=100)
    src = RealSenseSource(width=8, height=6, fps=30, color=False, reconnect=POLICY, pipeline_factory=dev.pipeline)
    async with src:
        assert (await src.next_frame(timeout_s=2.0)).seq == 1
        with pytest.raises(SourceError, match=r"failed: cannot start a RealSense device.*No device connected"):
            await asyncio.wait_for(src.next_frame(), 10.0)
        st = src.stats
    assert st.state == "failed" and st.reconnects == 3 and "gave up after 3 reconnect attempts" in (st.last_error or "")


async def test_no_device_at_start_raises() -> None:
    dev = FakeDevice(frames=0, gone_for=5)
    dev.present = False
    src = RealSenseSource(color=False, pipeline_factory=dev.pipeline)
    with pytest.raises(SourceError, match="cannot start a RealSense device at 848x480@30"):
        await asyncio.wait_for(src.start(), 5.0)


@pytest.mark.slow  # librealsense looks for the device for ~15 s before it gives up
async def test_real_pipeline_without_a_device_raises_at_start() -> None:
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense device is connected")
    with pytest.raises(SourceError, match=r"cannot start device 12345 at 640x480@15 \(No device connected\)"):
        await asyncio.wait_for(open_source("realsense:serial=12345,width=640,height=480,fps=15").start(), 20)


def test_missing_pyrealsense2_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'depthcloud\[realsense\]'"):
        open_source("bag:some.bag")
    with pytest.raises(MissingDependencyError, match="pyrealsense2 is not installed"):
        open_source("realsense")


@pytest.mark.data
async def test_stopping_a_bag_nobody_reads_does_not_hang(data_dir: Path) -> None:
    path = need(data_dir, BAG)
    src = open_source(f"bag:{path}", realtime=False, loop=True)
    await asyncio.wait_for(src.start(), 20)
    await asyncio.sleep(0.3)  # playback fills the queue and blocks: nobody takes frames
    await asyncio.wait_for(src.stop(), 10)
    assert src.stats.state == "stopped"
