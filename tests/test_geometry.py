"""geometry: depth/disparity → points, pinned with asymmetric intrinsics against float64 references,
OpenCV (reprojectImageTo3D, projectPoints) and Middlebury ground truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.conftest import need

from depthcloud import InputError, Intrinsics, PointCloud, StereoRig, Unprojector
from depthcloud.geometry import HAVE_NUMBA, depth_to_points, disparity_to_depth, reproject_with_q

REPO = Path(__file__).resolve().parents[1]


def _reference(depth: np.ndarray, intr: Intrinsics, zmin: float = 0.0, zmax: float = np.inf):
    """Independent float64 unprojection: (N, 3) points of valid pixels in row-major order + (rows, cols)."""
    d = depth.astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(d) & (d > 0) & (d >= zmin) & (d <= zmax)
    out, rows, cols = [], [], []
    for v in range(d.shape[0]):
        for u in range(d.shape[1]):
            if ok[v, u]:
                z = d[v, u]
                out.append(((u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z))
                rows.append(v)
                cols.append(u)
    return np.array(out, np.float64).reshape(-1, 3), np.array(rows, int), np.array(cols, int)


def _depth(shape, rng, frac_invalid=0.2):
    d = rng.uniform(0.4, 6.0, size=shape).astype(np.float32)
    d[rng.random(shape) < frac_invalid] = 0.0
    return d


# -- depth → points: conventions -----------------------------------------------------------------

def test_matches_float64_reference(asym_intrinsics, rng):
    d = _depth(asym_intrinsics.shape, rng)
    cloud = depth_to_points(d, asym_intrinsics)
    ref, _, _ = _reference(d, asym_intrinsics)
    assert isinstance(cloud, PointCloud) and cloud.frame == "optical"
    assert cloud.points.dtype == np.float32 and cloud.points.shape == ref.shape
    assert np.abs(cloud.points - ref).max() < 1e-5


def test_matches_cv2_reprojectImageTo3D_with_a_correct_Q(asym_intrinsics, rng):
    """Depth → disparity for a rig with this camera; OpenCV's Q-reprojection gives the same points.

    fx ≠ fy, so Q's second row carries fx/fy (cv2.stereoRectify assumes square pixels)."""
    intr = asym_intrinsics
    B, doffs = 0.12, 3.5
    d = _depth(intr.shape, rng, 0.0)
    disp = (intr.fx * B / d - doffs).astype(np.float32)
    Q = np.array([
        [1, 0, 0, -intr.cx],
        [0, intr.fx / intr.fy, 0, -intr.cy * intr.fx / intr.fy],
        [0, 0, 0, intr.fx],
        [0, 0, 1 / B, doffs / B],
    ])
    cv_pts = cv2.reprojectImageTo3D(disp, Q).reshape(-1, 3)
    ours = depth_to_points(d, intr).points
    assert np.abs(ours - cv_pts).max() < 1e-5
    # and through StereoRig.Q for a square-pixel rectified rig
    square = Intrinsics(intr.fx, intr.fx, intr.cx, intr.cy, intr.width, intr.height)
    rig = StereoRig.from_rectified(square, B, doffs_px=doffs)
    cv_pts = cv2.reprojectImageTo3D(disp, rig.Q.astype(np.float32)).reshape(-1, 3)
    assert np.abs(depth_to_points(d, square).points - cv_pts).max() < 1e-5


def test_x_follows_u_and_y_follows_v(asym_intrinsics):
    u, v, z = 50, 9, 2.0
    d = np.zeros(asym_intrinsics.shape, np.float32)
    d[v, u] = z
    p = depth_to_points(d, asym_intrinsics).points
    assert p.shape == (1, 3)
    expect = [(u - 301.7) / 525.5 * z, (v - 260.3) / 480.25 * z, z]
    assert np.allclose(p[0], expect, rtol=1e-6)
    assert p[0, 0] < 0 and p[0, 1] < 0  # left of and above the principal point


