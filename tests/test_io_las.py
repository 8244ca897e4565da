"""LAS 1.4 / LAZ: the layout laspy reads back, 0.1 mm integers about data offsets, 8→16-bit RGB,
GPS time = stamp, the frame name, other writers' files, and bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest

laspy = pytest.importorskip("laspy")

from depthcloud.cloud import PointCloud  # noqa: E402
from depthcloud.errors import FormatError, MissingDependencyError, OutputExistsError  # noqa: E402
from depthcloud.io import read_cloud, write_cloud  # noqa: E402
from depthcloud.io.las import SCALE_M, decode_las, encode_las, read_las, write_las  # noqa: E402


def cloud_of(rng: np.random.Generator, n: int = 500, *, shift: float = 0.0, **kw) -> PointCloud:
    pts = (rng.uniform(-4, 4, (n, 3)) + shift).astype(np.float32)
    cols = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    return PointCloud(pts, cols, **kw)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_laspy_reads_what_we_write(tmp_path, rng, suffix):
    cloud = cloud_of(rng, shift=1234.56, frame="zup", stamp=1700000000.25)
    path = write_cloud(tmp_path / f"c{suffix}", cloud)
    las = laspy.read(path)
    assert str(las.header.version) == "1.4" and las.header.point_format.id == 7
    assert las.header.are_points_compressed == (suffix == ".laz")
    np.testing.assert_array_equal(las.header.scales, [SCALE_M] * 3)
    # offsets from the data: the centre of the bounds, whole metres
    lo, hi = cloud.bounds()
    np.testing.assert_array_equal(las.header.offsets, np.round((lo + hi) / 2))
    xyz = np.stack([las.x, las.y, las.z], axis=1)
    assert np.abs(xyz - cloud.points.astype(np.float64)).max() <= SCALE_M / 2 * 1.001
    # the LAS convention for 8-bit colour: ×257, so 255 is full scale 65535
    np.testing.assert_array_equal(las.red, cloud.colors[:, 0].astype(np.uint16) * 257)
    assert las.red.max() <= 65535
    np.testing.assert_array_equal(las.gps_time, np.full(len(cloud), 1700000000.25))


def test_round_trip_keeps_colours_exactly_frame_stamp_and_normals(tmp_path, rng):
    n = 300
    nrm = rng.standard_normal((n, 3)).astype(np.float32)
    cloud = cloud_of(rng, n, normals=nrm, frame="opengl", stamp=3.5)
    back = read_las(write_las(tmp_path / "c.laz", cloud))
    assert back.frame == "opengl" and back.stamp == 3.5
    np.testing.assert_array_equal(back.colors, cloud.colors)
    np.testing.assert_array_equal(back.normals, cloud.normals)
    assert np.abs(back.points - cloud.points).max() <= SCALE_M / 2 + 1e-6


def test_points_sit_on_the_tenth_of_a_millimetre_grid(rng):
    cloud = PointCloud(np.array([[0.00004, 1.00006, -2.00012]], np.float32))
    las = laspy.read(io.BytesIO(encode_las(cloud, compress=False)))
    np.testing.assert_array_equal(las.header.offsets, [0, 1, -2])  # one point: it is the centre
    assert (las.X.tolist(), las.Y.tolist(), las.Z.tolist()) == ([0], [1], [-1])  # 0.4, 0.6, -1.2 steps


def test_empty_and_colourless_clouds(tmp_path):
    empty = PointCloud(np.zeros((0, 3), np.float32))
    back = decode_las(encode_las(empty, compress=True))
    assert len(back) == 0
    plain = PointCloud(np.array([[1, 2, 3]], np.float32))
    assert decode_las(encode_las(plain, compress=False)).colors is None  # format 7 has RGB; our VLR says none
    assert read_cloud(write_cloud(tmp_path / "p.las", plain)).points.tolist() == [[1, 2, 3]]


def test_files_of_other_writers_read(tmp_path):
    header = laspy.LasHeader(point_format=1, version="1.2")  # no RGB, GPS time
    header.scales = [0.01, 0.01, 0.01]
    header.offsets = [100.0, 200.0, 0.0]
    las = laspy.LasData(header)
    las.x = np.array([100.5, 101.0])
    las.y = np.array([200.25, 199.0])
    las.z = np.array([1.0, 2.0])
    las.gps_time = np.array([7.0, 8.0])
    las.write(tmp_path / "other.las")
    cloud = read_cloud(tmp_path / "other.las")
    np.testing.assert_allclose(cloud.points, [[100.5, 200.25, 1.0], [101.0, 199.0, 2.0]])
    assert cloud.colors is None and cloud.frame == "optical" and cloud.stamp == 7.0


def test_bad_files_name_the_file(tmp_path, rng):
    (tmp_path / "junk.las").write_bytes(b"LASF" + bytes(100))
    with pytest.raises(FormatError, match=r"junk\.las: not a readable LAS/LAZ file"):
        read_cloud(tmp_path / "junk.las")
    data = encode_las(cloud_of(rng), compress=True)
    (tmp_path / "cut.laz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.laz: not a readable LAS/LAZ file"):
        read_cloud(tmp_path / "cut.laz")


def test_too_wide_a_cloud_is_refused(rng):
    from depthcloud.errors import InputError

    cloud = PointCloud(np.array([[0, 0, 0], [500_000.0, 0, 0]], np.float32))
    with pytest.raises(InputError, match=r"too large for LAS integers of 0\.1 mm"):
        encode_las(cloud, compress=False)


def test_refuses_to_overwrite(tmp_path, rng):
    path = write_las(tmp_path / "c.laz", cloud_of(rng))
    with pytest.raises(OutputExistsError):
        write_las(path, cloud_of(rng))


def test_missing_laspy_names_the_export_extra(monkeypatch, rng):
    import sys

    monkeypatch.setitem(sys.modules, "laspy", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'depthcloud\[export\]'"):
        encode_las(cloud_of(rng), compress=False)
