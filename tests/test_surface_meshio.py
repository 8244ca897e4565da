"""surface.meshio: PLY (binary, ASCII), OBJ and GLB round trips, each file re-read by Open3D, and
what other writers produce (polygons, other index types, relative OBJ indices)."""

from __future__ import annotations

import numpy as np
import pytest
from tests import surface_scene as S

from depthcloud import FormatError, InputError, OutputExistsError
from depthcloud.surface import TriangleMesh, mesh_from_depth, read_mesh, write_mesh
from depthcloud.surface.meshio import decode_ply_mesh, encode_ply_mesh


@pytest.fixture(scope="module")
def mesh() -> TriangleMesh:
    sc = S.scene()
    # A crop keeps the files small; both surfaces and a depth jump are in it.
    intr = sc.intr.cropped(60, 40, 140, 110)
    return mesh_from_depth(sc.depth_mm[40:150, 60:200].copy(), intr, color=sc.color[40:150, 60:200].copy())


def _canonical(faces: np.ndarray) -> np.ndarray:
    """Faces with each triangle rotated to start at its smallest index (winding kept), rows sorted."""
    f = np.asarray(faces, np.int64)
    r = np.argmin(f, axis=1)
    rolled = np.stack([f[np.arange(len(f)), (r + k) % 3] for k in range(3)], axis=1)
    return rolled[np.lexsort(rolled.T[::-1])]


def _same_triangles(ref_v, ref_f, v, f) -> bool:
    """The same triangles over the same vertices, whatever order a reader puts the vertices in."""
    # Text comes back as the nearest double, or within an ulp of it (tinyobjloader's own parser).
    ref_v = np.asarray(ref_v).astype(np.float32)
    order_ref, order = np.lexsort(ref_v.T), np.lexsort(np.asarray(v).T)
    if not np.allclose(ref_v[order_ref], np.asarray(v)[order], rtol=0, atol=1e-6):
        return False
    to_ours = np.empty(len(order), np.int64)
    to_ours[order_ref] = order
    return np.array_equal(_canonical(to_ours[np.asarray(ref_f)]), _canonical(f))


@pytest.mark.parametrize(("name", "ascii_"), [("m.ply", False), ("m.ply", True), ("m.obj", False), ("m.glb", False)])
def test_round_trip_and_open3d_reads_it(mesh, tmp_path, name, ascii_):
    o3d = pytest.importorskip("open3d")
    path = write_mesh(tmp_path / name, mesh, ascii=ascii_)
    back = read_mesh(path)
    np.testing.assert_array_equal(back.vertices, mesh.vertices)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_array_equal(back.colors, mesh.colors)
    np.testing.assert_allclose(back.normals, mesh.normals, atol=1e-7)
    ref = o3d.io.read_triangle_mesh(str(path))
    assert len(ref.triangles) == len(mesh) and len(ref.vertices) == len(mesh.vertices)
    assert _same_triangles(np.asarray(ref.vertices), np.asarray(ref.triangles), mesh.vertices, mesh.faces)
    # Colours as Open3D sees them, matched by position.
    order_ref = np.lexsort(np.asarray(ref.vertices).astype(np.float32).T)
    order = np.lexsort(mesh.vertices.T)
    np.testing.assert_allclose(np.asarray(ref.vertex_colors)[order_ref] * 255, mesh.colors[order], atol=0.51)
    np.testing.assert_allclose(np.asarray(ref.vertex_normals)[order_ref], mesh.normals[order], atol=1e-6)


def test_ply_layout_is_canonical(mesh):
    data = encode_ply_mesh(mesh)
    head = data[:data.index(b"end_header\n")].decode()
    assert "property float nx" in head and "property uchar red" in head
    assert f"element face {len(mesh)}\nproperty list uchar int vertex_indices" in head
    nv, nf = len(mesh.vertices), len(mesh)
    assert len(data) == len(head) + len("end_header\n") + nv * (12 + 12 + 3) + nf * 13
    ascii_ = encode_ply_mesh(mesh, binary=False).decode()
    assert ascii_.splitlines()[-1].startswith("3 ")


def test_ply_frame_and_plain_meshes(tmp_path):
    m = TriangleMesh([[0, 0, 1], [1, 0, 1], [0, 1, 1]], [[0, 2, 1]]).to_frame("zup")
    back = read_mesh(write_mesh(tmp_path / "z.ply", m))
    assert back.frame == "zup" and back.colors is None and back.normals is None and back == m
    obj = read_mesh(write_mesh(tmp_path / "z.obj", m))
    assert obj.frame == "zup" and obj.colors is None and obj.normals is None and obj == m
    empty = read_mesh(write_mesh(tmp_path / "e.ply", TriangleMesh.empty()))
    assert empty.is_empty and len(empty.vertices) == 0


