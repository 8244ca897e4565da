"""depthcloud.plausibility: warnings for results that are probably wrong (issue 14, defect 5)."""

from __future__ import annotations

import numpy as np

from depthcloud.camera import Intrinsics
from depthcloud.cloud import PointCloud
from depthcloud.geometry import Unprojector
from depthcloud.plausibility import (
    cloud_warnings,
    depth_warnings,
    empty_cloud_message,
    limit_warnings,
    saturation_warnings,
)

INTR = Intrinsics(525.0, 480.0, 31.7, 23.3, 64, 48)


def test_near_empty_cloud_warns_with_counts():
    assert cloud_warnings(PointCloud(np.ones((100, 3), np.float32)), 3072) == []
    (w,) = cloud_warnings(12, 3072, what="d.png")
    assert w.startswith("d.png: near-empty cloud, 12 points from 3072 pixels (0.39 %)")
    assert cloud_warnings(0, 3072) == []  # empty is the caller's error, not a warning
    assert empty_cloud_message("d.png", 3072, hint="--allow-empty writes it anyway") == (
        "d.png: the cloud is empty (0 points from 3072 pixels); nothing was written; --allow-empty writes it anyway")


def test_depth_in_millimetres_read_as_metres_is_caught():
    depth = np.full((48, 64), 1500.0, np.float32)  # 1.5 m stored in mm, read as metres
    depth[0, 0] = 0
    (w,) = depth_warnings(depth, what="mm.npy")
    assert "median depth 1500 m" in w and "--depth-scale 0.001" in w
    (w,) = depth_warnings(np.full((4, 4), 0.0015, np.float32))
    assert "median depth 1.5 mm" in w and "applied twice" in w
    assert depth_warnings(np.full((4, 4), 1.5, np.float32)) == []
    assert depth_warnings(np.zeros((4, 4), np.float32)) == []


def test_limits_in_millimetres_are_caught_with_the_evidence():
    depth = np.full((48, 64), 1.2, np.float32)
    w = limit_warnings(300, 3000, depth)
    assert len(w) == 2
    assert "--min-depth 300 and --max-depth 3000 m look like millimetres" in w[0]
    assert "give --min-depth 0.3 --max-depth 3" in w[0]
    assert "keep 0 of 3072 valid depths (0 %); the depths lie in 1.2..1.2 m" in w[1]
    assert limit_warnings(0.3, 3.0, depth) == []
    assert limit_warnings(None, None, depth) == []
    assert limit_warnings(0.0, float("inf")) == []


def test_a_clipped_disparity_search_is_caught():
    # A near board beyond the search: SGBM piles its matches up at the top of the range (79 px).
    rng = np.random.default_rng(3)
    disp = rng.uniform(10, 60, (48, 64)).astype(np.float32)
    disp[:10, :10] = 79.0
    (w,) = saturation_warnings(disp, min_disparity=0, num_disparities=80, focal_px=534.0, baseline_m=0.0834)
    assert "3 % of matched pixels (100) sit at the disparity search limit (79 px = 0.564 m)" in w
    assert "--min-depth 0.28" in w
    # The same pixels not matched (hole-filled), or a search wide enough: no warning.
    matched = np.ones_like(disp, bool)
    matched[:10, :10] = False
    assert saturation_warnings(disp, min_disparity=0, num_disparities=80, focal_px=534.0, baseline_m=0.0834,
                               matched=matched) == []
    assert saturation_warnings(disp, min_disparity=0, num_disparities=96, focal_px=534.0, baseline_m=0.0834) == []


def test_unprojector_cloud_feeds_the_checks():
    depth = np.full((48, 64), 1.0, np.float32)
    cloud = Unprojector(INTR)(depth, min_depth_m=300.0)
    assert len(cloud) == 0
    assert limit_warnings(300.0, None, depth)[0].startswith("depth limits: --min-depth 300 m look like millimetres")
