"""XYZ/CSV/TXT and NPZ clouds, and read_cloud/write_cloud dispatch by extension."""

from __future__ import annotations

import io

import numpy as np
import pytest

from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError, OutputExistsError
from depthcloud.io import CLOUD_EXTENSIONS, read_cloud, read_npz, read_xyz, write_cloud, write_npz, write_xyz
from depthcloud.io.npz import decode_npz, encode_npz
from depthcloud.io.xyz import decode_xyz, encode_xyz


def make_cloud(rng: np.random.Generator, n: int, *, colors: bool = True, normals: bool = False,
               frame: str = "optical", stamp: float | None = None) -> PointCloud:
    pts = (rng.standard_normal((n, 3)) * 3).astype(np.float32)
    cols = rng.integers(0, 256, (n, 3), dtype=np.uint8) if colors else None
    nrm = rng.standard_normal((n, 3)).astype(np.float32) if normals else None
    return PointCloud(pts, cols, nrm, frame=frame, stamp=stamp)


# -- XYZ / CSV / TXT ----------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".xyz", ".txt", ".csv"])
@pytest.mark.parametrize("colors", [True, False])
def test_text_round_trip_is_exact(tmp_path, rng, suffix, colors):
    cloud = make_cloud(rng, 200, colors=colors)
    path = write_xyz(tmp_path / f"c{suffix}", cloud)
    back = read_xyz(path)
    assert back == cloud and back.points.dtype == np.float32


@pytest.mark.parametrize("n", [0, 1])
def test_text_degenerate_sizes(rng, n):
    cloud = make_cloud(rng, n)
    assert decode_xyz(encode_xyz(cloud)) == PointCloud(cloud.points, None if n == 0 else cloud.colors)


def test_csv_has_a_header_and_numpy_reads_it(tmp_path, rng):
    cloud = make_cloud(rng, 20)
    path = write_xyz(tmp_path / "c.csv", cloud)
    assert path.read_text().splitlines()[0] == "x,y,z,r,g,b"
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    np.testing.assert_array_equal(table[:, :3].astype(np.float32), cloud.points)
    np.testing.assert_array_equal(table[:, 3:], cloud.colors)


def test_xyz_is_whitespace_separated_without_header():
    cloud = PointCloud(np.array([[1.5, -2, 0.1]], np.float32), np.array([[1, 2, 3]], np.uint8))
    assert encode_xyz(cloud) == b"1.5 -2.0 0.1 1 2 3\n"


def test_normals_are_not_written_to_text(rng):
    cloud = make_cloud(rng, 3, normals=True)
    assert decode_xyz(encode_xyz(cloud)).normals is None


