"""depthcloud.filters on its own: shapes, dtypes, degenerate sizes, conventions, errors, and plain
numpy references. The bit-exact comparison with pyrealsense2 is in test_filters_librealsense.py."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depthcloud import filters as F
from depthcloud.camera import Intrinsics
from depthcloud.errors import ConfigError, InputError
from depthcloud.frame import Frame


def z16_depth(rng: np.random.Generator, h: int = 48, w: int = 64, holes: float = 0.1) -> np.ndarray:
    z = rng.integers(300, 4000, size=(h, w)).astype(np.uint16)
    z[rng.random((h, w)) < holes] = 0
    return z.astype(np.float32) * np.float32(0.001)


def as_z16(depth: np.ndarray) -> np.ndarray:
    return np.rint(depth.astype(np.float64) / np.float64(np.float32(0.001))).astype(np.int64)


# -- threshold ---------------------------------------------------------------------------------


def test_threshold_matches_numpy(rng: np.random.Generator) -> None:
    d = z16_depth(rng)
    out = F.threshold(d, min_m=1.0, max_m=2.5)
    ref = np.where((d >= np.float32(1.0)) & (d <= np.float32(2.5)), d, 0)
    assert out.dtype == np.float32 and out.shape == d.shape
    np.testing.assert_array_equal(out, ref)


def test_threshold_bounds_inclusive_nan_invalid_input_untouched() -> None:
    d = np.array([[1.0, 2.0, np.nan, 0.0, 3.0]], dtype=np.float32)
    keep = d.copy()
    out = F.threshold(d, min_m=1.0, max_m=2.0)
    np.testing.assert_array_equal(out, [[1.0, 2.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(d[:, :2], keep[:, :2])
    assert F.threshold(np.ones((1, 1), np.float32)).tolist() == [[1.0]]  # defaults keep everything


def test_threshold_accepts_float64_and_integers() -> None:
    assert F.threshold(np.full((2, 3), 1.5)).dtype == np.float32
    assert F.threshold(np.full((2, 3), 2, dtype=np.int32), max_m=1).sum() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"min_m": -1}, "min_m: expected a number >= 0"), ({"max_m": float("nan")}, "max_m: expected a finite"),
     ({"min_m": 2, "max_m": 1}, "min_m 2.0 exceeds max_m 1.0")],
)
def test_threshold_bad_options(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(InputError, match=match):
        F.threshold(np.ones((2, 2), np.float32), **kwargs)


@pytest.mark.parametrize(
    ("value", "match"),
    [(np.ones((1, 4, 4)), r"depth: expected shape \(H, W\), got \(1, 4, 4\)"),
     (np.ones((0, 3)), "depth: expected a non-empty array"),
     (np.ones((2, 2), dtype=complex), "depth: expected a float or unsigned integer or integer array")],
)
def test_bad_depth_arrays(value: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        F.threshold(value)
    with pytest.raises(InputError, match=match):
        F.fill_holes(value, "farthest")


# -- decimation --------------------------------------------------------------------------------


def lower_median_reference(d: np.ndarray, s: int) -> np.ndarray:
    ho, wo = d.shape[0] // s, d.shape[1] // s
    out = np.zeros((ho, wo), np.float32)
    for j in range(ho):
        for i in range(wo):
            vals = np.sort(d[j * s:(j + 1) * s, i * s:(i + 1) * s].ravel())
            vals = vals[vals > 0]
            out[j, i] = vals[(len(vals) - 1) // 2] if len(vals) else 0
    return out


@pytest.mark.parametrize("s", [2, 3])
def test_decimate_median_matches_reference(rng: np.random.Generator, asym_intrinsics: Intrinsics, s: int) -> None:
    d = z16_depth(rng, holes=0.4)
    out, intr = F.decimate(d, asym_intrinsics, s)
    ref = lower_median_reference(d, s)
    np.testing.assert_array_equal(out[: ref.shape[0], : ref.shape[1]], ref)
    assert not out[ref.shape[0]:, :].any() and not out[:, ref.shape[1]:].any()
    assert intr.shape == out.shape


@pytest.mark.parametrize("s", [4, 5, 8])
def test_decimate_mean_is_integer_mean_of_valid_z16(rng: np.random.Generator, asym_intrinsics: Intrinsics, s: int) -> None:
    d = z16_depth(rng, holes=0.3)
    out, _ = F.decimate(d, asym_intrinsics, s)
    z = as_z16(d)
    j, i = 1, 2
    block = z[j * s:(j + 1) * s, i * s:(i + 1) * s]
    valid = block[block > 0]
    assert as_z16(out)[j, i] == valid.sum() // len(valid)


@pytest.mark.parametrize(("s", "shape"), [(1, (48, 64)), (2, (24, 32)), (3, (16, 24)), (5, (12, 12)), (7, (8, 12)), (8, (8, 8))])
def test_decimate_output_size_padded_to_four(asym_intrinsics: Intrinsics, s: int, shape: tuple[int, int]) -> None:
    out, intr = F.decimate(np.ones((48, 64), np.float32), asym_intrinsics, s)
    assert out.shape == shape and intr.shape == shape and out.dtype == np.float32


def test_decimate_intrinsics_keep_pixel_centres(asym_intrinsics: Intrinsics) -> None:
    _, k = F.decimate(np.ones((48, 64), np.float32), asym_intrinsics, 2)
    assert (k.fx, k.fy) == (asym_intrinsics.fx / 2, asym_intrinsics.fy / 2)
    # the centre of output pixel u covers input pixels 2u and 2u+1: input u_in = 2u + 0.5
    assert k.cx == pytest.approx((asym_intrinsics.cx - 0.5) / 2)
    assert k.cy == pytest.approx((asym_intrinsics.cy - 0.5) / 2)


def test_decimate_degenerate_sizes() -> None:
    one = Intrinsics(10, 10, 0, 0, 1, 1)
    out, intr = F.decimate(np.full((1, 1), 1.5, np.float32), one, 1)
    assert intr.shape == (4, 4) and (intr.fx, intr.cx) == (10, 0)
    assert out.shape == (4, 4) and out[0, 0] == pytest.approx(1.5) and out.sum() == pytest.approx(1.5)
    row = Intrinsics(10, 10, 3, 0, 8, 1)
    with pytest.raises(InputError, match="smaller than one 2x2 decimation block"):
        F.decimate(np.ones((1, 8), np.float32), row, 2)


@pytest.mark.parametrize(("magnitude", "match"), [(9, "decimation magnitude: expected an integer in 1..8, got 9"),
                                                  (0, "got 0"), (2.5, "expected an integer, got 2.5")])
def test_decimate_bad_magnitude(asym_intrinsics: Intrinsics, magnitude: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        F.decimate(np.ones((48, 64), np.float32), asym_intrinsics, magnitude)  # type: ignore[arg-type]


def test_decimate_size_mismatch(asym_intrinsics: Intrinsics) -> None:
    with pytest.raises(InputError, match="does not match the intrinsics 64x48"):
        F.decimate(np.ones((64, 48), np.float32), asym_intrinsics, 2)
    with pytest.raises(InputError, match="intrinsics: expected Intrinsics"):
        F.decimate(np.ones((48, 64), np.float32), "K", 2)  # type: ignore[arg-type]


# -- temporal ----------------------------------------------------------------------------------


def test_temporal_averages_within_delta_and_restarts_across_edges() -> None:
    tf = F.TemporalFilter(alpha=0.5, delta=20, persistence=3)
    first = np.array([[1.000, 1.000]], np.float32)
    tf.apply(first)
    out = tf.apply(np.array([[1.010, 1.100]], np.float32))
    # 10 mm apart: 0.5·1010 + 0.5·1000 = 1005; 100 mm apart (≥ delta): restart at the new value
    assert as_z16(out).tolist() == [[1005, 1100]]


def test_temporal_truncates_like_a_c_cast() -> None:
    tf = F.TemporalFilter(alpha=0.4, delta=20)
    tf.apply(np.array([[1.000]], np.float32))
    out = tf.apply(np.array([[1.003]], np.float32))
    assert as_z16(out)[0, 0] == math.floor(np.float32(0.4) * 1003 + np.float32(0.6) * 1000)


@pytest.mark.parametrize(("persistence", "valid_before", "filled"), [(0, 4, False), (8, 1, True), (5, 1, True),
                                                                      (3, 1, False), (3, 2, True), (1, 7, False)])
def test_temporal_persistence(persistence: int, valid_before: int, filled: bool) -> None:
    tf = F.TemporalFilter(persistence=persistence)
    for _ in range(valid_before):
        tf.apply(np.array([[1.0]], np.float32))
    out = tf.apply(np.zeros((1, 1), np.float32))
    assert bool(out[0, 0] == pytest.approx(1.0)) is filled


def test_temporal_reset_and_size_change() -> None:
    tf = F.TemporalFilter(alpha=0.5)
    tf.apply(np.ones((2, 2), np.float32))
    tf.reset()
    assert tf.apply(np.full((2, 2), 1.01, np.float32))[0, 0] == pytest.approx(1.01)
    assert tf.apply(np.ones((3, 5), np.float32)).shape == (3, 5)  # new size: fresh state


def test_temporal_does_not_modify_input_and_keeps_dtype() -> None:
    tf = F.TemporalFilter()
    a = np.ones((4, 4), np.float32)
    tf.apply(a)
    b = np.full((4, 4), 1.005, np.float32)
    out = tf.apply(b)
    assert np.all(b == np.float32(1.005)) and out.dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"alpha": 1.5}, "temporal alpha: expected a number <= 1.0"), ({"delta": 0}, "temporal delta: expected an integer in 1..100"),
     ({"persistence": 9}, "temporal persistence: expected an integer in 0..8, got 9"), ({"domain": "z"}, "domain: expected one of")],
)
def test_temporal_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        F.TemporalFilter(**kwargs)  # type: ignore[arg-type]


# -- spatial -----------------------------------------------------------------------------------


def test_spatial_smooths_noise_and_keeps_edges(rng: np.random.Generator) -> None:
    d = np.full((40, 60), 1.0, np.float32)
    d[:, 30:] = 2.0
    noisy = d + rng.normal(0, 0.003, d.shape).astype(np.float32)
    out = F.spatial(noisy, alpha=0.5, delta=20)
    assert np.abs(out - d)[:, 2:28].std() < np.abs(noisy - d)[:, 2:28].std()
    assert out[:, 31:].min() > 1.9 and out[:, :29].max() < 1.1  # the 1 m step survives


def test_spatial_disparity_domain_and_holes_fill(rng: np.random.Generator) -> None:
    d = z16_depth(rng, holes=0.05)
    disp = F.depth_to_disparity(d, focal_px=400.0, baseline_m=0.05)
    filled = F.spatial(disp, holes_fill=5, domain="disparity")
    assert (filled == 0).sum() < (disp == 0).sum()
    assert F.spatial(disp, domain="disparity").dtype == np.float32


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2)])
def test_spatial_degenerate_sizes(shape: tuple[int, int]) -> None:
    d = np.full(shape, np.float32(1500) * np.float32(0.001), np.float32)  # a z16 value: no requantisation
    np.testing.assert_array_equal(F.spatial(d), d)
    np.testing.assert_array_equal(F.spatial(d, domain="disparity"), d)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"alpha": 0.2}, "spatial alpha: expected a number >= 0.25"), ({"delta": 51}, "spatial delta: expected an integer in 1..50"),
     ({"magnitude": 6}, "spatial magnitude: expected an integer in 1..5"), ({"holes_fill": -1}, "spatial holes_fill"),
     ({"depth_scale": 0}, "depth_scale: expected a positive number")],
)
def test_spatial_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        F.spatial(np.ones((3, 3), np.float32), **kwargs)  # type: ignore[arg-type]


# -- hole filling ------------------------------------------------------------------------------


def fill_left_reference(d: np.ndarray) -> np.ndarray:
    out = d.copy()
    for r in range(out.shape[0]):
        for c in range(1, out.shape[1]):
            if out[r, c] == 0:
                out[r, c] = out[r, c - 1]
    return out


def test_fill_from_left_matches_reference(rng: np.random.Generator) -> None:
    d = z16_depth(rng, holes=0.3)
    np.testing.assert_array_equal(F.fill_holes(d, "fill_from_left"), fill_left_reference(d))
    np.testing.assert_array_equal(F.fill_holes(d, 0), fill_left_reference(d))


def test_fill_around_picks_farthest_and_nearest() -> None:
    d = np.array([[1, 2, 3], [4, 0, 6], [7, 5, 9]], np.float32)
    # candidates for the centre: up 2, up-left 1, left 4, down-left 7, down 5 (not right or diagonals right)
    assert F.fill_holes(d, "farthest")[1, 1] == 7
    assert F.fill_holes(d, "nearest")[1, 1] == 1
    d[0, 1] = 0  # nearest starts from "up": an empty up leaves the hole
    assert F.fill_holes(d, "nearest")[1, 1] == 0


def test_fill_holes_nan_is_a_hole_and_edges_stay() -> None:
    d = np.array([[np.nan, 1.0], [0.0, 0.0]], np.float32)
    out = F.fill_holes(d, "farthest")  # first/last rows untouched by the "around" modes
    np.testing.assert_array_equal(out, [[0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(F.fill_holes(np.zeros((1, 1), np.float32), "nearest"), [[0.0]])


@pytest.mark.parametrize("mode", ["left", 3, True, None])
def test_fill_holes_bad_mode(mode: object) -> None:
    with pytest.raises(InputError, match=r"hole filling mode: expected one of fill_from_left \(0\), farthest \(1\)"):
        F.fill_holes(np.ones((3, 3), np.float32), mode)  # type: ignore[arg-type]


# -- disparity transform -----------------------------------------------------------------------


def test_disparity_factor_as_librealsense_computes_it() -> None:
    # 50 mm, fx 50.5, 1 mm units: 0.05 · 50.5 · 32 / 0.001 in float32
    assert F.disparity_factor(50.5, 0.05) == np.float32(80800.0)


def test_disparity_round_trip_and_geometry(rng: np.random.Generator) -> None:
    d = z16_depth(rng)
    disp = F.depth_to_disparity(d, focal_px=400.0, baseline_m=0.05)
    # 1/32-pixel units of f·B/Z
    valid = d > 0
    np.testing.assert_allclose(disp[valid] / 32, 400.0 * 0.05 / d[valid], rtol=1e-5)
    assert (disp[~valid] == 0).all()
    back = F.disparity_to_depth(disp, focal_px=400.0, baseline_m=0.05)
    np.testing.assert_array_equal(back, d)


def test_disparity_to_depth_invalid_values() -> None:
    disp = np.array([[0.0, -5.0, np.inf, np.nan, 1e-40]], np.float32)
    assert not F.disparity_to_depth(disp, focal_px=400.0, baseline_m=0.05).any()


def test_disparity_bad_options() -> None:
    with pytest.raises(InputError, match="baseline_m: expected a positive number"):
        F.depth_to_disparity(np.ones((2, 2), np.float32), focal_px=400.0, baseline_m=0.0)


# -- FilterChain -------------------------------------------------------------------------------


@pytest.fixture
def frame(rng: np.random.Generator, asym_intrinsics: Intrinsics) -> Frame:
    color = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return Frame(z16_depth(rng), asym_intrinsics, color=color, seq=5, stamp=1.25)


def test_chain_from_options_order_and_result(frame: Frame) -> None:
    chain = F.FilterChain.from_options(decimation=2, temporal=True, spatial=True, min_depth_m=0.5,
                                       max_depth_m=3.0, holes="nearest", baseline_m=0.05)
    kinds = [type(s).__name__ for s in chain.steps]
    assert kinds == ["Decimation", "Threshold", "DisparityTransform", "Spatial", "Temporal", "DisparityTransform", "HoleFilling"]
    out = chain.apply(frame)
    assert out.depth.shape == (24, 32) and out.intrinsics.shape == (24, 32)
    assert out.color is not None and out.color.shape == (24, 32, 3)
    assert (out.seq, out.stamp) == (5, 1.25)


def test_chain_equals_the_functions_in_sequence(frame: Frame) -> None:
    chain = F.FilterChain.from_options(decimation=3, temporal=True, min_depth_m=0.5, holes=0)
    d, _ = F.decimate(frame.depth, frame.intrinsics, 3)
    d = F.threshold(d, min_m=0.5)
    d = F.TemporalFilter().apply(d)
    d = F.fill_holes(d, "fill_from_left")
    np.testing.assert_array_equal(chain.apply(frame).depth, d)


def test_chain_colour_block_mean(frame: Frame) -> None:
    out = F.FilterChain([F.Decimation(2)]).apply(frame)
    assert frame.color is not None and out.color is not None
    ref = frame.color[:2, :2].reshape(4, 3).astype(int).sum(0) // 4
    np.testing.assert_array_equal(out.color[0, 0], ref)


def test_chain_empty_is_identity_and_reset_forgets(frame: Frame) -> None:
    assert F.FilterChain().apply(frame) is frame
    chain = F.FilterChain([F.Temporal(alpha=0.5, persistence=8)])
    chain.apply(frame)
    holes = frame.with_depth(np.zeros_like(frame.depth))
    assert chain.apply(holes).depth.any()  # persistence 8: filled from history
    chain.reset()
    assert not chain.apply(holes).depth.any()


def test_chain_without_baseline_runs_spatial_and_temporal_on_depth(frame: Frame) -> None:
    chain = F.FilterChain.from_options(spatial=True)
    np.testing.assert_array_equal(chain.apply(frame).depth, F.spatial(frame.depth))


def test_chain_from_config(frame: Frame) -> None:
    chain = F.FilterChain.from_config({"decimation": 2, "temporal": {"alpha": 0.3, "persistence": 5},
                                       "spatial": False, "holes": "farthest", "max_depth_m": 4.0})
    assert [type(s).__name__ for s in chain.steps] == ["Decimation", "Threshold", "Temporal", "HoleFilling"]
    assert chain.steps[2] == F.Temporal(alpha=0.3, persistence=5)
    assert chain.apply(frame).depth.shape == (24, 32)


@pytest.mark.parametrize(
    ("mapping", "match"),
    [({"decimation": 9}, r"key 'decimation': decimation magnitude: expected an integer in 1..8, got 9 \(value 9\)"),
     ({"decimaton": 2}, r"key 'decimaton': unknown filter setting"),
     ({"temporal": {"alpha": 2}}, r"key 'temporal': temporal alpha: expected a number <= 1.0"),
     ({"temporal": {"gamma": 1}}, r"key 'temporal': temporal: unknown option\(s\) gamma"),
     ({"spatial": "yes"}, r"key 'spatial': spatial: expected true, false or a mapping"),
     ({"holes": "left"}, r"key 'holes': hole filling mode: expected one of .* \(value 'left'\)"),
     ({"min_depth_m": -1}, r"key 'min_depth_m'"),
     ({"baseline_m": -0.05}, r"key 'baseline_m': baseline_m: expected a positive number"),
     ({"depth_scale": "mm"}, r"key 'depth_scale': depth_scale: expected a number, got 'mm'"),
     ({"min_depth_m": 3, "max_depth_m": 2}, "min_depth_m 3.0 exceeds max_depth_m 2.0")],
)
def test_chain_from_config_errors(mapping: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        F.FilterChain.from_config(mapping)


def test_chain_from_config_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="filters: expected a mapping, got list"):
        F.FilterChain.from_config([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"decimation": 9}, "decimation magnitude: expected an integer in 1..8, got 9"),
     ({"holes": "x"}, "hole filling mode"), ({"max_depth_m": 0}, "max_depth_m: expected a positive number")],
)
def test_chain_from_options_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        F.FilterChain.from_options(**kwargs)  # type: ignore[arg-type]


def test_chain_structure_errors(frame: Frame) -> None:
    with pytest.raises(InputError, match="steps\\[0\\]: a disparity transform needs baseline_m"):
        F.FilterChain([F.DisparityTransform(True), F.DisparityTransform(False)])
    with pytest.raises(InputError, match="the chain ends in disparity"):
        F.FilterChain([F.DisparityTransform(True)], baseline_m=0.05)
    with pytest.raises(InputError, match="steps\\[1\\]: Threshold takes depth"):
        F.FilterChain([F.DisparityTransform(True), F.Threshold(0.1), F.DisparityTransform(False)], baseline_m=0.05)
    with pytest.raises(InputError, match="steps\\[0\\]: expected a filter step, got str"):
        F.FilterChain(["decimate"])  # type: ignore[list-item]
    with pytest.raises(InputError, match="frame: expected a Frame, got ndarray"):
        F.FilterChain().apply(frame.depth)  # type: ignore[arg-type]


def test_pure_python_fallback_gives_the_same_numbers(tmp_path: Path, frame: Frame) -> None:
    """Without numba (DEPTHCLOUD_NO_NUMBA) the same kernels run as Python: same results, bit for bit."""
    np.save(tmp_path / "d.npy", frame.depth)
    code = (
        "import sys, numpy as np\n"
        "from depthcloud import filters as F\n"
        "from depthcloud.geometry import HAVE_NUMBA\n"
        "from depthcloud.camera import Intrinsics\n"
        "from depthcloud.frame import Frame\n"
        "d = np.load(sys.argv[1])\n"
        "K = Intrinsics(525.5, 480.25, 301.7, 260.3, 64, 48)\n"
        "chain = F.FilterChain.from_options(decimation=2, spatial=True, temporal=True, holes='farthest',"
        " baseline_m=0.05)\n"
        "outs = [chain.apply(Frame(d * s, K)).depth for s in (1.0, 1.001, 0.999)]\n"
        "outs += [F.decimate(d, K, m)[0] for m in (3, 5)]\n"
        "np.savez(sys.argv[2], *outs)\n"
        "print(HAVE_NUMBA)\n"
    )
    env = {**os.environ, "DEPTHCLOUD_NO_NUMBA": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d.npy"), str(tmp_path / "o.npz")],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == "False"
    chain = F.FilterChain.from_options(decimation=2, spatial=True, temporal=True, holes="farthest", baseline_m=0.05)
    ours = [chain.apply(Frame(frame.depth * s, frame.intrinsics)).depth for s in (1.0, 1.001, 0.999)]
    ours += [F.decimate(frame.depth, frame.intrinsics, m)[0] for m in (3, 5)]
    with np.load(tmp_path / "o.npz") as ref:
        for i, a in enumerate(ours):
            np.testing.assert_array_equal(a, ref[f"arr_{i}"])


def test_temporal_disparity_reads_nan_as_invalid() -> None:
    tf = F.TemporalFilter(domain="disparity", persistence=0)
    tf.apply(np.array([[100.0, 100.0]], np.float32))
    out = tf.apply(np.array([[np.nan, 101.0]], np.float32))
    assert out[0, 0] == 0 and out[0, 1] == pytest.approx(0.4 * 101 + 0.6 * 100)


def test_chain_same_temporal_step_twice_keeps_two_states(frame: Frame) -> None:
    step = F.Temporal(alpha=0.5, persistence=0)
    twice = F.FilterChain([step, step])
    d1, d2 = frame.depth, frame.depth * np.float32(1.01)
    twice.apply(frame)
    out = twice.apply(frame.with_depth(d2)).depth
    a = F.TemporalFilter(alpha=0.5, persistence=0)
    b = F.TemporalFilter(alpha=0.5, persistence=0)
    b.apply(a.apply(d1))
    np.testing.assert_array_equal(out, b.apply(a.apply(d2)))