def test_ply_from_other_writers_polygons_and_index_types():
    # ASCII with a quad, an extra face property and a leading element of another kind.
    text = ("ply\nformat ascii 1.0\nelement camera 1\nproperty float f\nelement vertex 4\n"
            "property double x\nproperty double y\nproperty double z\nproperty uchar red\nproperty uchar green\n"
            "property uchar blue\nelement face 1\nproperty uchar flags\nproperty list int uint vertex_index\n"
            "end_header\n7\n0 0 1 1 2 3\n1 0 1 4 5 6\n1 1 1 7 8 9\n0 1 1 10 11 12\n5 4 0 1 2 3\n")
    m = decode_ply_mesh(text.encode())
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3]] and m.colors[3].tolist() == [10, 11, 12]
    # The same as big-endian binary with ushort indices and a pentagon-free triangle list.
    head = (b"ply\nformat binary_big_endian 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
            b"property float z\nelement face 2\nproperty list uchar ushort vertex_indices\nend_header\n")
    verts = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], ">f4").tobytes()
    faces = b"".join(np.array([3], "u1").tobytes() + np.array(f, ">u2").tobytes() for f in ([0, 1, 2], [0, 2, 3]))
    b = decode_ply_mesh(head + verts + faces)
    assert b.faces.tolist() == [[0, 1, 2], [0, 2, 3]] and b.area() == pytest.approx(1.0)
    # A point cloud PLY (no faces) is a mesh without triangles.
    assert decode_ply_mesh(head.replace(b"element face 2\nproperty list uchar ushort vertex_indices\n", b"")
                           + verts).is_empty


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
         b"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n",
         r"a face refers to vertex 5, but there are 3 vertices"),
        (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
         b"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n",
         r"m.ply: line 13: a face needs 3 or more vertices, got 2"),
        (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
         b"element face 2\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
         r"element 'face' declares 2 rows but only 1 lines are left"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
         b"property float z\nend_header\n" + np.array([0, np.nan, 1], "<f4").tobytes(),
         r"vertex 0 is not finite"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
         b"property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
         + np.zeros(9, "<f4").tobytes() + b"\x03\x00\x00", r"element 'face' row 0: the body ends early"),
        (b"ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n",
         r"no 'vertex' element"),
    ],
)
def test_ply_errors_say_where(data, match):
    with pytest.raises(FormatError, match=match):
        decode_ply_mesh(data, path="m.ply")


def test_obj_from_other_writers(tmp_path):
    p = tmp_path / "q.obj"
    p.write_text("# a quad\nmtllib x.mtl\no quad\nv 0 0 1 255 0 0\nv 1 0 1 0 255 0\nv 1 1 1 0 0 255\n"
                 "v 0 1 1 9 9 9\nvt 0 0\nvn 0 0 -1\ns off\nusemtl m\nf -4/1/1 -3/1/1 -2/1/1 -1/1/1\n")
    m = read_mesh(p)
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3]] and m.colors[3].tolist() == [9, 9, 9]
    np.testing.assert_allclose(m.normals, np.tile([0, 0, -1], (4, 1)))
    p.write_text("v 0 0 1\nv 1 0 1\nv 1 1 1\nf 1/1 2/2 3/3\n")
    assert read_mesh(p).faces.tolist() == [[0, 1, 2]] and read_mesh(p).normals is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("v 0 0\n", r"q.obj: line 1: expected 'v x y z \[w\]' or 'v x y z r g b', got 2 values"),
        ("v 0 0 1\nv 1 0 1\nv 0 1 1\nf 1 2 4\n", r"a face refers to vertex 3, but there are 3 vertices"),
        ("v 0 0 1\nv 1 0 1\nv 0 1 1\nf 1 2\n", r"line 4: a face needs 3 or more vertices, got 2"),
        ("v 0 0 1\nv 1 0 1\nv 0 1 1\nf 0 1 2\n", r"line 4: vertex index 0 \(OBJ indices start at 1\)"),
        ("v 0 0 x\n", r"line 1: expected numbers in a 'v' statement"),
        ("v 0 0 1\nv 0 0 1 1 1 1\n", r"vertices mix"),
    ],
)
def test_obj_errors_say_where(tmp_path, text, match):
    p = tmp_path / "q.obj"
    p.write_text(text)
    with pytest.raises(FormatError, match=match):
        read_mesh(p)


def test_write_refuses_existing_and_unknown(tmp_path, mesh):
    path = write_mesh(tmp_path / "m.ply", mesh)
    with pytest.raises(OutputExistsError, match=r"m.ply: exists"):
        write_mesh(path, mesh)
    write_mesh(path, mesh, overwrite=True)
    with pytest.raises(FormatError, match=r"unknown mesh extension '.stl'; known: .ply .obj .glb"):
        write_mesh(tmp_path / "m.stl", mesh)
    with pytest.raises(InputError, match=r"mesh: expected a TriangleMesh, got PointCloud"):
        write_mesh(tmp_path / "c.ply", mesh.as_cloud())
    with pytest.raises(InputError, match=r"no such file"):
        read_mesh(tmp_path / "missing.obj")
    (tmp_path / "bad.glb").write_bytes(b"glTF not really")
    with pytest.raises(FormatError, match=r"bad.glb: not a readable GLB file"):
        read_mesh(tmp_path / "bad.glb")
