"""surface.normals: organized (pixel-grid) and k-NN PCA normals against the analytic normals of the
plane-and-sphere scene, their orientation, both compiled and numpy paths, and PLY/PCD round trips."""

from __future__ import annotations

import numpy as np
import pytest
from tests import surface_scene as S

from depthcloud import InputError, Intrinsics, PointCloud, depth_to_points
from depthcloud.io import read_cloud, write_cloud
from depthcloud.surface import cloud_with_normals, depth_normals, estimate_normals, normals


@pytest.fixture(scope="module")
def sc() -> S.Scene:
    return S.scene()


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", a.astype(np.float64), b), -1.0, 1.0)))


def _truth(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Analytic normals (towards the camera) and whether each point is on the sphere."""
    on_sphere = S.distance_to_sphere(points) < S.distance_to_plane(points)
    ref = np.where(on_sphere[:, None], -S.sphere_normal(points), S.plane_normal_towards_camera())
    # The outward sphere normal faces the camera on the visible side; the minus above is undone here.
    ref[on_sphere] = S.sphere_normal(points[on_sphere])
    return ref, on_sphere


def _interior(sc: S.Scene, margin: int) -> np.ndarray:
    """Pixels at least ``margin`` pixels from the sphere's outline and the image border."""
    import cv2

    edge = cv2.dilate(cv2.Canny(sc.on_sphere.astype(np.uint8) * 255, 1, 1), np.ones((2 * margin + 1,) * 2, np.uint8))
    keep = edge == 0
    keep[:margin], keep[-margin:], keep[:, :margin], keep[:, -margin:] = False, False, False, False
    return keep


def test_organized_normals_match_the_analytic_ones(sc):
    n = depth_normals(sc.depth, sc.intr)
    assert n.shape == (*sc.depth.shape, 3) and n.dtype == np.float32
    P = S.rays(*np.meshgrid(np.arange(320.0), np.arange(232.0))) * sc.depth[..., None]
    ref, _ = _truth(P.reshape(-1, 3))
    err = _angles_deg(n.reshape(-1, 3), ref).reshape(sc.depth.shape)
    inner = _interior(sc, 2)
    assert np.isfinite(n).all()  # every pixel has a neighbour on its surface
    assert np.nanmax(err[inner & ~sc.on_sphere]) < 0.05
    assert np.nanmax(err[inner & sc.on_sphere]) < 1.0
    # Next to the outline the one-sided differences still see one surface only.
    assert np.nanmax(err[~inner & ~sc.on_sphere]) < 0.5


def test_organized_normals_handle_jumps_holes_and_isolated_pixels():
    intr = Intrinsics(fx=100.0, fy=90.0, cx=2.2, cy=1.3, width=5, height=4)
    d = np.full((4, 5), 2.0, np.float32)
    d[:, 3:] = 3.0          # a jump between columns 2 and 3: each side keeps its own (flat) normal
    d[0, 0] = 0.0           # a hole
    n = depth_normals(d, intr)
    assert np.isnan(n[0, 0]).all()
    finite = np.isfinite(n[..., 0])
    np.testing.assert_allclose(n[finite], np.tile([0, 0, -1], (finite.sum(), 1)), atol=1e-6)
    lone = np.zeros((4, 5), np.float32)
    lone[2, 2] = 1.0
    assert np.isnan(depth_normals(lone, intr)).all()
    assert len(cloud_with_normals(lone, intr)) == 0


def test_cloud_with_normals_keeps_order_colours_and_orientation(sc):
    c = cloud_with_normals(sc.depth, sc.intr, color=sc.color)
    plain = depth_to_points(sc.depth, sc.intr, color=sc.color)
    assert c.points.shape == plain.points.shape  # every valid pixel of this scene has a normal
    np.testing.assert_array_equal(c.points, plain.points)
    np.testing.assert_array_equal(c.colors, plain.colors)
    assert (np.einsum("ij,ij->i", c.normals, -c.points) > 0).all()
    near = cloud_with_normals(sc.depth, sc.intr, max_depth_m=3.0)
    assert 0 < len(near) < len(c) and near.points[:, 2].max() <= 3.0


def test_knn_normals_match_the_analytic_ones_and_face_the_viewpoint(sc):
    cloud = depth_to_points(sc.depth, sc.intr)
    out = estimate_normals(cloud, k=20)
    assert out.normals.shape == cloud.points.shape and out.normals.dtype == np.float32
    assert out.points is cloud.points and cloud.normals is None  # the input is not modified
    ref, on_sphere = _truth(out.points)
    err = _angles_deg(out.normals, ref)
    inner = _interior(sc, 4)[sc.depth > 0]
    assert np.percentile(err[inner & ~on_sphere], 99) < 0.5
    assert np.percentile(err[inner & on_sphere], 99) < 2.0
    # Oriented towards another viewpoint: behind the plane, every plane normal turns round.
    back = estimate_normals(cloud, k=20, viewpoint=(0.0, 0.0, 10.0))
    assert (back.normals[~on_sphere] @ S.PLANE_N > 0.99).all()


def test_knn_normals_compiled_equal_numpy_and_open3d(rng, monkeypatch):
    o3d = pytest.importorskip("open3d")
    n = 4000
    xy = rng.uniform(-1, 1, (n, 2))
    pts = np.c_[xy, 2.0 + 0.2 * np.sin(3 * xy[:, 0]) * np.cos(2 * xy[:, 1])].astype(np.float32)
    cloud = PointCloud(pts)
    fast = estimate_normals(cloud, k=15)
    monkeypatch.setattr(normals, "_HAVE_NUMBA", False)
    slow = estimate_normals(cloud, k=15)
    np.testing.assert_allclose(fast.normals, slow.normals, atol=2e-5)
    ref = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
    ref.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(15))
    ref.orient_normals_towards_camera_location(np.zeros(3))
    np.testing.assert_allclose(fast.normals, np.asarray(ref.normals), atol=1e-4)


