"""`depthcloud cloud`: convert between every format, merge, voxel, crop, outliers, transform, frames."""

from __future__ import annotations

import numpy as np
import pytest

from _export_helpers import run
from depthcloud.cloud import PointCloud
from depthcloud.io import read_cloud, write_cloud


def grid(x0: float, n: int = 5, color: tuple[int, int, int] = (255, 0, 0)) -> PointCloud:
    """n × n × n points 0.1 m apart starting at x = x0 (a cube of 0.4 m)."""
    a = np.arange(n) * 0.1
    pts = np.stack(np.meshgrid(a + x0, a, a + 1.0, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float32)
    return PointCloud(pts, np.tile(np.array(color, np.uint8), (len(pts), 1)))


def test_merge_two_formats_into_a_laz(tmp_path, capsys):
    a = write_cloud(tmp_path / "a.ply", grid(0.0))
    b = write_cloud(tmp_path / "b.pcd", grid(1.0, color=(0, 0, 255)))
    code, out, err = run(capsys, "cloud", a, b, "--merge", "-o", tmp_path / "m.laz")
    assert code == 0, err
    m = read_cloud(tmp_path / "m.laz")
    assert len(m) == 250 and "250 points (from 250)" in out
    assert {tuple(c) for c in m.colors} == {(255, 0, 0), (0, 0, 255)}


def test_voxel_crop_and_outliers(tmp_path, capsys):
    c = grid(0.0, n=10)
    far = PointCloud(np.vstack([c.points, [[50, 50, 50]]]).astype(np.float32))
    src = write_cloud(tmp_path / "c.npz", far)
    code, _, err = run(capsys, "cloud", src, "-o", tmp_path / "o.ply", "--outliers")
    assert code == 0, err
    assert len(read_cloud(tmp_path / "o.ply")) == 1000  # the far point is gone
    code, _, err = run(capsys, "cloud", src, "-o", tmp_path / "v.ply", "--voxel", "0.2", "--crop",
                       "0,0,1,0.45,0.45,1.45")
    assert code == 0, err
    v = read_cloud(tmp_path / "v.ply")
    # crop first (5 × 5 × 5 points), then the voxel grid, as the library does it
    ref = far.crop([0, 0, 1], [0.45, 0.45, 1.45])
    assert len(ref) == 125
    assert v == ref.voxel_downsample(0.2) and 8 <= len(v) <= 27


def test_transform_from_numbers_and_from_a_file_and_named_frames(tmp_path, capsys):
    src = write_cloud(tmp_path / "c.ply", PointCloud(np.array([[1, 2, 3]], np.float32)))
    code, _, err = run(capsys, "cloud", src, "-o", tmp_path / "t.ply", "--transform",
                       "1,0,0,10, 0,1,0,20, 0,0,1,30, 0,0,0,1")
    assert code == 0, err
    t = read_cloud(tmp_path / "t.ply")
    assert t.points.tolist() == [[11, 22, 33]] and t.frame == "world"
    (tmp_path / "T.txt").write_text("0 -1 0 0\n1 0 0 0\n0 0 1 0\n0 0 0 1\n")
    assert run(capsys, "cloud", src, "-o", tmp_path / "r.xyz", "--transform", tmp_path / "T.txt")[0] == 0
    assert read_cloud(tmp_path / "r.xyz").points.tolist() == [[-2, 1, 3]]
    assert run(capsys, "cloud", src, "-o", tmp_path / "z.mcap", "--frame", "zup")[0] == 0
    z = read_cloud(tmp_path / "z.mcap")
    assert z.frame == "zup" and z.points.tolist() == [[3, -1, -2]]


def test_several_inputs_without_merge_go_to_a_folder(tmp_path, capsys):
    a = write_cloud(tmp_path / "a.ply", grid(0.0))
    b = write_cloud(tmp_path / "b.ply", grid(1.0))
    code, _, err = run(capsys, "cloud", a, b, "-o", tmp_path / "out", "--format", "las", "--voxel", "0.25")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.las", "b.las"]
    assert len(read_cloud(tmp_path / "out" / "a.las")) < 125


def test_an_mcap_recording_merges_every_cloud(tmp_path, capsys):
    import foxglove
    from foxglove import messages as m
    from foxglove.channels import PointCloudChannel

    ctx = foxglove.Context()
    T = m.PackedElementFieldNumericType
    fields = [m.PackedElementField(name=n, offset=4 * i, type=T.Float32) for i, n in enumerate("xyz")]
    with foxglove.open_mcap(tmp_path / "rec.mcap", context=ctx):
        ch = PointCloudChannel("/points", context=ctx)
        for i in range(3):
            ch.log(m.PointCloud(frame_id="optical", point_stride=12, fields=fields, data=grid(float(i)).points.tobytes()),
                   log_time=i + 1)
    code, _, err = run(capsys, "cloud", tmp_path / "rec.mcap", "-o", tmp_path / "one.ply")
    assert code == 2 and "holds 3 foxglove.PointCloud messages" in err  # one output wants one cloud
    code, _, err = run(capsys, "cloud", tmp_path / "rec.mcap", "--merge", "-o", tmp_path / "all.ply")
    assert code == 0, err
    assert len(read_cloud(tmp_path / "all.ply")) == 375


@pytest.mark.parametrize("args, needle", [
    (["{a}", "-o", "{tmp}/o.e57"], "expected a cloud file"),
    (["{a}", "{b}", "-o", "{tmp}/o.ply"], "several inputs without --merge need a folder"),
    (["{a}", "-o", "{tmp}/o.ply", "--transform", "1,2,3"], "--transform: expected a file of 16 numbers"),
    (["{a}", "-o", "{tmp}/o.ply", "--transform", "1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1", "--frame", "zup"], "give one"),
    (["{a}", "-o", "{tmp}/o.ply", "--frame", "enu"], "--frame: expected one of optical, zup, opengl"),
    (["{a}", "-o", "{tmp}/o.ply", "--crop", "1,1,1,0,0,0"], "--crop: the first corner"),
    (["{tmp}/missing.ply", "-o", "{tmp}/o.ply"], "no such file"),
    (["{a}", "-o", "{a}", "--overwrite"], "an input is also the output"),
    (["{a}", "-o", "{tmp}/o.ply", "--voxel", "-1"], "--voxel: expected a size in metres >= 0"),
])
def test_bad_inputs_are_one_line(tmp_path, capsys, args, needle):
    a = write_cloud(tmp_path / "a.ply", grid(0.0))
    b = write_cloud(tmp_path / "b.ply", grid(1.0))
    code, _, err = run(capsys, "cloud", *[s.format(a=a, b=b, tmp=tmp_path) for s in args])
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_refuses_to_overwrite(tmp_path, capsys):
    a = write_cloud(tmp_path / "a.ply", grid(0.0))
    write_cloud(tmp_path / "o.ply", grid(1.0))
    code, _, err = run(capsys, "cloud", a, "-o", tmp_path / "o.ply")
    assert code == 2 and "OutputExistsError" in err
    assert run(capsys, "cloud", a, "-o", tmp_path / "o.ply", "--overwrite")[0] == 0
