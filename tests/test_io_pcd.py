"""PCD: exact round trips in all three data kinds, LZF, PCL-style files by hand, bad headers."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tests.conftest import optional_import

from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError, OutputExistsError
from depthcloud.io import decode_pcd, encode_pcd, read_cloud, read_pcd, write_cloud, write_pcd
from depthcloud.io.pcd import lzf_compress, lzf_decompress, parse_pcd_header

KINDS = ["ascii", "binary", "binary_compressed"]


def make_cloud(rng: np.random.Generator, n: int, *, colors: bool = True, normals: bool = True,
               frame: str = "optical") -> PointCloud:
    pts = (rng.standard_normal((n, 3)) * 3).astype(np.float32)
    cols = rng.integers(0, 256, (n, 3), dtype=np.uint8) if colors else None
    nrm = rng.standard_normal((n, 3)).astype(np.float32) if normals else None
    return PointCloud(pts, cols, nrm, frame=frame)


@pytest.mark.parametrize("data", KINDS)
@pytest.mark.parametrize("colors,normals", [(True, True), (True, False), (False, True), (False, False)])
def test_round_trip_is_exact(rng, data, colors, normals):
    cloud = make_cloud(rng, 333, colors=colors, normals=normals)
    back = decode_pcd(encode_pcd(cloud, data=data))
    assert back == cloud
    assert back.points.dtype == np.float32 and back.points.shape == (333, 3)
    if colors:
        assert back.colors is not None and back.colors.dtype == np.uint8


@pytest.mark.parametrize("data", KINDS)
@pytest.mark.parametrize("n", [0, 1])
def test_degenerate_sizes_round_trip(rng, data, n):
    cloud = make_cloud(rng, n)
    assert decode_pcd(encode_pcd(cloud, data=data)) == cloud


@pytest.mark.parametrize("data", KINDS)
def test_frame_survives_as_a_comment(tmp_path, rng, data):
    cloud = make_cloud(rng, 4, frame="opengl")
    path = write_pcd(tmp_path / "c.pcd", cloud, data=data)
    assert b"# frame opengl\n" in path.read_bytes()
    assert read_pcd(path).frame == "opengl"


def test_header_is_what_pcl_writes_for_xyzrgb_normal(rng):
    data = encode_pcd(make_cloud(rng, 2), data="binary")
    head = data.split(b"DATA binary\n")[0].decode()
    assert head == ("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
                    "FIELDS x y z rgb normal_x normal_y normal_z\nSIZE 4 4 4 4 4 4 4\nTYPE F F F F F F F\n"
                    "COUNT 1 1 1 1 1 1 1\nWIDTH 2\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\n")


def test_rgb_is_packed_like_pcl():
    cloud = PointCloud(np.array([[1, 2, 3]], np.float32), np.array([[0x12, 0x34, 0x56]], np.uint8))
    data = encode_pcd(cloud, data="binary")
    x, y, z, rgb = struct.unpack("<3fI", data[-16:])
    assert (x, y, z) == (1, 2, 3) and rgb == 0x123456
    assert encode_pcd(cloud, data="ascii").endswith(b"\n1.0 2.0 3.0 1193046\n")


def test_binary_compressed_layout_is_structure_of_arrays():
    cloud = PointCloud(np.array([[1, 2, 3], [4, 5, 6]], np.float32))
    data = encode_pcd(cloud, data="binary_compressed")
    body = data.split(b"DATA binary_compressed\n")[1]
    csize, usize = struct.unpack("<II", body[:8])
    assert usize == 24 and csize == len(body) - 8
    assert lzf_decompress(body[8:], usize) == struct.pack("<6f", 1, 4, 2, 5, 3, 6)


# -- LZF ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"abcabcabcabc", b"\x00" * 10_000,
                                  bytes(range(256)) * 40, b"xy" * 5000 + bytes(range(200))])
def test_lzf_round_trip(data):
    packed = lzf_compress(data)
    assert lzf_decompress(packed, len(data)) == data
    assert len(packed) <= len(data) + len(data) // 32 + 1


def test_lzf_compresses_repetitive_data():
    data = np.tile(np.arange(64, dtype=np.float32), 1000).tobytes()
    assert len(lzf_compress(data)) < len(data) // 20


def test_lzf_decodes_a_stream_written_by_hand():
    # literal run "abc" (ctrl 2), then a back reference of length 6 at distance 3 (ctrl (4<<5)|0, offset 2).
    stream = bytes([2]) + b"abc" + bytes([4 << 5, 2])
    assert lzf_decompress(stream, 9) == b"abcabcabc"


def test_lzf_python_fallback_equals_compiled(tmp_path):
    """Without numba (DEPTHCLOUD_NO_NUMBA=1, in a subprocess) the LZF kernels run as Python, bit for bit."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = np.tile(np.arange(300, dtype=np.float32), 7).tobytes() + bytes(range(256))
    (tmp_path / "in.bin").write_bytes(data)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from depthcloud.io import pcd\n"
        "assert not hasattr(pcd._lzf_compress, 'py_func'), 'numba was used'\n"
        "data = Path(sys.argv[1]).read_bytes()\n"
        "packed = pcd.lzf_compress(data)\n"
        "assert pcd.lzf_decompress(packed, len(data)) == data\n"
        "Path(sys.argv[2]).write_bytes(packed)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True,
                   env={**os.environ, "DEPTHCLOUD_NO_NUMBA": "1"}, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert (tmp_path / "out.bin").read_bytes() == lzf_compress(data)


