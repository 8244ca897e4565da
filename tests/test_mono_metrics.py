"""depthcloud.mono.metrics: AbsRel, RMSE, δ<1.25 on known answers and on real RGB-D pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import need
from depthcloud.errors import InputError
from depthcloud.mono.metrics import depth_metrics, score_prediction


def test_known_answers() -> None:
    gt = np.array([[1.0, 2.0], [4.0, 0.0]], np.float32)  # 0 = invalid, not scored
    m = depth_metrics(gt * 1.1, gt)
    assert m.pixels == 3
    assert m.abs_rel == pytest.approx(0.1, rel=1e-6)
    assert m.rmse_m == pytest.approx(0.1 * np.sqrt((1 + 4 + 16) / 3), rel=1e-6)
    assert m.delta1 == 1.0
    m = depth_metrics(np.array([[1.3, 2.0], [4.0, 9.0]], np.float32), gt)
    assert m.delta1 == pytest.approx(2 / 3) and m.abs_rel == pytest.approx(0.1, rel=1e-6)


def test_range_and_clipping() -> None:
    gt = np.array([[1.0, 5.0, 50.0]], np.float32)
    pred = np.array([[0.0, 5.0, 50.0]], np.float32)  # an invalid prediction counts as min_depth
    m = depth_metrics(pred, gt, min_depth_m=0.5, max_depth_m=10.0)
    assert m.pixels == 2 and m.abs_rel == pytest.approx(0.25)
    with pytest.raises(InputError, match="no valid depth pixel"):
        depth_metrics(pred, np.zeros_like(gt))
    with pytest.raises(InputError, match="same size"):
        depth_metrics(pred, gt.T)


def test_scores_with_and_without_alignment() -> None:
    gt = np.linspace(1.0, 4.0, 100, dtype=np.float32).reshape(10, 10)
    metric = score_prediction(gt * 0.8, gt, kind="metric")
    assert metric.raw is not None and metric.raw.abs_rel == pytest.approx(0.2, rel=1e-5)
    assert metric.aligned.abs_rel < 1e-6 and metric.fit.scale == pytest.approx(1.25, rel=1e-6)
    rel = score_prediction((1.0 / gt - 0.1) / 3.0, gt, kind="relative")
    assert rel.raw is None and rel.aligned.abs_rel < 1e-5 and rel.aligned.delta1 == 1.0


def test_real_rgbd_pairs_against_numpy(data_dir: Path) -> None:
    # A constant 2 m "model" on the real pairs: the raw scores follow from the ground truth alone.
    from depthcloud.io.depthimage import read_depth

    root = need(data_dir, "rgbd_open3d_testdata/RGBD")
    for depth_png in sorted((root / "depth").glob("*.png"))[:2]:
        gt = read_depth(depth_png)
        pred = np.full(gt.shape, 2.0, np.float32)
        score = score_prediction(pred, gt, kind="metric")
        z = gt[gt > 0].astype(np.float64)
        assert score.raw is not None and score.raw.pixels == z.size
        assert score.raw.abs_rel == pytest.approx(np.mean(np.abs(2.0 - z) / z), rel=1e-6)
        assert score.raw.rmse_m == pytest.approx(np.sqrt(np.mean((2.0 - z) ** 2)), rel=1e-6)
        ratio = np.maximum(2.0 / z, z / 2.0)
        assert score.raw.delta1 == pytest.approx(np.mean(ratio < 1.25))
        # aligned, the constant moves to where most of the scene is: never worse than raw
        assert score.aligned.delta1 >= score.raw.delta1 - 1e-9
