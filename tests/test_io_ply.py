"""PLY: exact round trips, a hand-written golden file, files as other programs write them, bad input."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import optional_import

from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError, OutputExistsError
from depthcloud.io import decode_ply, encode_ply, read_cloud, read_ply, write_ply

GOLDEN = Path(__file__).parent / "golden"


def make_cloud(rng: np.random.Generator, n: int, *, colors: bool = True, normals: bool = True,
               frame: str = "optical", stamp: float | None = None) -> PointCloud:
    pts = (rng.standard_normal((n, 3)) * 3).astype(np.float32)
    cols = rng.integers(0, 256, (n, 3), dtype=np.uint8) if colors else None
    nrm = rng.standard_normal((n, 3)).astype(np.float32) if normals else None
    return PointCloud(pts, cols, nrm, frame=frame, stamp=stamp)


def golden_cloud() -> PointCloud:
    return PointCloud(
        np.array([[0, 0, 0], [1.5, -2.25, 3], [0.1, 0.2, 1e-5]], np.float32),
        np.array([[0, 0, 0], [255, 128, 7], [10, 20, 30]], np.uint8),
        np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], np.float32),
        frame="zup",
    )


# -- round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, {"byte_order": ">"}, {"binary": False}], ids=["le", "be", "ascii"])
@pytest.mark.parametrize("colors,normals", [(True, True), (True, False), (False, True), (False, False)])
def test_round_trip_is_exact(rng, kw, colors, normals):
    cloud = make_cloud(rng, 257, colors=colors, normals=normals)
    back = decode_ply(encode_ply(cloud, **kw))
    assert back == cloud
    assert back.points.dtype == np.float32 and back.points.shape == (257, 3)
    assert back.has_colors is colors and back.has_normals is normals
    if colors:
        assert back.colors is not None and back.colors.dtype == np.uint8


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("n", [0, 1])
def test_degenerate_sizes_round_trip(rng, binary, n):
    cloud = make_cloud(rng, n)
    back = decode_ply(encode_ply(cloud, binary=binary))
    assert back == cloud and len(back) == n and back.points.shape == (n, 3)


def test_extreme_float_values_survive_ascii(rng):
    pts = np.array([[np.finfo(np.float32).max, np.finfo(np.float32).tiny, -0.0],
                    [1e-45, -3.4028235e38, 0.1]], np.float32)
    cloud = PointCloud(pts)
    back = decode_ply(encode_ply(cloud, binary=False))
    assert back.points.tobytes() == pts.tobytes()


def test_frame_stamp_and_comments_are_written_and_read(tmp_path, rng):
    cloud = make_cloud(rng, 5, frame="zup", stamp=1700000000.125)
    path = write_ply(tmp_path / "c.ply", cloud, comments=["scanned by test", "obj two"])
    head = path.read_bytes().split(b"end_header")[0].decode()
    assert "comment scanned by test\ncomment obj two\ncomment frame zup\ncomment stamp 1700000000.125\n" in head
    back = read_ply(path)
    assert back == cloud and back.frame == "zup" and back.stamp == 1700000000.125


def test_ascii_writer_matches_golden_file_byte_for_byte():
    data = encode_ply(golden_cloud(), binary=False, comments=["golden file written by hand"])
    assert data == (GOLDEN / "small_ascii.ply").read_bytes()


def test_golden_file_reads_to_the_cloud_it_describes():
    assert read_ply(GOLDEN / "small_ascii.ply") == golden_cloud()


@pytest.mark.parametrize("order", ["<", ">"])
def test_binary_layout_matches_an_independent_struct_encoding(order):
    cloud = golden_cloud()
    data = encode_ply(cloud, byte_order=order)
    body = b"".join(struct.pack(order + "6f3B", *p, *nrm, *c)
                    for p, nrm, c in zip(cloud.points.tolist(), cloud.normals.tolist(), cloud.colors.tolist(),
                                         strict=True))
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    assert data.startswith(f"ply\nformat {fmt} 1.0\ncomment frame zup\nelement vertex 3\n".encode())
    assert data.endswith(b"end_header\n" + body)


# -- reading what other programs write ----------------------------------------------------------

@pytest.mark.parametrize("ascii_", [False, True])
def test_reads_what_open3d_writes(tmp_path, rng, ascii_):
    o3d = optional_import("open3d")
    cloud = make_cloud(rng, 100)
    pc = o3d.geometry.PointCloud()
    pc.points = o3d.utility.Vector3dVector(cloud.points.astype(np.float64))
    pc.colors = o3d.utility.Vector3dVector(cloud.colors.astype(np.float64) / 255.0)
    pc.normals = o3d.utility.Vector3dVector(cloud.normals.astype(np.float64))
    path = tmp_path / "o3d.ply"
    assert o3d.io.write_point_cloud(str(path), pc, write_ascii=ascii_)
    back = read_ply(path)
    # Binary Open3D files hold doubles (exact); its ASCII writer prints five decimals.
    tol = 6e-6 if ascii_ else 0.0
    np.testing.assert_allclose(back.points, cloud.points, rtol=0, atol=tol)
    np.testing.assert_allclose(back.normals, cloud.normals, rtol=0, atol=tol)
    np.testing.assert_array_equal(back.colors, cloud.colors)


def test_open3d_reads_what_we_write(tmp_path, rng):
    o3d = optional_import("open3d")
    cloud = make_cloud(rng, 100)
    path = write_ply(tmp_path / "ours.ply", cloud)
    pc = o3d.io.read_point_cloud(str(path))
    np.testing.assert_array_equal(np.asarray(pc.points), cloud.points.astype(np.float64))
    np.testing.assert_array_equal(np.asarray(pc.normals), cloud.normals.astype(np.float64))
    np.testing.assert_allclose(np.asarray(pc.colors) * 255.0, cloud.colors, atol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"byte_order": ">"}, {"binary": False}], ids=["le", "be", "ascii"])
def test_plyfile_reads_what_we_write(tmp_path, rng, kw):
    plyfile = pytest.importorskip("plyfile")
    cloud = make_cloud(rng, 50)
    path = write_ply(tmp_path / "ours.ply", cloud, **kw)
    vert = plyfile.PlyData.read(str(path))["vertex"].data
    np.testing.assert_array_equal(np.stack([vert["x"], vert["y"], vert["z"]], 1), cloud.points)
    np.testing.assert_array_equal(np.stack([vert["red"], vert["green"], vert["blue"]], 1), cloud.colors)
    np.testing.assert_array_equal(np.stack([vert["nx"], vert["ny"], vert["nz"]], 1), cloud.normals)


def test_reads_plyfile_output_with_doubles_and_faces_before_vertex(tmp_path, rng):
    plyfile = pytest.importorskip("plyfile")
    pts = rng.random((20, 3))
    vert = np.array([tuple(p) for p in pts], dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8")])
    faces = np.array([([0, 1, 2],), ([3, 4, 5, 6],)], dtype=[("vertex_indices", "O")])
    faces["vertex_indices"] = [np.array([0, 1, 2], "i4"), np.array([3, 4, 5, 6], "i4")]
    for text in (False, True):
        path = tmp_path / f"pf_{text}.ply"
        plyfile.PlyData([plyfile.PlyElement.describe(faces, "face"), plyfile.PlyElement.describe(vert, "vertex")],
                        text=text).write(str(path))
        back = read_ply(path)
        np.testing.assert_array_equal(back.points, pts.astype(np.float32))


MESHLAB_ASCII = (
    b"ply\r\nformat ascii 1.0\r\ncomment VCGLIB generated\r\nelement vertex 3\r\n"
    b"property float x\r\nproperty float y\r\nproperty float z\r\nproperty float nx\r\nproperty float ny\r\n"
    b"property float nz\r\nproperty uchar red\r\nproperty uchar green\r\nproperty uchar blue\r\n"
    b"property uchar alpha\r\nproperty float quality\r\nelement face 1\r\n"
    b"property list uchar int vertex_indices\r\nend_header\r\n"
    b"1 2 3 0 0 1 10 20 30 255 0.5\r\n4 5 6 0 1 0 40 50 60 255 0.25\r\n7 8 9 1 0 0 70 80 90 128 1\r\n"
    b"3 0 1 2\r\n"
)


def test_reads_meshlab_style_crlf_ascii_with_alpha_quality_and_faces():
    cloud = decode_ply(MESHLAB_ASCII)
    np.testing.assert_array_equal(cloud.points, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(cloud.colors, [[10, 20, 30], [40, 50, 60], [70, 80, 90]])
    np.testing.assert_array_equal(cloud.normals, [[0, 0, 1], [0, 1, 0], [1, 0, 0]])


def test_reads_cloudcompare_style_binary_with_obj_info_doubles_and_scalar_fields():
    head = (b"ply\nformat binary_little_endian 1.0\ncomment Author: CloudCompare (TELECOM PARISTECH/EDF R&D)\n"
            b"obj_info Generated by CloudCompare!\nelement vertex 2\nproperty double x\nproperty double y\n"
            b"property double z\nproperty uint8 red\nproperty uint8 green\nproperty uint8 blue\n"
            b"property float scalar_Intensity\nend_header\n")
    body = struct.pack("<3d3Bf", 1.25, -2.5, 3.75, 1, 2, 3, 0.5) + struct.pack("<3d3Bf", 0.0, 0.5, 9.0, 4, 5, 6, 7.0)
    cloud = decode_ply(head + body)
    np.testing.assert_array_equal(cloud.points, [[1.25, -2.5, 3.75], [0, 0.5, 9]])
    np.testing.assert_array_equal(cloud.colors, [[1, 2, 3], [4, 5, 6]])
    assert cloud.normals is None


def test_reads_librealsense_style_binary_with_faces_after_vertices():
    # librealsense's export: float x/y/z, optional uchar red/green/blue, then triangle faces.
    head = (b"ply\nformat binary_little_endian 1.0\ncomment generated by librealsense\nelement vertex 3\n"
            b"property float x\nproperty float y\nproperty float z\nproperty uchar red\nproperty uchar green\n"
            b"property uchar blue\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n")
    body = b"".join(struct.pack("<3f3B", *p) for p in [(0.1, 0.2, 0.3, 1, 2, 3), (0.4, 0.5, 0.6, 4, 5, 6),
                                                       (0.7, 0.8, 0.9, 7, 8, 9)])
    body += struct.pack("<B3i", 3, 0, 1, 2)
    cloud = decode_ply(head + body)
    np.testing.assert_array_equal(cloud.points, np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]],
                                                         np.float32))
    np.testing.assert_array_equal(cloud.colors, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])


def test_binary_big_endian_with_a_list_element_before_the_vertices_and_vertex_lists():
    head = (b"ply\nformat binary_big_endian 1.0\nelement tags 2\nproperty list ushort short ids\n"
            b"element vertex 2\nproperty short x\nproperty int y\nproperty double z\n"
            b"property list uchar float extra\nend_header\n")
    body = struct.pack(">H2h", 2, 7, 8) + struct.pack(">H", 0)
    body += struct.pack(">hid", 1, -2, 3.5) + struct.pack(">B2f", 2, 0.0, 1.0)
    body += struct.pack(">hid", -4, 5, 6.0) + struct.pack(">B", 0)
    cloud = decode_ply(head + body)
    np.testing.assert_array_equal(cloud.points, [[1, -2, 3.5], [-4, 5, 6]])


def test_ascii_vertex_with_a_list_property():
    data = (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty list uchar int ids\n"
            b"property float y\nproperty float z\nend_header\n1 2 5 6 7 8\n2 0 9 10\n")
    np.testing.assert_array_equal(decode_ply(data).points, [[1, 7, 8], [2, 9, 10]])


def test_float_colours_in_unit_range_are_scaled():
    data = (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
            b"property float red\nproperty float green\nproperty float blue\nend_header\n0 0 1 1.0 0.5 0\n")
    np.testing.assert_array_equal(decode_ply(data).colors, [[255, 128, 0]])


def test_non_finite_vertices_are_dropped_with_their_colours():
    data = (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
            b"property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
            b"1 2 3 1 1 1\nnan 0 0 2 2 2\n4 5 inf 3 3 3\n")
    cloud = decode_ply(data)
    np.testing.assert_array_equal(cloud.points, [[1, 2, 3]])
    np.testing.assert_array_equal(cloud.colors, [[1, 1, 1]])


def test_read_cloud_dispatches_ply(tmp_path, rng):
    cloud = make_cloud(rng, 9)
    write_ply(tmp_path / "X.PLY", cloud)
    assert read_cloud(tmp_path / "X.PLY") == cloud


# -- bad input ----------------------------------------------------------------------------------

HEAD = b"ply\nformat binary_little_endian 1.0\nelement vertex %d\nproperty float x\nproperty float y\n" \
       b"property float z\nend_header\n"


@pytest.mark.parametrize("data,match", [
    (b"plx\nformat ascii 1.0\n", r"line 1: not a PLY file"),
    (b"PK\x03\x04", r"not a PLY file"),
    (b"ply\nformat ascii 1.0\nelement vertex\nend_header\n", r"cloud.ply: line 3: expected 'element <name> <count>'"),
    (b"ply\nformat ascii 1.0\nelement vertex -3\nend_header\n", r"line 3: expected 'element <name> <count>'"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float128 x\nend_header\n",
     r"line 4: unknown property type 'float128'"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty list float int x\nend_header\n",
     r"line 4: a list count must be an integer type"),
    (b"ply\nformat ascii 2.0\nend_header\n", r"line 2: unsupported PLY version"),
    (b"ply\nformat utf8 1.0\nend_header\n", r"line 2: expected 'format ascii"),
    (b"ply\nelement vertex 0\nend_header\n", r"no 'format' line"),
    (b"ply\nformat ascii 1.0\nproperty float x\nend_header\n", r"line 3: 'property' before any 'element'"),
    (b"ply\nformat ascii 1.0\nfoo bar\nend_header\n", r"line 3: unknown header keyword 'foo'"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\n", r"no 'end_header' line"),
    (b"ply\nformat ascii 1.0\nelement face 0\nend_header\n", r"no 'vertex' element"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nend_header\n1\n", r"no x, y, z properties"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float x\nend_header\n",
     r"line 5: property 'x' appears twice"),
    (HEAD % 10 + b"\x00" * 100, r"line 3: element 'vertex' declares 10 rows \(120 bytes\) but the body has 100"),
    (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
     b"end_header\n1 2 3\n4 5 6\n", r"line 3: element 'vertex' declares 3 rows but only 2 lines"),
    (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
     b"end_header\n1 2 3\n4 5\n", r"line 9: element 'vertex': expected 3 values, got 2"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
     b"end_header\n1 two 3\n", r"line 8: element 'vertex': expected a number, got 'two'"),
    # Regression: rows with too many and too few values used to pass when their total was right.
    (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
     b"end_header\n1 2 3 4\n5 6\n", r"line 8: element 'vertex': expected 3 values, got 4"),
    (b"ply\nformat binary_little_endian 1.0\nelement face 1\nproperty list uchar int v\nelement vertex 0\n"
     b"property float x\nend_header\n\x05\x00", r"element 'face' row 0: the body ends early"),
    # Regression: a huge count on a vertex element with a list property was allocated before any check.
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000000\nproperty float x\nproperty float y\n"
     b"property float z\nproperty list uchar int v\nend_header\n\x00",
     r"line 3: element 'vertex' declares 1000000000000 rows \(at least 13000000000000 bytes\) but the body has 1"),
])
def test_bad_input_names_file_and_line(data, match):
    with pytest.raises(FormatError, match=match):
        decode_ply(data, path="cloud.ply")


def test_truncated_file_on_disk_names_the_file(tmp_path, rng):
    path = write_ply(tmp_path / "cut.ply", make_cloud(rng, 100))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(FormatError, match=r"^cut\.ply: line \d+: element 'vertex' declares 100 rows"):
        read_ply(path)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"nope\.ply: no such file"):
        read_ply(tmp_path / "nope.ply")


def test_refuses_to_overwrite_unless_asked(tmp_path, rng):
    a, b = make_cloud(rng, 3), make_cloud(rng, 4)
    path = write_ply(tmp_path / "c.ply", a)
    with pytest.raises(OutputExistsError, match=r"c\.ply: exists"):
        write_ply(path, b)
    assert read_ply(path) == a
    write_ply(path, b, overwrite=True)
    assert read_ply(path) == b


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path, rng):
    with pytest.raises(InputError, match=r"comments: each comment must be one line"):
        write_ply(tmp_path / "c.ply", make_cloud(rng, 3), comments=["two\nlines"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw,match", [
    ({"byte_order": "="}, r"byte_order: expected '<' or '>', got '='"),
    ({"comments": "single"}, r"comments: expected a sequence of strings"),
    ({"comments": [3]}, r"comments: expected strings, got int"),
])
def test_invalid_writer_options(rng, kw, match):
    with pytest.raises(InputError, match=match):
        encode_ply(make_cloud(rng, 2), **kw)


def test_writer_wants_a_point_cloud():
    with pytest.raises(InputError, match=r"cloud: expected a PointCloud, got ndarray"):
        encode_ply(np.zeros((3, 3)))  # type: ignore[arg-type]


def test_decoder_wants_bytes():
    with pytest.raises(InputError, match=r"data: expected bytes, got str"):
        decode_ply("ply\n")  # type: ignore[arg-type]


def test_frame_name_with_spaces_cannot_be_stored(rng):
    with pytest.raises(InputError, match=r"cannot store frame name"):
        encode_ply(make_cloud(rng, 2, frame="my frame"))


def test_large_binary_cloud_round_trip(rng):
    cloud = make_cloud(rng, 300_000, normals=False)
    data = encode_ply(cloud)
    assert len(data) == len(data.split(b"end_header\n")[0]) + len(b"end_header\n") + 15 * 300_000
    assert decode_ply(data) == cloud


def test_parse_ply_header_describes_every_element():
    from depthcloud.io.ply import PlyProperty, parse_ply_header

    data = (b"ply\r\nformat binary_big_endian 1.0\r\ncomment one\r\nobj_info two\r\nelement vertex 2\r\n"
            b"property double x\r\nproperty uint8 red\r\nelement face 1\r\nproperty list uchar int vertex_indices\r\n"
            b"end_header\r\nBODY")
    h = parse_ply_header(data)
    assert (h.format, h.byte_order, h.comments, h.obj_info) == ("binary_big_endian", ">", ("one",), ("two",))
    assert [(e.name, e.count, e.line) for e in h.elements] == [("vertex", 2, 5), ("face", 1, 8)]
    assert h.elements[0].properties == (PlyProperty("x", "f8"), PlyProperty("red", "u1"))
    assert h.elements[1].properties == (PlyProperty("vertex_indices", "i4", "u1"),)
    assert h.elements[1].has_lists and not h.elements[0].has_lists
    assert data[h.body_offset:] == b"BODY"