def test_principal_point_pixel_lies_on_the_axis():
    intr = Intrinsics(400.0, 300.0, 7.0, 3.0, 11, 5)
    d = np.zeros((5, 11), np.float32)
    d[3, 7] = 1.5
    assert depth_to_points(d, intr).points.tolist() == [[0.0, 0.0, 1.5]]


def test_row_major_order_and_colours_from_the_right_pixels(asym_intrinsics, rng):
    d = _depth(asym_intrinsics.shape, rng)
    color = rng.integers(0, 256, size=(*asym_intrinsics.shape, 3), dtype=np.uint8)
    cloud = depth_to_points(d, asym_intrinsics, color=color)
    _, rows, cols = _reference(d, asym_intrinsics)
    assert cloud.colors is not None and cloud.colors.dtype == np.uint8
    assert np.array_equal(cloud.colors, color[rows, cols])
    assert np.array_equal(cloud.points[:, 2], d[rows, cols])
    grey = rng.integers(0, 256, size=asym_intrinsics.shape, dtype=np.uint8)
    g = depth_to_points(d, asym_intrinsics, color=grey).colors
    assert g is not None and np.array_equal(g, np.repeat(grey[rows, cols][:, None], 3, axis=1))


def test_invalid_values_are_dropped(asym_intrinsics):
    d = np.full(asym_intrinsics.shape, 2.0, np.float32)
    bad = [(0, 0, 0.0), (1, 1, np.nan), (2, 2, np.inf), (3, 3, -np.inf), (4, 4, -1.0)]
    for v, u, z in bad:
        d[v, u] = z
    cloud = depth_to_points(d, asym_intrinsics)
    assert len(cloud) == d.size - len(bad) and np.isfinite(cloud.points).all()


def test_min_max_range(asym_intrinsics, rng):
    d = _depth(asym_intrinsics.shape, rng)
    cloud = depth_to_points(d, asym_intrinsics, min_depth_m=1.0, max_depth_m=3.0)
    ref, _, _ = _reference(d, asym_intrinsics, 1.0, 3.0)
    assert cloud.points.shape == ref.shape and np.abs(cloud.points - ref).max() < 1e-5
    assert cloud.points[:, 2].min() >= 1.0 and cloud.points[:, 2].max() <= 3.0
    exact = np.full((2, 2), 2.0, np.float32)  # bounds are inclusive
    assert len(depth_to_points(exact, Intrinsics(1, 1, 0, 0, 2, 2), min_depth_m=2.0, max_depth_m=2.0)) == 4


def test_organized_output(asym_intrinsics, rng):
    d = _depth(asym_intrinsics.shape, rng)
    d[5, 5] = np.nan
    up = Unprojector(asym_intrinsics)
    org = up.organized(d, max_depth_m=5.0)
    assert org.shape == (48, 64, 3) and org.dtype == np.float32
    ref, rows, cols = _reference(d, asym_intrinsics, 0.0, 5.0)
    assert np.abs(org[rows, cols] - ref).max() < 1e-5
    mask = np.zeros(d.shape, bool)
    mask[rows, cols] = True
    assert np.isnan(org[~mask]).all() and np.isfinite(org[mask]).all()
    # the organized grid and the unorganized cloud agree point for point
    assert np.array_equal(org[mask], up(d, max_depth_m=5.0).points)
    with pytest.raises(InputError, match=r"min_depth_m 3.0 exceeds max_depth_m 2.0"):
        up.organized(d, min_depth_m=3.0, max_depth_m=2.0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1)])
def test_degenerate_image_sizes(shape):
    intr = Intrinsics(10.0, 12.0, 0.3, -0.2, shape[1], shape[0])
    d = np.full(shape, 1.5, np.float32)
    cloud = depth_to_points(d, intr, color=np.full((*shape, 3), 9, np.uint8))
    ref, _, _ = _reference(d, intr)
    assert cloud.points.shape == (shape[0] * shape[1], 3) and np.allclose(cloud.points, ref, atol=1e-6)
    assert Unprojector(intr).organized(d).shape == (*shape, 3)
    empty = depth_to_points(np.zeros(shape, np.float32), intr, color=np.zeros((*shape, 3), np.uint8))
    assert empty.points.shape == (0, 3) and empty.colors is not None and empty.colors.shape == (0, 3)


