"""service_config.json parsing and the disparity → depth → points model (no network here)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from depthcloud.amiga.client import (
    DisparityModel,
    ServiceConfig,
    Subscription,
    parse_service_config,
    read_service_config,
    stream_path,
)
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import ConfigError, InputError
from depthcloud.geometry import disparity_to_depth

CONFIG = {
    "name": "oak0", "port": 50010, "host": "localhost", "log_level": "INFO",
    "subscriptions": [{"uri": {"path": "/disparity", "query": "service_name=oak0"}, "every_n": 5}],
}


# -- service_config.json ----------------------------------------------------------------------------


def test_reads_farm_ng_service_config(tmp_path):
    p = tmp_path / "service_config.json"
    p.write_text(json.dumps(CONFIG))
    cfg = read_service_config(p)
    assert cfg == ServiceConfig("oak0", "localhost", 50010, (Subscription("/disparity", "service_name=oak0", 5),),
                                "INFO", str(p))
    assert cfg.address == "localhost:50010"
    assert cfg.stream_path("disparity") == "/disparity" and cfg.every_n("disparity") == 5
    assert cfg.stream_path("calibration") == "/calibration" and cfg.every_n("calibration") == 1


def test_config_is_the_one_farm_ng_core_parses(tmp_path):
    from farm_ng.core.event_service_pb2 import EventServiceConfig
    from google.protobuf.json_format import ParseDict

    assert parse_service_config(CONFIG).to_proto() == ParseDict(CONFIG, EventServiceConfig())


def test_layouts():
    assert stream_path("oak0", "disparity") == "/disparity"
    assert stream_path("oak/1", "disparity") == "oak/1/disparity"
    cfg = parse_service_config({"name": "oak/1", "port": 50010, "host": "localhost"})
    assert cfg.stream_path("calibration") == "oak/1/calibration"


def test_multi_service_configs_pick_by_name():
    doc = {"configs": [CONFIG, {**CONFIG, "name": "oak/1", "subscriptions": []}]}
    assert parse_service_config(doc, name="oak/1").name == "oak/1"
    with pytest.raises(ConfigError, match=r"key 'configs': holds several services \(oak0, oak/1\)"):
        parse_service_config(doc)
    with pytest.raises(ConfigError, match=r"no service named 'oak9' \(have oak0, oak/1\)"):
        parse_service_config(doc, name="oak9")
    assert parse_service_config({"configs": [CONFIG]}).name == "oak0"
    with pytest.raises(ConfigError, match="the service is 'oak0', not 'oak1'"):
        parse_service_config(CONFIG, name="oak1")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"name": ""}, r"key 'name': expected a service name"),
        ({"port": "50010"}, r"key 'port': expected a port number 1\.\.65535, got '50010'"),
        ({"port": 0}, r"key 'port': expected a port number"),
        ({"host": ""}, r"key 'host': expected a host"),
        ({"log_level": "LOUD"}, r"key 'log_level': expected one of"),
        ({"subscriptions": {}}, r"key 'subscriptions': expected a list"),
        ({"subscriptions": [{"path": "/disparity"}]}, r"key 'subscriptions\[0\]': expected"),
        ({"subscriptions": [{"uri": {"path": "/d"}, "every_n": -1}]}, r"subscriptions\[0\]\.every_n': expected an integer"),
        ({"colour": 1}, r"unknown key\(s\) colour"),
    ],
)
def test_bad_config_values_name_the_key(change, match):
    with pytest.raises(ConfigError, match=match):
        parse_service_config({**CONFIG, **change})


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match=r"none\.json: no such file"):
        read_service_config(tmp_path / "none.json")
    with pytest.raises(ConfigError, match="is a folder"):
        read_service_config(tmp_path)
    p = tmp_path / "bad.json"
    p.write_text('{\n  "name": "oak0",\n  "port": 50010,,\n}')
    with pytest.raises(ConfigError, match=r"bad\.json: line 3: not valid JSON: Expecting property name"):
        read_service_config(p)
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_service_config(p)
    p.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected an object, got list"):
        read_service_config(p)


# -- the disparity model ----------------------------------------------------------------------------


@pytest.fixture
def model(asym_intrinsics: Intrinsics) -> DisparityModel:
    return DisparityModel(asym_intrinsics, 0.075)


def test_depth_is_f_b_over_d_for_every_byte(model):
    d = np.arange(256, dtype=np.uint8).reshape(16, 16)
    intr = model.intrinsics.resized(16, 16)
    m = DisparityModel(intr, 0.075)
    z = m.depth(d)
    assert z.dtype == np.float32 and z.shape == (16, 16)
    ref = disparity_to_depth(d.astype(np.float64), intr.fx, 0.075)
    np.testing.assert_allclose(z, ref, rtol=1e-6)
    assert z[0, 0] == 0  # d = 0 is invalid
    assert z.ravel()[32] == pytest.approx(intr.fx * 0.075 / 32)


def test_cloud_matches_opencv_reprojection(rng):
    """Independent reference: cv2.reprojectImageTo3D with the Q of the rectified rig (Q has one focal
    length, so fx = fy here; the principal point stays off-centre and H ≠ W)."""
    intr = Intrinsics(fx=430.5, fy=430.5, cx=40.7, cy=20.3, width=64, height=48)
    model = DisparityModel(intr, 0.075)
    d = rng.integers(0, 120, size=intr.shape, dtype=np.uint8)
    cloud = model.cloud(d, min_depth_m=0.0, max_depth_m=np.inf)
    Q = StereoRig.from_rectified(intr, 0.075).Q
    ref = cv2.reprojectImageTo3D(d.astype(np.float32), Q)[d > 0]
    assert cloud.points.shape == ref.shape
    np.testing.assert_allclose(cloud.points, ref, rtol=1e-5, atol=1e-6)


def test_cloud_keeps_the_depth_range_and_pins_the_principal_point():
    intr = Intrinsics(fx=400.0, fy=380.0, cx=5.0, cy=2.0, width=9, height=4)
    m = DisparityModel(intr, 0.1)  # fB = 40 px·m
    d = np.zeros((4, 9), np.uint8)
    d[2, 5] = 20   # Z = 2 m at the principal point
    d[0, 0] = 250  # Z = 0.16 m: nearer than 0.2 m, dropped by default
    d[3, 8] = 5    # Z = 8 m: farther than 7.5 m, dropped by default
    d[1, 7] = 40   # Z = 1 m, off-centre: x = (7-5)/400, y = (1-2)/380
    cloud = m.cloud(d)
    np.testing.assert_allclose(cloud.points, [[2.0 / 400, -1.0 / 380, 1.0], [0.0, 0.0, 2.0]], rtol=1e-6)
    assert len(m.cloud(d, min_depth_m=0.0, max_depth_m=10.0).points) == 4
    assert m.depth_error_m(2.0) == pytest.approx(4.0 * 0.5 / 40)


def test_degenerate_sizes():
    for w, h in [(1, 1), (7, 1), (1, 7)]:
        m = DisparityModel(Intrinsics(100.0, 100.0, 0.0, 0.0, w, h), 0.05)
        d = np.full((h, w), 10, np.uint8)
        assert m.depth(d).shape == (h, w)
        assert len(m.cloud(d).points) == w * h


def test_model_refuses_bad_input(model):
    with pytest.raises(InputError, match="expected uint8"):
        model.depth(np.zeros(model.intrinsics.shape, np.uint16))
    with pytest.raises(InputError, match="expected a unsigned integer array, got dtype float32"):
        model.depth(np.zeros(model.intrinsics.shape, np.float32))
    with pytest.raises(InputError, match=r"its size 3x2 does not match the camera 64x48"):
        model.depth(np.zeros((2, 3), np.uint8))
    with pytest.raises(InputError, match="baseline_m: expected a positive number"):
        DisparityModel(model.intrinsics, 0.0)
    with pytest.raises(InputError, match="expected Intrinsics"):
        DisparityModel("K", 0.1)  # type: ignore[arg-type]


def test_distortion_is_dropped_because_disparity_is_rectified():
    intr = Intrinsics(400.0, 400.0, 10.0, 5.0, 20, 10, dist=(0.1, -0.05, 0.0, 0.0, 0.0))
    assert not DisparityModel(intr, 0.075).intrinsics.is_distorted


@pytest.mark.parametrize(("lo", "hi"), [(0.2, 7.5), (0.0, np.inf), (1.0, 1.5), (100.0, 200.0)])
def test_fused_kernel_gives_the_points_of_the_depth_path(rng, lo, hi):
    """The one-pass 8-bit kernel against the generic depth → Unprojector path, bit for bit."""
    from depthcloud.geometry import depth_to_points

    intr = Intrinsics(fx=427.3, fy=426.9, cx=322.6, cy=203.7, width=640, height=400)
    m = DisparityModel(intr, 0.0755)
    d = rng.integers(0, 256, size=intr.shape, dtype=np.uint8)
    ref = depth_to_points(m.depth(d), intr, min_depth_m=lo, max_depth_m=hi)
    got = m.cloud(d, min_depth_m=lo, max_depth_m=hi, stamp=3.5)
    np.testing.assert_array_equal(got.points, ref.points)
    assert got.stamp == 3.5 and got.frame == "optical"
    if lo == 100.0:
        assert got.points.shape == (0, 3)


@pytest.mark.parametrize("vector", [True, False])
@pytest.mark.parametrize(("w", "h"), [(640, 400), (37, 5), (16, 3), (8, 2), (70000, 1)])
def test_both_write_kernels_give_the_points_of_the_depth_path(rng, monkeypatch, vector, w, h):
    """The 16-pixel (AVX-512) kernel and the one-pixel kernel, bit for bit, on sizes that are and
    are not multiples of 16 (and wider than a 16-bit row count), contiguous or not."""
    from depthcloud.amiga import client
    from depthcloud.geometry import HAVE_NUMBA, depth_to_points

    if not HAVE_NUMBA:
        pytest.skip("the compiled kernels need numba")
    monkeypatch.setattr(client, "_AVX512", [vector])
    intr = Intrinsics(fx=427.3, fy=426.9, cx=w / 2 - 0.4, cy=h / 2 + 0.3, width=w, height=h)
    m = DisparityModel(intr, 0.0755)
    wide = rng.integers(0, 256, size=(h, 2 * w), dtype=np.uint8)
    for d in (wide[:, :w].copy(), wide[:, ::2]):
        for lo, hi in [(0.2, 7.5), (0.0, np.inf), (1.0, 1.5)]:
            ref = depth_to_points(m.depth(d), intr, min_depth_m=lo, max_depth_m=hi)
            np.testing.assert_array_equal(m.cloud(d, min_depth_m=lo, max_depth_m=hi).points, ref.points)
    assert client._AVX512[0] is vector  # the kernel compiled and ran
