"""surface.gridmesh: meshes of depth images, checked on an analytic scene (a tilted plane with a sphere
in front, asymmetric intrinsics, depth quantised to millimetres)."""

from __future__ import annotations

import numpy as np
import pytest
from tests import surface_scene as S

from depthcloud import InputError, Intrinsics
from depthcloud.surface import gridmesh, mesh_from_depth
from depthcloud.surface._organized import organized_points


@pytest.fixture(scope="module")
def sc() -> S.Scene:
    return S.scene()


@pytest.fixture(scope="module")
def mesh(sc):
    return mesh_from_depth(sc.depth_mm, sc.intr, color=sc.color)


def _on_sphere(vertices: np.ndarray) -> np.ndarray:
    return S.distance_to_sphere(vertices) < S.distance_to_plane(vertices)


def test_every_vertex_lies_on_the_true_surface_within_the_quantisation(sc, mesh):
    # A depth error of ±q/2 moves a point along its ray by at most q/2·|ray| (ray with z = 1).
    corners = S.rays(np.array([0.0, 319.0, 0.0, 319.0]), np.array([0.0, 0.0, 231.0, 231.0]))
    bound = S.QUANT_M / 2 * np.linalg.norm(corners, axis=1).max() + 2e-6
    dist = np.minimum(S.distance_to_sphere(mesh.vertices), S.distance_to_plane(mesh.vertices))
    assert dist.max() <= bound
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    # Both surfaces are there, with their colours.
    sphere = _on_sphere(mesh.vertices)
    assert 0.05 < sphere.mean() < 0.3
    assert (mesh.colors[sphere] == [220, 30, 30]).all() and (mesh.colors[~sphere, 2] == 200).all()


def test_no_triangle_joins_the_sphere_to_the_plane(sc, mesh):
    cls = _on_sphere(mesh.vertices)[mesh.faces]
    assert (cls.min(axis=1) == cls.max(axis=1)).all()
    # Without the edge and angle rules the skin across the jump is there: the test above can fail.
    loose = mesh_from_depth(sc.depth_mm, sc.intr, max_edge_rel=np.inf, max_angle_deg=90.0)
    cls = _on_sphere(loose.vertices)[loose.faces]
    assert (cls.min(axis=1) != cls.max(axis=1)).sum() > 100


def test_plane_area_within_one_percent(mesh):
    cls = _on_sphere(mesh.vertices)[mesh.faces]
    plane = type(mesh)(mesh.vertices, mesh.faces[~cls.any(axis=1)])
    truth = S.visible_plane_area()
    assert plane.area() == pytest.approx(truth, rel=0.01)


def test_triangles_face_the_camera_and_vertex_normals_match_them(mesh):
    fn = mesh.face_normals()
    centres = mesh.vertices[mesh.faces].mean(axis=1)
    assert (np.einsum("ij,ij->i", fn, centres) < 0).all()  # counter-clockwise seen from the camera
    assert mesh.has_normals and (np.einsum("ij,ij->i", mesh.normals, mesh.vertices) < 0).all()
    assert len(np.unique(mesh.faces)) == len(mesh.vertices)  # no unused vertex


def test_shorter_diagonal_and_three_pixel_blocks():
    intr = Intrinsics(fx=100.0, fy=100.0, cx=0.5, cy=0.5, width=2, height=2)
    # Pixel (0, 0) far back: the 00–11 diagonal is longer, so the split is 01–10.
    d = np.array([[1.5, 1.0], [1.0, 1.0]], np.float32)
    m = mesh_from_depth(d, intr, max_edge_rel=1.0, max_angle_deg=90.0)
    assert m.faces.tolist() == [[0, 2, 1], [1, 2, 3]]
    d = np.array([[1.0, 1.0], [1.0, 1.5]], np.float32)  # 11 far back: again 01–10
    assert mesh_from_depth(d, intr, max_edge_rel=1.0, max_angle_deg=90.0).faces.tolist() == [[0, 2, 1], [1, 2, 3]]
    d = np.array([[1.0, 1.5], [1.0, 1.0]], np.float32)  # 01 far back: 00–11
    assert mesh_from_depth(d, intr, max_edge_rel=1.0, max_angle_deg=90.0).faces.tolist() == [[0, 3, 1], [0, 2, 3]]
    d = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)  # three valid pixels: one triangle, pixel 01 unused
    m = mesh_from_depth(d, intr)
    assert m.faces.tolist() == [[0, 1, 2]] and len(m.vertices) == 3
    np.testing.assert_allclose(m.vertices[:, 2], [1.0, 1.0, 1.0])