def test_float64_depth_accepted(asym_intrinsics, rng):
    d = _depth(asym_intrinsics.shape, rng).astype(np.float64)
    assert np.array_equal(depth_to_points(d, asym_intrinsics).points,
                          depth_to_points(d.astype(np.float32), asym_intrinsics).points)


@pytest.mark.parametrize(
    ("depth", "kwargs", "match"),
    [
        (np.zeros((1, 48, 64), np.float32), {}, r"depth: expected shape \(H, W\), got \(1, 48, 64\)"),
        (np.zeros((48, 64), np.uint16), {}, r"depth: expected a float array, got dtype uint16"),
        (np.zeros((0, 64), np.float32), {}, r"depth: expected a non-empty array, got shape \(0, 64\)"),
        (np.zeros((64, 48), np.float32), {}, r"depth: its size 48x64 does not match the intrinsics 64x48"),
        (np.ones((48, 64), np.float32), {"color": np.zeros((48, 64, 3), np.float32)},
         r"color: expected a unsigned integer array, got dtype float32"),
        (np.ones((48, 64), np.float32), {"color": np.zeros((24, 32, 3), np.uint8)},
         r"color: expected the size of the depth image 64x48 \(WxH\), got 32x24"),
        (np.ones((48, 64), np.float32), {"min_depth_m": -1}, r"min_depth_m: expected a number >= 0, got -1"),
        (np.ones((48, 64), np.float32), {"max_depth_m": 0}, r"max_depth_m: expected a positive number, got 0"),
        (np.ones((48, 64), np.float32), {"min_depth_m": 3, "max_depth_m": 2},
         r"min_depth_m 3.0 exceeds max_depth_m 2.0"),
    ],
)
def test_bad_input(asym_intrinsics, depth, kwargs, match):
    with pytest.raises(InputError, match=match):
        depth_to_points(depth, asym_intrinsics, **kwargs)


def test_bad_intrinsics_type():
    with pytest.raises(InputError, match=r"intrinsics: expected Intrinsics, got dict"):
        depth_to_points(np.ones((2, 2), np.float32), {"fx": 1})  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"intrinsics: expected Intrinsics, got str"):
        Unprojector("camera")  # type: ignore[arg-type]


def test_input_not_modified(asym_intrinsics, rng):
    d = _depth(asym_intrinsics.shape, rng)
    d[0, 0] = np.nan
    before = d.copy()
    depth_to_points(d, asym_intrinsics)
    Unprojector(asym_intrinsics).organized(d)
    assert np.array_equal(d, before, equal_nan=True)


# -- compiled kernel vs numpy fallback ------------------------------------------------------------

@pytest.mark.parametrize("distorted", [False, True])
def test_numba_path_equals_numpy_fallback(asym_intrinsics, rng, distorted):
    intr = asym_intrinsics.with_dist([0.05, -0.02, 0.001, 0.0]) if distorted else asym_intrinsics
    up = Unprojector(intr)
    d = _depth(intr.shape, rng)
    d[3, 3] = np.nan
    c = rng.integers(0, 256, size=(*intr.shape, 3), dtype=np.uint8)
    zmin, zmax = np.float32(0.5), np.float32(5.0)
    fast = up._run(d, c, zmin, zmax)
    slow = up._run_numpy(d, c, zmin, zmax)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    assert np.array_equal(up._run(d, None, zmin, zmax)[0], slow[0])


