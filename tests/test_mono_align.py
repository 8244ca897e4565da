"""depthcloud.mono.align: robust scale/shift fits against known answers, and sample gathering."""

from __future__ import annotations

import numpy as np
import pytest

from depthcloud.camera import Intrinsics
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError
from depthcloud.frame import Frame
from depthcloud.geometry import Unprojector
from depthcloud.mono.align import AlignFit, align_samples, align_to, fit_alignment


def _noisy(seed: int, n: int = 200, outliers: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.8, 12.0, n)
    bad = rng.permutation(n)[: int(outliers * n)]
    return z, bad, rng.normal(0.0, 0.01, n)


@pytest.mark.parametrize("seed", range(5))
def test_relative_fit_recovers_scale_and_shift_within_1_percent(seed: int) -> None:
    # A relative model: r = (1/z − t) / s with s = 2.5, t = 0.04 (r > 0 for z ≤ 12 m); 1 % noise,
    # 20 % gross outliers.
    s_true, t_true = 2.5, 0.04
    z, bad, noise = _noisy(seed)
    r = (1.0 / z - t_true) / s_true * (1.0 + noise)
    r[bad] *= np.random.default_rng(seed + 100).uniform(1.5, 4.0, bad.size)  # wrong by 50 %..300 %
    fit = fit_alignment(r, z, kind="relative")
    assert fit.scale == pytest.approx(s_true, rel=0.01)
    assert fit.shift == pytest.approx(t_true, rel=0.01)
    assert fit.points_total == 200 and 150 <= fit.points_used <= 165  # the 40 outliers are out
    assert fit.residual < 0.02


@pytest.mark.parametrize("seed", range(5))
def test_metric_fit_recovers_scale_within_1_percent(seed: int) -> None:
    z, bad, noise = _noisy(seed)
    d = z / 1.3 * (1.0 + noise)
    d[bad] = np.random.default_rng(seed + 7).uniform(0.1, 30.0, bad.size)
    fit = fit_alignment(d, z, kind="metric")
    assert fit.scale == pytest.approx(1.3, rel=0.01) and fit.shift == 0.0
    assert fit.points_used <= 170
    np.testing.assert_allclose(fit.apply(np.array([1.0, 0.0])), [1.3 * 1.0, 0.0], rtol=0.01)


def test_exact_data_fits_exactly_and_apply_inverts() -> None:
    z = np.linspace(1.0, 5.0, 50)
    r = (1.0 / z - 0.05) / 0.5
    fit = fit_alignment(r, z, kind="relative")
    assert fit.scale == pytest.approx(0.5, rel=1e-9) and fit.shift == pytest.approx(0.05, rel=1e-7)
    np.testing.assert_allclose(fit.apply(r), z, rtol=1e-6)
    assert fit.residual < 1e-6 and fit.points_used == 50
    assert "1/z = 0.5*r + 0.05" in fit.describe()
    # an inverse depth that the fit maps to <= 0 is invalid, not negative depth
    assert AlignFit("relative", 1.0, -1.0, 1, 1, 0.0).apply(np.array([0.5]))[0] == 0.0


def test_invalid_samples_are_skipped_and_too_few_refused() -> None:
    with pytest.raises(InputError, match="need at least 3"):
        fit_alignment(np.array([1.0, 2.0, 0.0]), np.array([1.0, 0.0, 2.0]), kind="relative")
    with pytest.raises(InputError, match="same number"):
        fit_alignment(np.ones(3), np.ones(4), kind="metric")
    with pytest.raises(InputError, match="kind"):
        fit_alignment(np.ones(3), np.ones(3), kind="absolute")
    with pytest.raises(InputError, match="no positive scale"):
        fit_alignment(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), kind="relative")  # r rises with z


def test_samples_from_depth_cloud_and_frame(asym_intrinsics: Intrinsics) -> None:
    intr = asym_intrinsics
    depth = np.zeros(intr.shape, np.float32)
    depth[10, 20], depth[30, 5], depth[47, 63] = 2.0, 3.5, 1.25
    rows, cols, z = align_samples(depth, intr)
    assert sorted(zip(rows.tolist(), cols.tolist(), z.tolist(), strict=False)) == [(10, 20, 2.0), (30, 5, 3.5), (47, 63, 1.25)]
    cloud = Unprojector(intr)(depth)
    r2, c2, z2 = align_samples(cloud, intr)
    assert sorted(zip(r2.tolist(), c2.tolist(), strict=False)) == [(10, 20), (30, 5), (47, 63)]
    np.testing.assert_allclose(sorted(z2), [1.25, 2.0, 3.5], rtol=1e-6)
    r3, c3, _ = align_samples(Frame(depth, intr), intr)
    assert sorted(zip(r3.tolist(), c3.tolist(), strict=False)) == [(10, 20), (30, 5), (47, 63)]
    # a half-resolution depth of the same camera lands on the matching full-resolution pixels
    half = np.zeros((24, 32), np.float32)
    half[5, 10] = 2.0
    r4, c4, z4 = align_samples(half, intr)
    u_full = (10 + 0.5) * 2 - 0.5
    assert r4.tolist() == [round((5 + 0.5) * 2 - 0.5)] and abs(c4[0] - u_full) <= 0.5 and z4[0] == pytest.approx(2.0)
    with pytest.raises(InputError, match="optical frame"):
        align_samples(cloud.to_frame("zup"), intr)
    with pytest.raises(InputError, match="aspect ratio"):
        align_samples(np.ones((10, 10), np.float32), intr)


def test_align_to_a_sparse_cloud(asym_intrinsics: Intrinsics) -> None:
    intr = asym_intrinsics
    truth = np.full(intr.shape, 2.0, np.float32) + np.linspace(0, 1, intr.width, dtype=np.float32)[None, :]
    pred = truth / 1.1
    rng = np.random.default_rng(3)
    pick = rng.choice(truth.size, 40, replace=False)
    sparse = np.zeros_like(truth)
    sparse.flat[pick] = truth.flat[pick]
    fit = align_to(pred, PointCloud(Unprojector(intr)(sparse).points), intr, kind="metric")
    assert fit.scale == pytest.approx(1.1, rel=1e-5) and fit.points_total == 40