def test_edge_rule_relative_and_disparity():
    intr = Intrinsics(fx=100.0, fy=100.0, cx=0.5, cy=0.5, width=2, height=2)
    d = np.array([[1.0, 1.0], [1.0, 1.04]], np.float32)
    assert len(mesh_from_depth(d, intr, max_edge_rel=0.05, max_angle_deg=90.0)) == 2
    assert len(mesh_from_depth(d, intr, max_edge_rel=0.03, max_angle_deg=90.0)) == 1  # the 1.04 pixel cut off
    # Disparity rule: f·B = 100·0.1 = 10 px·m; disparities 10 and 10/1.04 = 9.615 differ by 0.385 px.
    kw = {"max_edge_rel": 0.0, "baseline_m": 0.1, "max_angle_deg": 90.0}
    assert len(mesh_from_depth(d, intr, max_edge_disp_px=0.4, **kw)) == 2
    assert len(mesh_from_depth(d, intr, max_edge_disp_px=0.37, **kw)) == 1
    with pytest.raises(InputError, match=r"max_edge_disp_px: needs baseline_m"):
        mesh_from_depth(d, intr, max_edge_disp_px=1.0)


def test_view_angle_rule_drops_edge_on_triangles():
    intr = Intrinsics(fx=100.0, fy=100.0, cx=0.5, cy=0.5, width=2, height=2)
    # A plane through the pixels whose depth grows fast along u: seen about 84° from its normal.
    d = np.array([[1.0, 1.1], [1.0, 1.1]], np.float32)
    kept = mesh_from_depth(d, intr, max_edge_rel=1.0, max_angle_deg=89.0)
    assert len(kept) == 2
    angle = np.degrees(np.arccos(np.abs(np.einsum("ij,ij->i", kept.face_normals(),
                                                   kept.vertices[kept.faces].mean(1) / np.linalg.norm(
                                                       kept.vertices[kept.faces].mean(1), axis=1, keepdims=True)))))
    assert (angle > 80).all()
    assert len(mesh_from_depth(d, intr, max_edge_rel=1.0, max_angle_deg=80.0)) == 0


def test_depth_limits_degenerate_sizes_and_empty(sc):
    far = mesh_from_depth(sc.depth, sc.intr, min_depth_m=2.0)
    assert far.vertices[:, 2].min() >= 2.0 and not _on_sphere(far.vertices).any()
    one = Intrinsics(fx=10.0, fy=10.0, cx=0.0, cy=0.0, width=1, height=1)
    assert mesh_from_depth(np.ones((1, 1), np.float32), one).is_empty
    row = Intrinsics(fx=10.0, fy=10.0, cx=2.0, cy=0.0, width=5, height=1)
    assert mesh_from_depth(np.ones((1, 5), np.float32), row).is_empty
    assert mesh_from_depth(np.zeros_like(sc.depth), sc.intr).is_empty
    no_normals = mesh_from_depth(sc.depth, sc.intr, normals=False)
    assert no_normals.normals is None and no_normals.colors is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": np.ones((4, 4), np.float32)}, r"depth: its size 4x4 does not match the intrinsics 320x232"),
        ({"depth": np.ones((232, 320), np.uint16)}, r"depth: expected a float array, got dtype uint16"),
        ({"color": np.zeros((10, 10, 3), np.uint8)}, r"color: expected the size of the depth image 320x232"),
        ({"max_edge_rel": -1.0}, r"max_edge_rel: expected a number >= 0"),
        ({"max_angle_deg": 0.0}, r"max_angle_deg: expected a positive number"),
        ({"max_angle_deg": 95.0}, r"max_angle_deg: expected a number <= 90"),
        ({"intrinsics": "cam.yaml"}, r"intrinsics: expected Intrinsics, got str"),
    ],
)
def test_bad_input(sc, kwargs, match):
    args = {"depth": sc.depth, "intrinsics": sc.intr, **kwargs}
    with pytest.raises(InputError, match=match):
        mesh_from_depth(args.pop("depth"), args.pop("intrinsics"), **args)


def test_numpy_path_equals_compiled_path(sc, monkeypatch):
    if not gridmesh._HAVE_NUMBA:
        pytest.skip("numba disabled")
    fast = mesh_from_depth(sc.depth_mm, sc.intr, color=sc.color)
    monkeypatch.setattr(gridmesh, "_HAVE_NUMBA", False)
    slow = mesh_from_depth(sc.depth_mm, sc.intr, color=sc.color)
    assert fast == slow
    # and with the disparity rule and a tight angle, on noisy depth with holes
    rng = np.random.default_rng(3)
    d = sc.depth * (1 + rng.normal(0, 0.01, sc.depth.shape)).astype(np.float32)
    d[rng.random(d.shape) < 0.1] = 0
    P = organized_points(d, sc.intr, min_depth_m=0.0, max_depth_m=np.inf)
    a = gridmesh._faces_numpy(P, 0.0, 0.02, 0.3)
    b = gridmesh._faces_numba(P, 0.0, 0.02, 0.3)
    assert np.array_equal(a, b) and len(a) > 1000