@pytest.mark.parametrize("stream,size,match", [
    (bytes([5]) + b"ab", 6, r"corrupt"),
    (bytes([0]) + b"a" + bytes([1 << 5, 9]), 4, r"corrupt"),
    (bytes([0]) + b"a", 5, r"corrupt"),
    (b"a", 10_000, r"cannot expand"),
])
def test_lzf_rejects_corrupt_streams(stream, size, match):
    with pytest.raises(FormatError, match=match):
        lzf_decompress(stream, size)


# -- reading files as PCL and others write them -------------------------------------------------

def test_organized_cloud_with_nan_points_drops_them():
    head = (b"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 2\n"
            b"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 4\nDATA binary\n")
    nan = float("nan")
    body = struct.pack("<12f", 1, 2, 3, nan, nan, nan, 4, 5, 6, 7, nan, 8)
    cloud = decode_pcd(head + body)
    np.testing.assert_array_equal(cloud.points, [[1, 2, 3], [4, 5, 6]])


def test_ascii_with_nan_and_rgba_uint_and_extra_fields():
    data = (b"VERSION .7\nFIELDS x y z intensity rgba\nSIZE 4 4 4 2 4\nTYPE F F F U U\nWIDTH 3\nHEIGHT 1\n"
            b"POINTS 3\nDATA ascii\n1 2 3 7 4278255360\nnan nan nan 0 0\n4 5 6 9 4294901760\n")
    cloud = decode_pcd(data)
    np.testing.assert_array_equal(cloud.points, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(cloud.colors, [[0, 255, 0], [255, 0, 0]])


def test_ascii_rgb_printed_as_float_by_old_pcl():
    # Old PCL printed the packed float itself; 0x00FF8000 as a float is a denormal.
    packed = np.array([0x00FF8000], np.uint32).view(np.float32)[0]
    data = (b"FIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\nWIDTH 1\nHEIGHT 1\nDATA ascii\n"
            + f"0 0 1 {packed}\n".encode())
    np.testing.assert_array_equal(decode_pcd(data).colors, [[255, 128, 0]])


def test_binary_with_doubles_count_and_padding_fields():
    head = (b"FIELDS x y z _ _ normal_x normal_y normal_z hist\nSIZE 8 8 8 1 1 4 4 4 4\nTYPE F F F U U F F F F\n"
            b"COUNT 1 1 1 3 1 1 1 1 2\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA binary\n")
    body = struct.pack("<3d4B5f", 0.5, 1.5, 2.5, 0, 0, 0, 0, 0, 0, 1, 9, 9)
    cloud = decode_pcd(head + body)
    np.testing.assert_array_equal(cloud.points, [[0.5, 1.5, 2.5]])
    np.testing.assert_array_equal(cloud.normals, [[0, 0, 1]])
    assert cloud.colors is None


def test_header_dataclass_fields():
    h = parse_pcd_header(b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 5\nHEIGHT 2\nDATA binary\n")
    assert (h.width, h.height, h.points, h.data, h.counts) == (5, 2, 10, "binary", (1, 1, 1))
    assert h.viewpoint == (0, 0, 0, 1, 0, 0, 0)


def test_read_and_write_cloud_dispatch_pcd(tmp_path, rng):
    cloud = make_cloud(rng, 10)
    write_cloud(tmp_path / "c.pcd", cloud, ascii=True)
    assert b"DATA ascii" in (tmp_path / "c.pcd").read_bytes()
    assert read_cloud(tmp_path / "c.pcd") == cloud


# -- bad input ----------------------------------------------------------------------------------

GOOD = b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH %d\nHEIGHT 1\nPOINTS %d\nDATA %s\n"


@pytest.mark.parametrize("data,match", [
    (b"ply\nformat ascii 1.0\n", r"c\.pcd: line 1: not a PCD file"),
    (b"VERSION 0.7\nFIELDS x y z\n", r"no DATA line"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 2\nHEIGHT 2\nPOINTS 3\nDATA ascii\n",
     r"line 6: POINTS 3 disagrees with WIDTH\*HEIGHT = 2\*2"),
    (b"FIELDS x y z\nSIZE 4 4\nTYPE F F F\nWIDTH 1\nDATA ascii\n", r"line 2: SIZE: expected 3 values"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F Q\nWIDTH 1\nDATA ascii\n", r"line 3: TYPE: unknown type 'Q'"),
    (b"FIELDS x y z\nSIZE 4 4 3\nTYPE F F F\nWIDTH 1\nDATA ascii\n", r"line 2: SIZE: 3 bytes is not valid"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH one\nDATA ascii\n", r"line 4: WIDTH: expected integers"),
    # Regression: a huge COUNT used to reach numpy's dtype constructor and raise ValueError.
    (b"FIELDS x y z w\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 100000000000\nWIDTH 1\nDATA binary\n",
     r"line 4: COUNT: expected 1\.\.1048576 for field 'w', got 100000000000"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 0 1\nWIDTH 1\nDATA binary\n",
     r"line 4: COUNT: expected 1\.\.1048576 for field 'y', got 0"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 1\nDATA zip\n", r"line 5: DATA: expected ascii, binary"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nDATA ascii\n", r"no WIDTH line"),
    (b"FIELDS x y z\nFIELDS x y z\n", r"line 2: FIELDS appears twice"),
    (b"FIELDS x y z\nCOLOUR 1\n", r"line 2: unknown header key 'COLOUR'"),
    (b"FIELDS a b c\nSIZE 4 4 4\nTYPE F F F\nWIDTH 1\nDATA ascii\n1 2 3\n", r"FIELDS has no 'x'"),
    (GOOD % (3, 3, b"ascii") + b"1 2 3\n", r"POINTS 3 but only 1 data lines"),
    (GOOD % (2, 2, b"ascii") + b"1 2 3\n4 5\n", r"data line 2: expected 3 values, got 2"),
    (GOOD % (1, 1, b"ascii") + b"1 2 x\n", r"data line 1: expected a number, got 'x'"),
    (GOOD % (2, 2, b"ascii") + b"1 2 3 4\n5 6\n", r"data line 1: expected 3 values, got 4"),
    (GOOD % (10, 10, b"binary") + b"\x00" * 100, r"POINTS 10 needs 120 bytes of binary data, got 100"),
    (GOOD % (2, 2, b"binary_compressed") + b"\x01\x00", r"size prefix is missing"),
    (GOOD % (2, 2, b"binary_compressed") + struct.pack("<II", 4, 20) + b"abcd",
     r"uncompressed size 20 does not match POINTS 2"),
    (GOOD % (2, 2, b"binary_compressed") + struct.pack("<II", 40, 24) + b"abcd", r"expected 40 compressed bytes"),
    (GOOD % (2, 2, b"binary_compressed") + struct.pack("<II", 2, 24) + b"\x05a", r"LZF: corrupt"),
])
def test_bad_input_names_file_and_line(data, match):
    with pytest.raises(FormatError, match=match):
        decode_pcd(data, path="c.pcd")


def test_refuses_to_overwrite_unless_asked(tmp_path, rng):
    a, b = make_cloud(rng, 3), make_cloud(rng, 5)
    path = write_pcd(tmp_path / "c.pcd", a)
    with pytest.raises(OutputExistsError, match=r"c\.pcd: exists"):
        write_pcd(path, b)
    assert read_pcd(path) == a
    write_pcd(path, b, data="binary_compressed", overwrite=True)
    assert read_pcd(path) == b


def test_invalid_data_kind(rng):
    with pytest.raises(InputError, match=r"data: expected one of ascii, binary, binary_compressed, got 'zip'"):
        encode_pcd(make_cloud(rng, 2), data="zip")


def test_writer_wants_a_point_cloud():
    with pytest.raises(InputError, match=r"cloud: expected a PointCloud"):
        encode_pcd([[0, 0, 0]])  # type: ignore[arg-type]


def test_large_compressed_round_trip(rng):
    cloud = make_cloud(rng, 300_000, normals=False)
    assert decode_pcd(encode_pcd(cloud, data="binary_compressed")) == cloud


def _o3d_cloud(o3d, cloud: PointCloud):
    pc = o3d.geometry.PointCloud()
    pc.points = o3d.utility.Vector3dVector(cloud.points.astype(np.float64))
    pc.colors = o3d.utility.Vector3dVector(cloud.colors.astype(np.float64) / 255.0)
    pc.normals = o3d.utility.Vector3dVector(cloud.normals.astype(np.float64))
    return pc


@pytest.mark.parametrize("kw", [{"write_ascii": False, "compressed": False}, {"write_ascii": False, "compressed": True},
                                {"write_ascii": True}], ids=["binary", "binary_compressed", "ascii"])
def test_reads_what_open3d_writes(tmp_path, rng, kw):
    o3d = optional_import("open3d")
    cloud = make_cloud(rng, 400)
    path = tmp_path / "o3d.pcd"
    assert o3d.io.write_point_cloud(str(path), _o3d_cloud(o3d, cloud), **kw)
    back = read_pcd(path)
    np.testing.assert_array_equal(back.colors, cloud.colors)
    if kw.get("write_ascii"):  # Open3D prints ten significant digits: exact for float32
        np.testing.assert_allclose(back.points, cloud.points, rtol=1e-7, atol=0)
    else:
        np.testing.assert_array_equal(back.points, cloud.points)
        np.testing.assert_array_equal(back.normals, cloud.normals)


@pytest.mark.parametrize("data", KINDS)
def test_open3d_reads_what_we_write(tmp_path, rng, data):
    o3d = optional_import("open3d")
    cloud = make_cloud(rng, 400)
    pc = o3d.io.read_point_cloud(str(write_pcd(tmp_path / "ours.pcd", cloud, data=data)))
    # Open3D parses our shortest float32 text into doubles; rounded to float32 they are our values.
    np.testing.assert_array_equal(np.asarray(pc.points).astype(np.float32), cloud.points)
    np.testing.assert_array_equal(np.asarray(pc.normals).astype(np.float32), cloud.normals)
    np.testing.assert_allclose(np.asarray(pc.colors) * 255.0, cloud.colors, atol=1e-6)