def test_knn_grid_search_is_exact_on_uneven_clouds(rng, monkeypatch):
    """A dense cluster, a sparse halo and a flat disc: the finest grid is sized for the dense part, the
    disc finishes on coarser grids, the halo outgrows them all and goes to the k-d tree; every normal
    still equals the numpy path's."""
    if not normals._HAVE_NUMBA:
        pytest.skip("numba disabled")
    pts = np.concatenate([rng.normal(0, 0.01, (3000, 3)), rng.uniform(-5, 5, (200, 3)),
                          rng.normal(3, 0.5, (500, 3)) * [1, 1, 0.01]]).astype(np.float32)
    view = np.zeros(3)
    handed_over = []
    tree_path = normals._estimate_numpy

    def spy(*args, **kwargs):
        handed_over.append(kwargs.get("subset"))
        return tree_path(*args, **kwargs)

    monkeypatch.setattr(normals, "_estimate_numpy", spy)
    a = normals._estimate_numba(pts, 12, view)
    assert len(handed_over) == 1 and 0 < len(handed_over[0]) <= 200 + 500
    b = tree_path(pts, 12, view, -1)
    np.testing.assert_allclose(np.einsum("ij,ij->i", a, b), 1.0, atol=1e-5)


def test_small_and_degenerate_clouds():
    tri = PointCloud([[0, 0, 1], [1, 0, 1], [0, 1, 1]])
    np.testing.assert_allclose(estimate_normals(tri, k=10).normals, np.tile([0, 0, -1], (3, 1)), atol=1e-6)
    same = PointCloud(np.ones((5, 3)))
    assert np.array_equal(estimate_normals(same, k=3).normals, np.zeros((5, 3), np.float32))
    line = PointCloud(np.c_[np.linspace(0, 1, 10), np.zeros(10), np.ones(10)])
    nl = estimate_normals(line, k=4).normals
    np.testing.assert_allclose(np.linalg.norm(nl, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(nl[:, 0], 0.0, atol=1e-6)  # orthogonal to the line


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: estimate_normals(PointCloud(np.zeros((2, 3)))), r"cloud: normals need at least 3 points, got 2"),
        (lambda: estimate_normals(np.zeros((5, 3))), r"cloud: expected a PointCloud, got ndarray"),
        (lambda: estimate_normals(PointCloud(np.eye(3)), k=2), r"k: expected an integer in 3..inf, got 2"),
        (lambda: estimate_normals(PointCloud(np.eye(3)), viewpoint=(0, np.nan, 0)), r"viewpoint: contains NaN"),
        (lambda: estimate_normals(PointCloud(np.eye(3)), viewpoint=(0, 0)), r"viewpoint: expected shape \(3,\)"),
        (lambda: depth_normals(np.ones((3, 3), np.float32), Intrinsics(10, 10, 1, 1, 4, 3)),
         r"depth: its size 3x3 does not match the intrinsics 4x3"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(InputError, match=match):
        call()


@pytest.mark.parametrize("name", ["n.ply", "n.pcd"])
@pytest.mark.parametrize("ascii_", [False, True])
def test_normals_are_written_and_read_back(sc, tmp_path, name, ascii_):
    c = cloud_with_normals(sc.depth, sc.intr, color=sc.color)
    path = write_cloud(tmp_path / name, c, ascii=ascii_)
    head = path.read_bytes()[:400]
    assert (b"nx" in head) if name.endswith(".ply") else (b"normal_x" in head)
    back = read_cloud(path)
    np.testing.assert_array_equal(back.normals, c.normals)
    np.testing.assert_array_equal(back.colors, c.colors)