@pytest.mark.parametrize("distorted", [False, True])
@pytest.mark.parametrize("density", [0.0, 0.0005, 0.003, 0.05, 0.6, 1.0])
def test_spilling_writer_keeps_every_chunk_exact(asym_intrinsics, rng, distorted, density):
    """The writer's 4-lane stores spill one slot; sparse rows (0, 1, 2 points) at the ends of the
    row chunks, and a last point at the last pixel, must still come out exact, colours too."""
    intr = asym_intrinsics.with_dist([0.05, -0.02, 0.001, 0.0]) if distorted else asym_intrinsics
    up = Unprojector(intr)
    d = _depth(intr.shape, rng)
    d[rng.random(intr.shape) >= density] = 0.0
    d[-1, -1] = 2.0  # the very last pixel kept: its point ends the buffer
    d[1, 1], d[2, 2], d[4, 4] = -1.0, np.inf, np.nan
    c = rng.integers(0, 256, size=(*intr.shape, 3), dtype=np.uint8)
    for zmin, zmax in ((0.0, float(np.finfo(np.float32).max)), (0.5, 5.0), (2.0, 2.0)):
        fast = up._run(d, c, np.float32(zmin), np.float32(zmax))
        slow = up._run_numpy(d, c, np.float32(zmin), np.float32(zmax))
        assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


