"""surface.mesh: the TriangleMesh value — validation, measures, normals, frames, against Open3D."""

from __future__ import annotations

import numpy as np
import pytest

from depthcloud import InputError, PointCloud
from depthcloud.surface import TriangleMesh


def _square(size=2.0, z=1.0) -> TriangleMesh:
    """A square in the plane z = const, facing the camera (normal −z in the optical frame)."""
    s = size / 2
    verts = [[-s, -s, z], [s, -s, z], [s, s, z], [-s, s, z]]
    # Seen from the camera (looking along +z, y down), counter-clockwise means normal towards −z.
    faces = [[0, 2, 1], [0, 3, 2]]
    cols = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]
    return TriangleMesh(verts, faces, colors=cols)


def test_construction_converts_and_validates():
    m = _square()
    assert m.vertices.dtype == np.float32 and m.faces.dtype == np.int32 and m.colors.dtype == np.uint8
    assert len(m) == 2 and m.has_colors and not m.has_normals and not m.is_empty
    assert "4 vertices, 2 triangles" in repr(m)
    assert TriangleMesh.empty().is_empty and TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), int)).is_empty


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vertices": np.zeros((4, 2)), "faces": [[0, 1, 2]]}, r"vertices: expected shape \(N, 3\), got \(4, 2\)"),
        ({"vertices": [[0, 0, np.nan]], "faces": np.zeros((0, 3), int)}, r"vertices: contains NaN or inf"),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, 1, 3]]}, r"faces: expected vertex indices in 0..2, got 3"),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, -1, 2]]}, r"faces: expected vertex indices in 0..2, got -1"),
        ({"vertices": np.zeros((3, 3)), "faces": [[0.0, 1.0, 2.0]]}, r"faces: expected a integer or unsigned"),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, 1]]}, r"faces: expected shape \(M, 3\), got \(1, 2\)"),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, 1, 2]], "colors": np.zeros((2, 3), np.uint8)},
         r"colors: expected shape \(3, 3\), got \(2, 3\)"),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, 1, 2]], "normals": np.zeros((3, 3), int)},
         r"normals: expected a float array"),
        ({"vertices": np.zeros((3, 3)), "faces": [[0, 1, 2]], "frame": ""}, r"frame: expected a frame name"),
    ],
)
def test_construction_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        TriangleMesh(**kwargs)


def test_area_and_normals_of_a_square():
    m = _square(size=2.0, z=1.5)
    assert m.area() == pytest.approx(4.0)
    np.testing.assert_allclose(m.triangle_areas(), [2.0, 2.0])
    np.testing.assert_allclose(m.face_normals(), [[0, 0, -1], [0, 0, -1]], atol=1e-7)
    nm = m.with_vertex_normals()
    np.testing.assert_allclose(nm.normals, np.tile([0, 0, -1], (4, 1)), atol=1e-7)
    assert nm.normals.dtype == np.float32 and m.normals is None  # the input is not modified


def test_vertex_normals_match_open3d(rng):
    o3d = pytest.importorskip("open3d")
    # A bumpy height field: vertex normals depend on the area weighting, which Open3D also uses.
    n = 12
    xs, ys = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-0.7, 0.9, n + 1))
    zs = 2.0 + 0.2 * np.sin(3 * xs) * np.cos(2 * ys)
    verts = np.stack([xs, ys, zs], -1).reshape(-1, 3)
    faces = []
    for r in range(n):
        for c in range(n - 1):
            i = r * n + c
            faces += [[i, i + n, i + 1], [i + 1, i + n, i + n + 1]]
    m = TriangleMesh(verts, faces)
    ref = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(m.vertices.astype(np.float64)),
                                    o3d.utility.Vector3iVector(m.faces))
    ref.compute_vertex_normals()
    np.testing.assert_allclose(m.compute_vertex_normals(), np.asarray(ref.vertex_normals), atol=1e-5)
    assert m.area() == pytest.approx(ref.get_surface_area(), rel=1e-6)


def test_remove_unused_vertices_keeps_order_and_attributes():
    verts = np.array([[9, 9, 9], [0, 0, 1], [1, 0, 1], [8, 8, 8], [0, 1, 1]], np.float32)
    cols = np.arange(15, dtype=np.uint8).reshape(5, 3)
    m = TriangleMesh(verts, [[1, 4, 2]], colors=cols, normals=np.ones((5, 3), np.float32))
    r = m.remove_unused_vertices()
    np.testing.assert_array_equal(r.vertices, verts[[1, 2, 4]])
    np.testing.assert_array_equal(r.colors, cols[[1, 2, 4]])
    assert r.faces.tolist() == [[0, 2, 1]] and r.normals.shape == (3, 3)
    assert r.remove_unused_vertices() is r


def test_transform_and_frames_follow_pointcloud():
    m = _square().with_vertex_normals()
    z = m.to_frame("zup")
    c = m.as_cloud().to_frame("zup")
    np.testing.assert_allclose(z.vertices, c.points)
    np.testing.assert_allclose(z.normals, c.normals)
    assert z.frame == "zup" and z.faces is m.faces
    # The face normal turns with the vertices: camera-facing −z_optical becomes −x_zup (towards the body).
    np.testing.assert_allclose(z.face_normals()[0], [-1, 0, 0], atol=1e-6)
    back = z.to_frame("optical")
    np.testing.assert_allclose(back.vertices, m.vertices, atol=1e-6)
    T = np.eye(4)
    T[0, 0] = -1  # a mirror: faces are rewound so the surface still faces its normals
    mirrored = m.transform(T, frame="mirror")
    np.testing.assert_allclose(mirrored.face_normals(), mirrored.normals[:2], atol=1e-6)
    assert mirrored.frame == "mirror" and mirrored.area() == pytest.approx(m.area())
    with pytest.raises(InputError, match=r"T: expected shape \(4, 4\)"):
        m.transform(np.eye(3))
    with pytest.raises(InputError, match=r"frame: expected one of"):
        m.to_frame("nowhere")


def test_as_cloud_and_equality():
    m = _square()
    assert isinstance(m.as_cloud(), PointCloud) and len(m.as_cloud()) == 4
    np.testing.assert_array_equal(m.as_cloud().colors, m.colors)
    assert m == _square() and m != _square(z=2.0) and m != TriangleMesh(m.vertices, m.faces)
    with pytest.raises(InputError, match=r"bounds: the mesh has no vertices"):
        TriangleMesh.empty().bounds()


def test_vertex_normals_numpy_path_equals_compiled(rng, monkeypatch):
    from depthcloud.surface import mesh as mesh_module

    verts = rng.uniform(-1, 1, (310, 3))
    faces = rng.integers(0, 300, (900, 3))  # the last 10 vertices are in no triangle
    m = TriangleMesh(verts, faces)
    fast = m.compute_vertex_normals()
    monkeypatch.setattr(mesh_module, "_HAVE_NUMBA", False)
    slow = m.compute_vertex_normals()
    np.testing.assert_allclose(fast, slow, atol=1e-6)
    assert np.isfinite(fast).all() and (fast[300:] == 0).all()  # unused vertices get 0
