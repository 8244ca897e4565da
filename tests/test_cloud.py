"""cloud: PointCloud and its operations, checked against brute force and Open3D."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import optional_import

from depthcloud import FRAMES, InputError, PointCloud
from depthcloud.cloud import frame_rotation


def _cloud(rng, n=200, colors=True, normals=False) -> PointCloud:
    pts = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
    cols = rng.integers(0, 256, size=(n, 3), dtype=np.uint8) if colors else None
    nrm = None
    if normals:
        nrm = rng.normal(size=(n, 3))
        nrm = (nrm / np.linalg.norm(nrm, axis=1, keepdims=True)).astype(np.float32)
    return PointCloud(pts, cols, nrm)


# -- construction ------------------------------------------------------------------------------------

def test_construction_converts_and_validates():
    c = PointCloud([[0, 0, 1], [1, 2, 3]], colors=[[0.0, 0.5, 1.0], [1.0, 1.0, 1.0]])
    assert c.points.dtype == np.float32 and c.colors is not None and c.colors.dtype == np.uint8
    assert c.colors.tolist() == [[0, 128, 255], [255, 255, 255]]
    assert len(c) == 2 and c.has_colors and not c.has_normals and "2 points" in repr(c)
    empty = PointCloud(np.zeros((0, 3)))
    assert len(empty) == 0 and empty.points.shape == (0, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"points": np.zeros((4, 2))}, r"points: expected shape \(N, 3\), got \(4, 2\)"),
        ({"points": [[0, 0, np.nan]]}, r"points: contains NaN or inf"),
        ({"points": np.array([["a", "b", "c"]])}, r"points: expected a float or integer or unsigned integer array, got dtype <U1"),
        ({"points": np.zeros((2, 3)), "colors": np.zeros((3, 3), np.uint8)}, r"colors: expected shape \(2, 3\), got \(3, 3\)"),
        ({"points": np.zeros((1, 3)), "colors": [[300, 0, 0]]}, r"colors: expected uint8 colours 0..255"),
        ({"points": np.zeros((1, 3)), "normals": np.zeros((1, 3), int)}, r"normals: expected a float array"),
    ],
)
def test_construction_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        PointCloud(**kwargs)


def test_equality_and_bounds(rng):
    a = _cloud(rng)
    b = PointCloud(a.points.copy(), a.colors.copy())  # type: ignore[union-attr]
    assert a == b and a != PointCloud(a.points)
    lo, hi = a.bounds()
    assert lo.tolist() == a.points.min(0).tolist() and hi.tolist() == a.points.max(0).tolist()
    with pytest.raises(InputError, match=r"bounds: the cloud is empty"):
        PointCloud(np.zeros((0, 3))).bounds()


# -- select, crop, range --------------------------------------------------------------------------

def test_select_by_mask_and_index(rng):
    c = _cloud(rng, normals=True)
    mask = c.points[:, 0] > 0
    s = c.select(mask)
    assert np.array_equal(s.points, c.points[mask]) and np.array_equal(s.colors, c.colors[mask])  # type: ignore[index]
    idx = np.array([5, 1, 5])
    t = c.select(idx)
    assert np.array_equal(t.normals, c.normals[idx])  # type: ignore[index]
    assert t.points.flags.c_contiguous
    assert len(c.select([])) == 0 and len(c.select(slice(0, 4))) == 4


def test_select_bad_index(rng):
    c = _cloud(rng, n=10)
    with pytest.raises(InputError, match=r"index: expected a boolean mask of 10 points, got 9"):
        c.select(np.ones(9, bool))
    with pytest.raises(InputError, match=r"index: expected indices in 0..9, got 12"):
        c.select(np.array([1, 12]))
    with pytest.raises(InputError, match=r"index: expected a bool or integer or unsigned integer array, got dtype float64"):
        c.select(np.array([1.0]))


def test_crop_inclusive_box(rng):
    c = _cloud(rng, n=500)
    lo, hi = [-0.5, -0.2, 0.0], [0.5, 0.3, 1.0]
    out = c.crop(lo, hi)
    brute = [i for i, p in enumerate(c.points) if all(lo[k] <= p[k] <= hi[k] for k in range(3))]
    assert np.array_equal(out.points, c.points[brute]) and np.array_equal(out.colors, c.colors[brute])  # type: ignore[index]
    edge = PointCloud([[1.0, 1.0, 1.0]])
    assert len(edge.crop([1, 1, 1], [1, 1, 1])) == 1
    with pytest.raises(InputError, match=r"crop: min_xyz \[1.0, 0.0, 0.0\] exceeds max_xyz \[0.0, 1.0, 1.0\]"):
        c.crop([1, 0, 0], [0, 1, 1])
    with pytest.raises(InputError, match=r"min_xyz: expected shape \(3,\), got \(2,\)"):
        c.crop([0, 0], [1, 1, 1])


def test_within_range(rng):
    c = _cloud(rng, n=500)
    r = np.linalg.norm(c.points.astype(np.float64), axis=1)
    out = c.within_range(0.5, 1.0)
    assert np.array_equal(out.points, c.points[(r >= 0.5) & (r <= 1.0)])
    assert len(c.within_range()) == 500
    with pytest.raises(InputError, match=r"within_range: min_m 2.0 exceeds max_m 1.0"):
        c.within_range(2.0, 1.0)
    with pytest.raises(InputError, match=r"min_m: expected a number >= 0, got -1"):
        c.within_range(-1)


# -- voxel_downsample ------------------------------------------------------------------------------

def _voxel_brute(points: np.ndarray, colors: np.ndarray, size: float):
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(points.astype(np.float64)):
        groups.setdefault(tuple(np.floor(p / size).astype(int)), []).append(i)
    keys = sorted(groups)
    pts = np.array([points[groups[k]].astype(np.float64).mean(0) for k in keys])
    cols = np.array([np.rint(colors[groups[k]].astype(np.float64).mean(0)) for k in keys])
    return pts, cols


@pytest.mark.parametrize("size", [0.05, 0.3, 5.0])
def test_voxel_downsample_matches_brute_force(rng, size):
    c = _cloud(rng, n=400)
    out = c.voxel_downsample(size)
    pts, cols = _voxel_brute(c.points, c.colors, size)  # type: ignore[arg-type]
    assert out.points.shape == pts.shape and np.allclose(out.points, pts, atol=1e-6)
    assert np.array_equal(out.colors, cols.astype(np.uint8))


def test_voxel_downsample_sparse_grid_uses_the_same_rule(rng):
    """Far-apart points (a grid too big to count densely) take the sorting path: same answer."""
    pts = np.concatenate([rng.uniform(0, 0.01, (50, 3)), rng.uniform(0, 0.01, (50, 3)) + 900.0]).astype(np.float32)
    cols = rng.integers(0, 256, (100, 3), dtype=np.uint8)
    out = PointCloud(pts, cols).voxel_downsample(0.004)
    ref_pts, ref_cols = _voxel_brute(pts, cols, 0.004)
    assert np.allclose(out.points, ref_pts, atol=1e-4) and np.array_equal(out.colors, ref_cols.astype(np.uint8))


def test_voxel_downsample_normals_and_alignment():
    pts = np.array([[0.01, 0, 0], [0.09, 0, 0], [0.11, 0, 0], [-0.01, 0, 0]], np.float32)
    nrm = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1]], np.float32)
    out = PointCloud(pts, normals=nrm).voxel_downsample(0.1)
    # voxels [-0.1, 0), [0, 0.1), [0.1, 0.2): aligned to the origin, ordered by index
    assert np.allclose(out.points[:, 0], [-0.01, 0.05, 0.11])
    assert np.allclose(out.normals[1], [np.sqrt(0.5), np.sqrt(0.5), 0])  # type: ignore[index]
    assert out.colors is None
    empty = PointCloud(np.zeros((0, 3)))
    assert len(empty.voxel_downsample(1.0)) == 0
    with pytest.raises(InputError, match=r"voxel_m: expected a positive number, got 0"):
        out.voxel_downsample(0)


def test_voxel_downsample_matches_open3d_where_grids_agree(rng):
    o3d = optional_import("open3d")
    size = 0.1
    # points in the upper part of their voxels ([0.5, 0.95) of the edge), with the minimum exactly
    # at half a voxel, so Open3D's grid (min − size/2) coincides with ours (the origin)
    cells = rng.integers(0, 6, size=(300, 3))
    pts = ((cells + rng.uniform(0.5, 0.95, size=(300, 3))) * size).astype(np.float32)
    pts = np.concatenate([pts, np.full((1, 3), 0.5 * size, np.float32)])
    cols = rng.integers(0, 256, size=(len(pts), 3), dtype=np.uint8)
    ours = PointCloud(pts, cols).voxel_downsample(size)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
    pc.colors = o3d.utility.Vector3dVector(cols.astype(np.float64) / 255.0)
    theirs = pc.voxel_down_sample(size)
    tp, tc = np.asarray(theirs.points), np.asarray(theirs.colors) * 255.0
    order = np.lexsort((tp[:, 2], tp[:, 1], tp[:, 0]))
    o_order = np.lexsort((ours.points[:, 2], ours.points[:, 1], ours.points[:, 0]))
    assert len(ours) == len(tp)
    assert np.allclose(ours.points[o_order], tp[order], atol=1e-6)
    assert np.abs(ours.colors[o_order].astype(float) - tc[order]).max() <= 0.5 + 1e-6  # type: ignore[index]


# -- statistical outliers ---------------------------------------------------------------------------

def test_statistical_outliers_match_open3d(rng):
    o3d = optional_import("open3d")
    pts = np.concatenate([rng.normal(0, 0.05, (400, 3)), rng.uniform(-1, 1, (20, 3))]).astype(np.float32)
    c = PointCloud(pts)
    for k, ratio in ((8, 1.0), (20, 2.0)):
        ours = c.remove_statistical_outliers(neighbors=k, std_ratio=ratio)
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
        _, kept = pc.remove_statistical_outlier(nb_neighbors=k + 1, std_ratio=ratio)
        assert np.array_equal(ours.points, pts[np.sort(np.asarray(kept))])
        assert 0 < len(ours) < len(pts)


def test_statistical_outliers_drop_far_points_and_degenerate(rng):
    cluster = rng.normal(0, 0.01, (100, 3))
    pts = np.concatenate([cluster, [[5, 5, 5], [-5, 5, 0]]]).astype(np.float32)
    out = PointCloud(pts).remove_statistical_outliers(neighbors=10, std_ratio=1.0)
    assert np.abs(out.points).max() < 1.0 and len(out) >= 90
    tiny = PointCloud(pts[:5])
    assert tiny.remove_statistical_outliers(neighbors=10) is tiny
    with pytest.raises(InputError, match=r"neighbors: expected an integer in 1..inf, got 0"):
        tiny.remove_statistical_outliers(neighbors=0)
    with pytest.raises(InputError, match=r"std_ratio: expected a positive number, got -2"):
        tiny.remove_statistical_outliers(std_ratio=-2)


# -- transform and named frames ---------------------------------------------------------------------

def test_transform_rigid(rng):
    c = _cloud(rng, normals=True)
    a = 0.3
    T = np.eye(4)
    T[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    T[:3, 3] = [1.0, -2.0, 0.5]
    out = c.transform(T, frame="world")
    assert out.frame == "world" and out.points.dtype == np.float32
    assert np.allclose(out.points, c.points @ T[:3, :3].T + T[:3, 3], atol=1e-6)
    assert np.allclose(out.normals, c.normals @ T[:3, :3].T, atol=1e-6)  # type: ignore[operator]
    assert np.array_equal(out.colors, c.colors)
    back = out.transform(np.linalg.inv(T), frame="optical")
    assert np.allclose(back.points, c.points, atol=1e-6)


def test_transform_bad_input(rng):
    c = _cloud(rng)
    with pytest.raises(InputError, match=r"T: expected shape \(4, 4\), got \(3, 3\)"):
        c.transform(np.eye(3))
    bad = np.eye(4)
    bad[3, 0] = 1
    with pytest.raises(InputError, match=r"T: expected a last row of \[0, 0, 0, 1\]"):
        c.transform(bad)
    with pytest.raises(InputError, match=r"T: contains NaN or inf"):
        c.transform(np.full((4, 4), np.nan))


def test_optical_to_zup_axes():
    c = PointCloud([[0, 0, 1], [1, 0, 0], [0, 1, 0]])  # forward, right, down in the optical frame
    z = c.to_frame("zup")
    assert z.frame == "zup"
    assert z.points.tolist() == [[1, 0, 0], [0, -1, 0], [0, 0, -1]]  # forward→x, right→−y, down→−z
    gl = c.to_frame("opengl")
    assert gl.points.tolist() == [[0, 0, -1], [1, 0, 0], [0, -1, 0]]  # forward→−z, down→−y


def test_named_frames_round_trip_and_rotations(rng):
    c = _cloud(rng, normals=True)
    for name in FRAMES:
        R = FRAMES[name]
        assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
        back = c.to_frame(name).to_frame("optical")
        assert np.allclose(back.points, c.points, atol=1e-6) and back.frame == "optical"
    direct = c.to_frame("zup").to_frame("opengl")
    assert np.allclose(direct.points, c.to_frame("opengl").points, atol=1e-6)
    assert np.allclose(frame_rotation("zup", "opengl"), FRAMES["opengl"] @ FRAMES["zup"].T)
    with pytest.raises(InputError, match=r"frame: expected one of optical, zup, opengl, got 'ned'"):
        c.to_frame("ned")


# -- concatenate -------------------------------------------------------------------------------------

def test_concatenate(rng):
    a, b = _cloud(rng, n=3), _cloud(rng, n=4)
    ab = PointCloud.concatenate([a, b])
    assert len(ab) == 7 and np.array_equal(ab.points[3:], b.points) and np.array_equal(ab.colors[:3], a.colors)  # type: ignore[index]
    mixed = PointCloud.concatenate([a, PointCloud(b.points)])
    assert mixed.colors is None
    with pytest.raises(InputError, match=r"concatenate: expected at least one cloud"):
        PointCloud.concatenate([])
    with pytest.raises(InputError, match=r"concatenate: clouds are in different frames \['optical', 'zup'\]"):
        PointCloud.concatenate([a, b.to_frame("zup")])
    with pytest.raises(InputError, match=r"concatenate: expected PointClouds, got ndarray at 1"):
        PointCloud.concatenate([a, b.points])  # type: ignore[list-item]


def test_operations_do_not_modify_input(rng):
    c = _cloud(rng, normals=True)
    before = (c.points.copy(), c.colors.copy(), c.normals.copy())  # type: ignore[union-attr]
    c.crop([-1, -1, -1], [0, 0, 0])
    c.voxel_downsample(0.2)
    c.transform(np.diag([2.0, 2.0, 2.0, 1.0]))
    c.to_frame("zup")
    c.remove_statistical_outliers(neighbors=5)
    assert all(np.array_equal(x, y) for x, y in zip(before, (c.points, c.colors, c.normals), strict=True))


def test_voxel_downsample_numpy_fallback_equals_compiled(rng, tmp_path):
    """The numpy fallback (DEPTHCLOUD_NO_NUMBA=1, in a subprocess) gives the compiled kernels' answer,
    on both the counting (dense) and the sorting (sparse) path."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pts = np.concatenate([rng.uniform(0, 1, (300, 3)), rng.uniform(0, 0.05, (30, 3)) + 5000.0]).astype(np.float32)
    cols = rng.integers(0, 256, (len(pts), 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", p=pts, c=cols)
    code = (
        "import sys, numpy as np\n"
        "from depthcloud import PointCloud\n"
        "d = np.load(sys.argv[1])\n"
        "c = PointCloud(d['p'], d['c'])\n"
        "a, b = c.voxel_downsample(0.1), c.voxel_downsample(0.004)\n"
        "np.savez(sys.argv[2], ap=a.points, ac=a.colors, bp=b.points, bc=b.colors)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.npz"), str(tmp_path / "o.npz")], check=True,
                   env={**os.environ, "DEPTHCLOUD_NO_NUMBA": "1"}, cwd=Path(__file__).resolve().parents[1], timeout=120)
    slow = np.load(tmp_path / "o.npz")
    cloud = PointCloud(pts, cols)
    for key, size in (("a", 0.1), ("b", 0.004)):
        fast = cloud.voxel_downsample(size)
        assert np.allclose(fast.points, slow[key + "p"], atol=1e-6)
        assert np.array_equal(fast.colors, slow[key + "c"])