def test_fallback_without_numba_in_a_subprocess(asym_intrinsics, rng, tmp_path):
    d = _depth(asym_intrinsics.shape, rng)
    np.save(tmp_path / "d.npy", d)
    code = (
        "import json, sys, numpy as np\n"
        "from depthcloud.geometry import HAVE_NUMBA, depth_to_points\n"
        "from depthcloud import Intrinsics\n"
        f"intr = Intrinsics.from_dict({json.dumps(asym_intrinsics.to_dict())})\n"
        f"pts = depth_to_points(np.load(sys.argv[1]), intr).points\n"
        f"np.save(sys.argv[2], pts); print(HAVE_NUMBA)\n"
    )
    env = {**os.environ, "DEPTHCLOUD_NO_NUMBA": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d.npy"), str(tmp_path / "p.npy")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=True)
    assert out.stdout.strip() == "False"
    assert np.array_equal(np.load(tmp_path / "p.npy"), depth_to_points(d, asym_intrinsics).points)
    assert HAVE_NUMBA or os.environ.get("DEPTHCLOUD_NO_NUMBA")


# -- distortion-aware rays ---------------------------------------------------------------------------

_WIDE = {"fx": 62.0, "fy": 58.5, "cx": 41.3, "cy": 28.9, "width": 80, "height": 60}


@pytest.mark.parametrize(
    "dist",
    [
        (-0.28, 0.09, 0.001, -0.0008, -0.012),
        (0.1, -0.05, 0.001, -0.0005, 0.01, 0.05, -0.02, 0.005,
         0.001, -0.0005, 0.0008, -0.0003, 0.01, -0.005),  # rational + thin prism + tilt (14)
    ],
    ids=["plumb_bob", "rational14"],
)
def test_distorted_rays_project_back_to_pixel_centres(dist, rng):
    intr = Intrinsics(**_WIDE, dist=dist)
    d = _depth(intr.shape, rng, 0.1)
    cloud = depth_to_points(d, intr)
    _, rows, cols = _reference(d, intr)
    uv, _ = cv2.projectPoints(cloud.points.astype(np.float64), np.zeros(3), np.zeros(3), intr.K, intr.dist_array)
    err = np.abs(uv.reshape(-1, 2) - np.column_stack([cols, rows]))
    assert err.max() < 1e-3
    assert np.array_equal(cloud.points[:, 2], d[rows, cols])  # z is still the depth


def test_fisheye_rays_project_back_to_pixel_centres(rng):
    intr = Intrinsics(**_WIDE, dist=(0.05, -0.01, 0.003, -0.001), model="fisheye")
    d = _depth(intr.shape, rng, 0.1)
    cloud = depth_to_points(d, intr)
    _, rows, cols = _reference(d, intr)
    uv, _ = cv2.fisheye.projectPoints(cloud.points.astype(np.float64).reshape(-1, 1, 3), np.zeros(3),
                                      np.zeros(3), intr.K, intr.dist_array)
    assert np.abs(uv.reshape(-1, 2) - np.column_stack([cols, rows])).max() < 1e-3


def test_undistort_false_uses_the_plain_pinhole(rng):
    intr = Intrinsics(**_WIDE, dist=(-0.28, 0.09, 0.0, 0.0, 0.0))
    d = _depth(intr.shape, rng)
    plain = depth_to_points(d, intr, undistort=False).points
    ref, _, _ = _reference(d, intr)
    assert np.abs(plain - ref).max() < 1e-5
    assert np.abs(depth_to_points(d, intr).points - ref).max() > 1e-3  # distortion matters here


def test_rays_property(asym_intrinsics):
    rays = Unprojector(asym_intrinsics).rays
    assert rays.shape == (48, 64, 2) and rays.dtype == np.float32
    assert rays[10, 20] == pytest.approx([(20 - 301.7) / 525.5, (10 - 260.3) / 480.25], rel=1e-6)


def test_skew_is_honoured():
    intr = Intrinsics(100.0, 90.0, 5.0, 4.0, 10, 8, skew=2.0)
    d = np.full((8, 10), 2.0, np.float32)
    pts = depth_to_points(d, intr).points.astype(np.float64)
    uv = (intr.K @ (pts / pts[:, 2:3]).T).T[:, :2]
    vv, uu = np.mgrid[0:8, 0:10]
    assert np.abs(uv - np.column_stack([uu.ravel(), vv.ravel()])).max() < 1e-4


# -- disparity_to_depth ---------------------------------------------------------------------------------

def test_disparity_to_depth_values_and_invalid():
    disp = np.array([[10.0, 0.0, -1.0, np.nan], [np.inf, 2.5, 40.0, -3.0]], np.float32)
    z = disparity_to_depth(disp, 500.0, 0.1, doffs_px=2.0)
    assert z.dtype == np.float32 and z.shape == (2, 4)
    assert z[0, 0] == pytest.approx(500 * 0.1 / 12.0)
    assert z[1, 1] == pytest.approx(500 * 0.1 / 4.5) and z[1, 2] == pytest.approx(50 / 42.0)
    assert z[0, 1] == z[0, 2] == z[0, 3] == z[1, 0] == z[1, 3] == 0.0


def test_disparity_to_depth_integer_and_negative_doffs():
    disp = np.array([[16, 32]], np.int16)
    z = disparity_to_depth(disp, 100.0, 1.0, doffs_px=-20.0)
    assert z.tolist() == [[0.0, pytest.approx(100 / 12)]]  # d + doffs ≤ 0 is invalid
    assert disparity_to_depth(np.array([[4.0]]), 8.0, 0.5).tolist() == [[1.0]]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((2, 2, 1)), 1.0, 1.0), {}, r"disparity: expected shape \(H, W\), got \(2, 2, 1\)"),
        ((np.zeros((2, 2), bool), 1.0, 1.0), {}, r"disparity: expected a float or unsigned integer or integer"),
        ((np.ones((2, 2)), 0.0, 1.0), {}, r"focal_px: expected a positive number, got 0.0"),
        ((np.ones((2, 2)), 1.0, -0.1), {}, r"baseline_m: expected a positive number, got -0.1"),
        ((np.ones((2, 2)), 1.0, 1.0), {"doffs_px": float("nan")}, r"doffs_px: expected a finite number"),
    ],
)
def test_disparity_to_depth_bad_input(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        disparity_to_depth(*args, **kwargs)


# -- reproject_with_q -------------------------------------------------------------------------------

def test_reproject_with_q_equals_cv2_on_valid_pixels(rng):
    left = Intrinsics(520.0, 520.0, 33.2, 21.7, 64, 48)
    rig = StereoRig.from_rectified(left, 0.15, doffs_px=4.25)
    disp = rng.uniform(1.0, 60.0, size=(48, 64)).astype(np.float32)
    disp[rng.random(disp.shape) < 0.2] = 0.0
    disp[0, 1], disp[1, 0], disp[2, 2] = np.nan, -5.0, np.inf
    color = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    cloud = reproject_with_q(disp, rig.Q, color=color)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(disp) & (disp > 0)
    cv_pts = cv2.reprojectImageTo3D(np.nan_to_num(disp, posinf=0.0), rig.Q)[valid]
    assert cloud.points.shape == cv_pts.shape
    assert np.allclose(cloud.points, cv_pts, rtol=1e-5, atol=1e-6)
    assert cloud.colors is not None and np.array_equal(cloud.colors, color[valid])
    # and it agrees with the disparity → depth → unproject route
    z = disparity_to_depth(disp, rig.focal_px, rig.baseline_m, doffs_px=rig.doffs_px)
    assert np.allclose(depth_to_points(z, left).points, cloud.points, rtol=1e-5, atol=1e-6)


def test_reproject_with_q_drops_points_behind_the_camera():
    Q = np.array([[1, 0, 0, -1.0], [0, 1, 0, -1.0], [0, 0, 0, 100.0], [0, 0, 10.0, -50.0]])  # W ≤ 0 if d ≤ 5
    disp = np.array([[2.0, 8.0], [5.0, 10.0]], np.float32)
    cloud = reproject_with_q(disp, Q)
    assert len(cloud) == 2 and np.all(cloud.points[:, 2] > 0)
    assert cloud.colors is None


def test_reproject_with_q_bad_input():
    with pytest.raises(InputError, match=r"Q: expected shape \(4, 4\), got \(3, 4\)"):
        reproject_with_q(np.ones((2, 2)), np.eye(4)[:3])
    with pytest.raises(InputError, match=r"Q: contains NaN or inf"):
        reproject_with_q(np.ones((2, 2)), np.full((4, 4), np.nan))
    with pytest.raises(InputError, match=r"color: expected the size of the depth image 2x2"):
        reproject_with_q(np.ones((2, 2)), np.eye(4), color=np.zeros((3, 3, 3), np.uint8))


# -- Middlebury ground truth ---------------------------------------------------------------------------

def _parse_calib(path: Path) -> dict[str, float]:
    """A deliberately simple, independent calib.txt reader (whitespace-tolerant) for the reference."""
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        if "=" not in line:
            continue
        key, val = (s.strip() for s in line.split("=", 1))
        if key == "cam0":
            nums = [float(x) for x in val.strip("[] ").replace(";", " ").split()]
            out.update(f=nums[0], cx=nums[2], cy=nums[5])
        elif key in ("baseline", "doffs"):
            out[key] = float(val)
    return out


_SCENES = ["Adirondack", "ArtL", "Jadeplant", "Motorcycle", "MotorcycleE", "Piano", "PianoL", "Pipes",
           "Playtable", "PlaytableP", "Recycle"]


@pytest.mark.parametrize("scene", _SCENES)
def test_middlebury_ground_truth_cloud(data_dir, scene):
    pfm = pytest.importorskip("depthcloud.io.pfm", reason="depthcloud.io.pfm (read_pfm) has not landed yet")
    calibfiles = pytest.importorskip("depthcloud.io.calibfiles",
                                     reason="depthcloud.io.calibfiles (read_middlebury_calib) has not landed yet")
    folder = need(data_dir, f"middlebury_eval3_q/{scene}")
    calib = calibfiles.read_middlebury_calib(folder / "calib.txt")
    disp = pfm.read_pfm(folder / "disp0GT.pfm")
    im0 = cv2.cvtColor(cv2.imread(str(folder / "im0.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    rig = calib.rig
    depth = disparity_to_depth(disp, rig.focal_px, rig.baseline_m, doffs_px=rig.doffs_px)
    cloud = depth_to_points(depth, rig.left, color=im0)

    ref = _parse_calib(folder / "calib.txt")
    d = disp.astype(np.float64)
    finite = np.isfinite(d)
    rows, cols = np.nonzero(finite)
    Z = ref["baseline"] * ref["f"] / (d[rows, cols] + ref["doffs"]) / 1000.0
    X = (cols - ref["cx"]) * Z / ref["f"]
    Y = (rows - ref["cy"]) * Z / ref["f"]
    expect = np.column_stack([X, Y, Z])
    assert len(cloud) == len(rows), "every finite-disparity pixel becomes a point"
    err = np.abs(cloud.points.astype(np.float64) - expect)
    assert (err <= 1e-5 * np.abs(expect) + 1e-9).all()
    assert cloud.colors is not None and np.array_equal(cloud.colors, im0[rows, cols])