def test_reads_separators_headers_comments_and_float_colours():
    text = b"# exported\nX;Y;Z;R;G;B\n1;2;3;1.0;0.5;0\n\n4\t5\t6\t0\t0.25\t1\n"
    cloud = decode_xyz(text)
    np.testing.assert_array_equal(cloud.points, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(cloud.colors, [[255, 128, 0], [0, 64, 255]])


def test_cloudcompare_titles_find_columns_by_name():
    # CloudCompare's ASCII export with column titles: colours, a scalar field, then normals.
    text = (b"//X,Y,Z,R,G,B,Scalar_field,Nx,Ny,Nz\n"
            b"1.5,2,3,10,20,30,0.7,0,0,1\n4,5,6,40,50,60,0.1,0,-1,0\n")
    cloud = decode_xyz(text)
    np.testing.assert_array_equal(cloud.points, [[1.5, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(cloud.colors, [[10, 20, 30], [40, 50, 60]])
    np.testing.assert_array_equal(cloud.normals, [[0, 0, 1], [0, -1, 0]])


def test_header_columns_in_any_order_and_long_names():
    cloud = decode_xyz(b"intensity,red,green,blue,z,y,x,normal_x,normal_y,normal_z\n9,1,2,3,30,20,10,1,0,0\n")
    np.testing.assert_array_equal(cloud.points, [[10, 20, 30]])
    np.testing.assert_array_equal(cloud.colors, [[1, 2, 3]])
    np.testing.assert_array_equal(cloud.normals, [[1, 0, 0]])


def test_header_with_only_points_and_normals_reads_no_colours():
    cloud = decode_xyz(b"x y z nx ny nz\n1 2 3 -0.5 0.5 0\n")
    assert cloud.colors is None
    np.testing.assert_array_equal(cloud.normals, [[-0.5, 0.5, 0]])


def test_non_finite_rows_are_dropped():
    cloud = decode_xyz(b"1 2 3 9 9 9\nnan 0 0 1 1 1\n4 5 6 7 7 7\n")
    np.testing.assert_array_equal(cloud.points, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(cloud.colors, [[9, 9, 9], [7, 7, 7]])


@pytest.mark.parametrize("data,match", [
    (b"1 2 3 4\n", r"p\.xyz: line 1: expected 3 \(x y z\) or 6 \(x y z r g b\) columns, got 4"),
    (b"1 2 3\n4 5\n", r"p\.xyz: line 2: expected 3 values, got 2"),
    (b"1 2 3\n4 5 six\n", r"line 2: expected a number, got 'six'"),
    (b"1 2 3\n4 5 6 7\n8 9\n", r"p\.xyz: line 2: expected 3 values, got 4"),
    (b"1 2 3 0 0 0\n1 2 3 0 300 0\n", r"line 2: colours must be 0..255"),
    (b"a,b,c\n1,2,3\n", r"p\.xyz: line 1: the header names no x, y, z columns: 'a b c'"),
    (b"x,y,z,r,g,b\n1,2,3,4,5\n", r"line 2: expected 6 values, got 5"),
    (b"//X,Y,Z\n//X,Y,Z\n1,2\n", r"line 3: expected 3 values, got 2"),
])
def test_text_bad_input(data, match):
    with pytest.raises(FormatError, match=match):
        decode_xyz(data, path="p.xyz")


# -- NPZ ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("colors,normals", [(True, True), (False, False)])
def test_npz_round_trip_with_frame_and_stamp(tmp_path, rng, colors, normals):
    cloud = make_cloud(rng, 50, colors=colors, normals=normals, frame="zup", stamp=12.5)
    back = read_npz(write_npz(tmp_path / "c.npz", cloud))
    assert back == cloud and back.frame == "zup" and back.stamp == 12.5


def test_npz_holds_plain_arrays_numpy_can_read(rng):
    cloud = make_cloud(rng, 5, normals=True)
    with np.load(io.BytesIO(encode_npz(cloud)), allow_pickle=False) as z:
        assert sorted(z.files) == ["colors", "frame", "normals", "points"]
        np.testing.assert_array_equal(z["points"], cloud.points)
        assert z["points"].dtype == np.float32 and z["colors"].dtype == np.uint8 and str(z["frame"]) == "optical"


def test_npz_empty_cloud(rng):
    cloud = PointCloud(np.zeros((0, 3), np.float32))
    assert decode_npz(encode_npz(cloud)) == cloud


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("data,match", [
    (b"not a zip", r"c\.npz: not a readable \.npz file"),
    (npz_bytes(xyz=np.zeros((2, 3))), r"c\.npz: no 'points' array \(found: xyz\)"),
    (npz_bytes(points=np.zeros((2, 4))), r"c\.npz: points: expected shape \(N, 3\), got \(2, 4\)"),
    (npz_bytes(points=np.zeros((2, 3)), colors=np.zeros((3, 3), np.uint8)), r"colors: expected shape \(2, 3\)"),
    (npz_bytes(points=np.full((1, 3), np.nan)), r"points: contains NaN or inf"),
    (npz_bytes(points=np.zeros((1, 3)), frame=np.array(["a", "b"])), r"key 'frame': 'frame' must be a 0-d string"),
    (npz_bytes(points=np.zeros((1, 3)), stamp=np.array("x")), r"key 'stamp': 'stamp' must be a 0-d number"),
    (npz_bytes(points=np.array([None, None, None], dtype=object).reshape(1, 3)), r"not a readable \.npz file"),
])
def test_npz_bad_input(data, match):
    with pytest.raises(FormatError, match=match):
        decode_npz(data, path="c.npz")


# -- dispatch by extension ----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", CLOUD_EXTENSIONS)
@pytest.mark.parametrize("ascii_", [False, True])
def test_write_then_read_cloud_for_every_extension(tmp_path, rng, suffix, ascii_):
    cloud = make_cloud(rng, 30)
    path = write_cloud(tmp_path / f"c{suffix.upper()}", cloud, ascii=ascii_)
    assert path.name == f"c{suffix.upper()}"
    assert same_cloud(read_cloud(path), cloud, suffix)


def same_cloud(read: PointCloud, written: PointCloud, suffix: str) -> bool:
    """Equal, or for LAS/LAZ (integer coordinates of 0.1 mm) equal to half a step."""
    if suffix not in (".las", ".laz"):
        return read == written
    return (read.frame == written.frame and np.array_equal(read.colors, written.colors)
            and bool(np.abs(read.points - written.points).max() <= 0.5e-4 + 1e-6))


def test_ascii_flag_chooses_text_ply_and_pcd(tmp_path, rng):
    cloud = make_cloud(rng, 3)
    assert b"format ascii 1.0" in write_cloud(tmp_path / "a.ply", cloud, ascii=True).read_bytes()
    assert b"format binary_little_endian 1.0" in write_cloud(tmp_path / "b.ply", cloud).read_bytes()
    assert b"DATA ascii" in write_cloud(tmp_path / "a.pcd", cloud, ascii=True).read_bytes()


@pytest.mark.parametrize("name", ["c.e57", "c", "c.ply.gz"])
def test_unknown_extension_names_the_known_ones(tmp_path, rng, name):
    with pytest.raises(FormatError, match=r"unknown point-cloud extension .*; known: \.ply \.pcd \.xyz \.csv \.txt "
                                          r"\.npz"):
        write_cloud(tmp_path / name, make_cloud(rng, 2))
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(FormatError, match=rf"{name.replace('.', r'[.]')}: unknown point-cloud extension"):
        read_cloud(tmp_path / name)


@pytest.mark.parametrize("suffix", CLOUD_EXTENSIONS)
def test_write_cloud_refuses_to_overwrite(tmp_path, rng, suffix):
    a, b = make_cloud(rng, 2), make_cloud(rng, 4)
    path = write_cloud(tmp_path / f"c{suffix}", a)
    with pytest.raises(OutputExistsError, match=rf"c\{suffix}: exists"):
        write_cloud(path, b)
    assert same_cloud(read_cloud(path), a, suffix)
    write_cloud(path, b, overwrite=True)
    assert same_cloud(read_cloud(path), b, suffix)


def test_write_cloud_wants_a_point_cloud_and_a_file_path(tmp_path):
    with pytest.raises(InputError, match=r"cloud: expected a PointCloud, got ndarray"):
        write_cloud(tmp_path / "c.ply", np.zeros((2, 3)))  # type: ignore[arg-type]
    (tmp_path / "dir.ply").mkdir()
    with pytest.raises(InputError, match=r"dir\.ply: is a folder"):
        write_cloud(tmp_path / "dir.ply", PointCloud(np.zeros((1, 3))), overwrite=True)


def test_write_creates_parent_folders(tmp_path, rng):
    cloud = make_cloud(rng, 2)
    assert read_cloud(write_cloud(tmp_path / "a" / "b" / "c.ply", cloud)) == cloud


def test_read_cloud_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"none\.pcd: no such file"):
        read_cloud(tmp_path / "none.pcd")


def test_written_files_get_the_usual_permissions(tmp_path, rng):
    # Regression: writing through tempfile.mkstemp left every output readable by its owner only.
    reference = tmp_path / "plain.bin"
    reference.write_bytes(b"x")
    path = write_cloud(tmp_path / "c.ply", make_cloud(rng, 2))
    assert path.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.ply", "plain.bin"]


def test_a_failed_rename_leaves_neither_file_nor_temporary(tmp_path, rng, monkeypatch):
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(InputError, match=r"c\.pcd: cannot write: Permission denied"):
        write_cloud(tmp_path / "c.pcd", make_cloud(rng, 5))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_old_file_whole(tmp_path, rng, monkeypatch):
    import os

    old = make_cloud(rng, 5)
    path = write_cloud(tmp_path / "c.ply", old)

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(InputError, match=r"No space left on device"):
        write_cloud(path, make_cloud(rng, 9), overwrite=True)
    monkeypatch.undo()
    assert read_cloud(path) == old
    assert [p.name for p in tmp_path.iterdir()] == ["c.ply"]


def test_formats_guide_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block of docs/formats.md runs as written, in order, in an empty folder."""
    import re
    from pathlib import Path

    guide = Path(__file__).resolve().parents[1] / "docs" / "formats.md"
    blocks = re.findall(r"```python\n(.*?)```", guide.read_text(), re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"formats.md block {i}", "exec"), namespace)
    assert read_cloud(tmp_path / "cloud.ply") == namespace["cloud"]
