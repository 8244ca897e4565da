"""camera: Intrinsics and StereoRig — pixel-centre rules, Q against OpenCV, serialisation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from depthcloud import InputError, Intrinsics, StereoRig


def _project(intr: Intrinsics, X: np.ndarray) -> np.ndarray:
    """Pinhole projection written independently of the package: (N, 3) → (N, 2) pixels."""
    X = np.asarray(X, np.float64)
    return np.stack([intr.fx * X[:, 0] / X[:, 2] + intr.cx, intr.fy * X[:, 1] / X[:, 2] + intr.cy], axis=1)


# -- Intrinsics ---------------------------------------------------------------------------------------

def test_intrinsics_smoke_and_K(asym_intrinsics):
    K = asym_intrinsics.K
    assert K.dtype == np.float64 and K.shape == (3, 3)
    assert K.tolist() == [[525.5, 0.0, 301.7], [0.0, 480.25, 260.3], [0.0, 0.0, 1.0]]
    assert asym_intrinsics.size == (64, 48) and asym_intrinsics.shape == (48, 64)
    assert not asym_intrinsics.is_distorted and asym_intrinsics.dist_array.shape == (0,)
    assert asym_intrinsics.hfov_deg == pytest.approx(math.degrees(2 * math.atan(32 / 525.5)))
    assert asym_intrinsics.vfov_deg == pytest.approx(math.degrees(2 * math.atan(24 / 480.25)))


def test_from_K_and_from_fov():
    K = np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]])
    intr = Intrinsics.from_K(K, 640, 480, dist=[0.1, -0.2, 0, 0, 0.01])
    assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.model) == (500, 510, 320, 240, "opencv")
    assert intr.dist == (0.1, -0.2, 0.0, 0.0, 0.01)
    assert np.array_equal(intr.K, K)
    ideal = Intrinsics.from_fov(640, 480, 90.0)
    assert ideal.fx == pytest.approx(320.0) and (ideal.cx, ideal.cy) == (319.5, 239.5)


def test_distortion_model_normalisation():
    assert Intrinsics(1, 1, 0, 0, 2, 2, dist=(0, 0, 0, 0, 0)).model == "none"
    assert Intrinsics(1, 1, 0, 0, 2, 2, dist=(0.1, 0, 0, 0)).model == "opencv"
    assert Intrinsics(1, 1, 0, 0, 2, 2, dist=(0.1, 0, 0, 0), model="fisheye").model == "fisheye"
    assert len(Intrinsics(1, 1, 0, 0, 2, 2, dist=tuple(np.full(14, 0.01))).dist) == 14


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fx": 0}, r"intrinsics.fx: expected a positive number, got 0"),
        ({"fy": float("nan")}, r"intrinsics.fy: expected a finite number"),
        ({"cx": "a"}, r"intrinsics.cx: expected a number, got 'a'"),
        ({"width": 0}, r"intrinsics.width: expected an integer in 1..inf, got 0"),
        ({"height": 2.5}, r"intrinsics.height: expected an integer, got 2.5"),
        ({"model": "pinhole"}, r"intrinsics.model: expected one of \['fisheye', 'none', 'opencv'\]"),
        ({"dist": (0.1, 0.2, 0.3)}, r"intrinsics.dist: model 'opencv' takes \(4, 5, 8, 12, 14\) coefficients, got 3"),
        ({"dist": (0.1, 0, 0, 0, 0), "model": "fisheye"}, r"model 'fisheye' takes \(4,\) coefficients, got 5"),
        ({"dist": (float("inf"), 0, 0, 0)}, r"intrinsics.dist: coefficients must be finite"),
    ],
)
def test_intrinsics_bad_values(kwargs, match):
    base = {"fx": 500.0, "fy": 500.0, "cx": 10.0, "cy": 10.0, "width": 20, "height": 20}
    with pytest.raises(InputError, match=match):
        Intrinsics(**{**base, **kwargs})


def test_from_K_bad_input():
    with pytest.raises(InputError, match=r"K: expected shape \(3, 3\), got \(2, 3\)"):
        Intrinsics.from_K(np.zeros((2, 3)), 4, 4)
    with pytest.raises(InputError, match=r"K: expected \[\[fx, s, cx\], \[0, fy, cy\], \[0, 0, 1\]\]"):
        Intrinsics.from_K(np.array([[1.0, 0, 1], [0, 1, 1], [1, 0, 1]]), 4, 4)
    with pytest.raises(InputError, match=r"K: contains NaN or inf"):
        Intrinsics.from_K(np.array([[np.nan, 0, 1], [0, 1, 1], [0, 0, 1]]), 4, 4)


@pytest.mark.parametrize("s", [0.5, 2.0, 0.25])
def test_resized_keeps_pixel_centres(asym_intrinsics, s, rng):
    """A 3D point at pixel (u, v) of the original lands at ((u+.5)s−.5, (v+.5)s−.5) after resizing."""
    intr = asym_intrinsics
    small = intr.scaled(s)
    assert small.size == (round(64 * s), round(48 * s))
    X = np.column_stack([rng.uniform(-0.05, 0.05, 20), rng.uniform(-0.05, 0.05, 20), rng.uniform(1, 3, 20)])
    uv = _project(intr, X)
    uv_s = _project(small, X)
    assert np.allclose(uv_s, (uv + 0.5) * s - 0.5, atol=1e-9)


def test_resized_to_other_aspect_and_pixel_grid(asym_intrinsics):
    intr = asym_intrinsics.resized(32, 12)  # sx = 0.5, sy = 0.25
    assert (intr.fx, intr.fy) == pytest.approx((525.5 * 0.5, 480.25 * 0.25))
    assert (intr.cx, intr.cy) == pytest.approx(((301.7 + 0.5) * 0.5 - 0.5, (260.3 + 0.5) * 0.25 - 0.5))
    # the image's left edge (u = -0.5) stays the left edge: cv2.resize uses the same centre rule
    img = np.zeros((48, 64), np.float32)
    img[:, 62:64] = 1.0
    small = cv2.resize(img, (32, 12), interpolation=cv2.INTER_AREA)
    assert small[:, 31].min() == 1.0 and small[:, 30].max() == 0.0


def test_cropped_moves_the_principal_point(asym_intrinsics, rng):
    crop = asym_intrinsics.cropped(5, 7, 30, 20)
    assert crop.size == (30, 20) and (crop.fx, crop.fy) == (525.5, 480.25)
    X = np.column_stack([rng.uniform(-0.05, 0.05, 10), rng.uniform(-0.05, 0.05, 10), np.full(10, 2.0)])
    assert np.allclose(_project(crop, X), _project(asym_intrinsics, X) - [5, 7])


def test_derived_intrinsics_bad_input(asym_intrinsics):
    with pytest.raises(InputError, match=r"crop 30x20\+40\+7 does not fit inside the 64x48 image"):
        asym_intrinsics.cropped(40, 7, 30, 20)
    with pytest.raises(InputError, match=r"x: expected an integer in 0..inf, got -1"):
        asym_intrinsics.cropped(-1, 0, 3, 3)
    with pytest.raises(InputError, match=r"factor: expected a positive number, got 0"):
        asym_intrinsics.scaled(0)
    with pytest.raises(InputError, match=r"width: expected an integer in 1..inf, got 0"):
        asym_intrinsics.resized(0, 4)
    assert asym_intrinsics.scaled(1e-6).size == (1, 1)  # degenerate, still an image


def test_undistorted_and_with_dist(asym_intrinsics):
    d = asym_intrinsics.with_dist([0.1, 0.01, 0.0, 0.0])
    assert d.is_distorted and d.undistorted() == asym_intrinsics


def test_intrinsics_dict_round_trip(asym_intrinsics):
    for intr in (asym_intrinsics, asym_intrinsics.with_dist(list(np.linspace(-0.1, 0.1, 14))),
                 Intrinsics.from_K([[400, 0.5, 30], [0, 410, 20], [0, 0, 1]], 60, 40),
                 asym_intrinsics.with_dist([0.1, 0.02, 0.003, 0.0004], model="fisheye")):
        assert Intrinsics.from_dict(intr.to_dict()) == intr
    with pytest.raises(InputError, match=r"camera: missing key\(s\) fy, cy"):
        Intrinsics.from_dict({"width": 1, "height": 1, "fx": 1, "cx": 0})
    with pytest.raises(InputError, match=r"camera: unknown key\(s\) focal"):
        Intrinsics.from_dict({**asym_intrinsics.to_dict(), "focal": 3})


# -- StereoRig -------------------------------------------------------------------------------------

def _raw_rig() -> StereoRig:
    left = Intrinsics(700.0, 705.0, 318.0, 243.0, 640, 480, dist=(0.05, -0.1, 0.001, 0.0005, 0.0))
    right = Intrinsics(702.0, 703.0, 322.0, 239.0, 640, 480, dist=(0.04, -0.08, 0.0, 0.0, 0.0))
    rvec = np.array([0.01, -0.02, 0.005])
    R, _ = cv2.Rodrigues(rvec)
    return StereoRig(left, right, R, np.array([-0.12, 0.002, 0.001]))


def test_rig_Q_matches_cv2_stereoRectify():
    raw = _raw_rig()
    _, _, P1, P2, Q_cv, _, _ = cv2.stereoRectify(
        raw.left.K, raw.left.dist_array, raw.right.K, raw.right.dist_array, raw.left.size, raw.R, raw.T.reshape(3, 1),
        flags=0, alpha=0,
    )
    left = Intrinsics.from_K(P1[:, :3], 640, 480)
    right = Intrinsics.from_K(P2[:, :3], 640, 480)
    baseline = -P2[0, 3] / P2[0, 0]
    rect = StereoRig.from_rectified(left, baseline, right=right)
    assert rect.baseline_m == pytest.approx(np.linalg.norm(raw.T), rel=1e-9)
    assert np.allclose(rect.Q, Q_cv, rtol=1e-9, atol=1e-9)


def test_rig_Q_gives_metric_depth_from_disparity():
    left = Intrinsics(600.0, 600.0, 300.5, 200.25, 640, 400)
    rig = StereoRig.from_rectified(left, 0.2, doffs_px=12.5)
    assert rig.doffs_px == pytest.approx(12.5) and rig.focal_px == 600.0
    u, v, d = 100.0, 50.0, 27.5
    X = rig.Q @ np.array([u, v, d, 1.0])
    Z = 600.0 * 0.2 / (d + 12.5)
    assert X[:3] / X[3] == pytest.approx([(u - 300.5) * Z / 600.0, (v - 200.25) * Z / 600.0, Z])
    with pytest.raises(InputError, match=r"Q: the rig is not rectified"):
        _ = _raw_rig().Q


def test_rig_properties_and_validation():
    raw = _raw_rig()
    assert raw.baseline_m == pytest.approx(math.sqrt(0.12**2 + 0.002**2 + 0.001**2))
    assert not raw.rectified and raw.R.flags.writeable is False
    rot = StereoRig(raw.left, raw.right, np.array([0.01, -0.02, 0.005]), raw.T)  # rotation vector
    assert np.allclose(rot.R, raw.R, atol=1e-12)
    with pytest.raises(InputError, match=r"T: the baseline is zero"):
        StereoRig(raw.left, raw.right, np.eye(3), np.zeros(3))
    with pytest.raises(InputError, match=r"R: not a rotation matrix"):
        StereoRig(raw.left, raw.right, np.diag([1.0, 1.0, -1.0]), raw.T)
    with pytest.raises(InputError, match=r"R: expected shape \(3, 3\) or a rotation vector \(3,\), got \(2, 2\)"):
        StereoRig(raw.left, raw.right, np.eye(2), raw.T)
    with pytest.raises(InputError, match=r"T: expected 3 finite values in metres"):
        StereoRig(raw.left, raw.right, np.eye(3), [np.nan, 0, 0])
    with pytest.raises(InputError, match=r"StereoRig: left and right must be Intrinsics"):
        StereoRig(raw.left, "right", np.eye(3), raw.T)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"baseline_m: expected a positive number, got -1"):
        StereoRig.from_rectified(raw.left, -1)


def test_rig_resized_and_round_trip():
    raw = _raw_rig()
    half = raw.resized(320, 240)
    assert half.left == raw.left.resized(320, 240) and np.array_equal(half.T, raw.T)
    rect = StereoRig.from_rectified(Intrinsics(500, 500, 100, 80, 200, 160), 0.1, doffs_px=3.0)
    for rig in (raw, rect):
        back = StereoRig.from_dict(rig.to_dict())
        assert back == rig and hash(back) == hash(rig)
    with pytest.raises(InputError, match=r"rig: missing key\(s\) T_m"):
        StereoRig.from_dict({k: val for k, val in raw.to_dict().items() if k != "T_m"})
    with pytest.raises(InputError, match=r"rig: unknown key\(s\) extra"):
        StereoRig.from_dict({**raw.to_dict(), "extra": 1})
