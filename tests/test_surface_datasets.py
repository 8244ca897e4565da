"""Posed RGB-D readers: Redwood and TUM folders, recordings, .log / TUM / 4×4 trajectories, Open3D's
camera JSON. Small made-up files pin the formats; the Redwood test data checks the real layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from depthcloud.camera import Intrinsics
from depthcloud.errors import FormatError, InputError
from depthcloud.frame import Frame
from depthcloud.io.depthimage import write_depth_png, write_png
from depthcloud.surface.datasets import load_camera, open_rgbd, read_open3d_intrinsic, read_trajectory

CAM = Intrinsics(fx=40.0, fy=42.0, cx=15.3, cy=11.7, width=32, height=24)


def _depth(k: int) -> np.ndarray:
    d = np.full(CAM.shape, 1.0 + 0.1 * k, np.float32)
    d[0, :5] = 0.0
    return d


def _color(k: int) -> np.ndarray:
    c = np.zeros((*CAM.shape, 3), np.uint8)
    c[..., 0] = 10 * k
    c[..., 1] = np.arange(CAM.width, dtype=np.uint8)[None, :]
    return c


def _redwood(root, n=3, *, match=False, color_dir="color"):
    (root / "depth").mkdir(parents=True)
    (root / color_dir).mkdir()
    for k in range(n):
        write_depth_png(root / "depth" / f"{k:05d}.png", _depth(k))
        write_png(root / color_dir / f"{k:05d}.png", _color(k))
    if match:
        # deliberately paired out of name order: the match file decides
        lines = [f"depth/{k:05d}.png {color_dir}/{(n - 1 - k):05d}.png" for k in range(n)]
        (root / "rgbd.match").write_text("\n".join(lines) + "\n")
    return root


# -- frames -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("color_dir", ["color", "image"])
def test_redwood_folder_pairs_by_name(tmp_path, color_dir):
    seq = open_rgbd(_redwood(tmp_path / "r", color_dir=color_dir), camera=CAM)
    assert seq.kind == "redwood" and len(seq) == 3 and seq.stamps is None
    frames = list(seq)
    assert all(isinstance(f, Frame) and f.intrinsics == CAM for f in frames)
    for k, f in enumerate(frames):
        np.testing.assert_array_equal(f.depth, _depth(k))  # millimetre PNG → metres
        np.testing.assert_array_equal(f.color, _color(k))
        assert f.seq == k


def test_redwood_rgbd_match_decides_the_pairs(tmp_path):
    frames = list(open_rgbd(_redwood(tmp_path / "r", match=True), camera=CAM))
    assert [int(f.color[0, 0, 0]) // 10 for f in frames] == [2, 1, 0]
    np.testing.assert_array_equal(frames[0].depth, _depth(0))


def test_redwood_depth_only_and_depth_scale(tmp_path):
    root = tmp_path / "r"
    (root / "depth").mkdir(parents=True)
    write_depth_png(root / "depth" / "a.png", _depth(0), depth_scale=0.0005)
    (f,) = open_rgbd(root, camera=CAM, depth_scale=0.0005)
    assert f.color is None
    np.testing.assert_allclose(f.depth, _depth(0), atol=1e-6)


def test_tum_folder_associates_by_nearest_stamp(tmp_path):
    root = tmp_path / "tum"
    (root / "depth").mkdir(parents=True)
    (root / "rgb").mkdir()
    dstamps, cstamps = [10.000, 10.033, 10.066, 20.0], [10.005, 10.030, 10.070]
    for k, s in enumerate(dstamps):
        write_depth_png(root / "depth" / f"{s:.6f}.png", _depth(k), depth_scale=1 / 5000)
    for k, s in enumerate(cstamps):
        write_png(root / "rgb" / f"{s:.6f}.png", _color(k))
    (root / "depth.txt").write_text("# depth maps\n# file: 'x'\n# timestamp filename\n"
                                    + "".join(f"{s:.6f} depth/{s:.6f}.png\n" for s in dstamps))
    (root / "rgb.txt").write_text("# color images\n" + "".join(f"{s:.6f} rgb/{s:.6f}.png\n" for s in cstamps))
    seq = open_rgbd(root, camera=CAM)
    assert seq.kind == "tum" and len(seq) == 3 and seq.skipped == 1  # 20.0 s has no colour near it
    np.testing.assert_allclose(seq.stamps, dstamps[:3])
    frames = list(seq)
    assert [int(f.color[0, 0, 0]) for f in frames] == [0, 10, 20]
    np.testing.assert_allclose(frames[1].depth, _depth(1), atol=1e-6)  # value / 5000 = metres
    assert frames[2].stamp == pytest.approx(10.066)


def test_folder_without_camera_is_a_clean_error(tmp_path):
    with pytest.raises(InputError, match="without intrinsics; give the camera with --camera"):
        open_rgbd(_redwood(tmp_path / "r"))


def test_camera_of_another_size_names_the_file(tmp_path):
    small = Intrinsics(fx=40.0, fy=42.0, cx=7.0, cy=5.0, width=16, height=12)
    with pytest.raises(InputError, match=r"00000\.png.*camera 16x12 from --camera"):
        next(iter(open_rgbd(_redwood(tmp_path / "r"), camera=small)))


@pytest.mark.parametrize(("make", "match"), [
    (lambda p: p.mkdir(), "neither an Open3D/Redwood folder"),
    (lambda p: p.write_text("x"), "expected a frames folder"),
    (lambda p: None, "no such folder"),
    (lambda p: p.with_suffix(".dcrec").write_text("x"), "no such folder"),
])
def test_not_a_sequence(tmp_path, make, match):
    p = tmp_path / "x"
    make(p)
    with pytest.raises(InputError, match=match):
        open_rgbd(p, camera=CAM)


def test_unpaired_colour_counts_are_refused(tmp_path):
    root = _redwood(tmp_path / "r")
    write_png(root / "color" / "zzz.png", _color(0))
    (root / "color" / "00000.png").rename(root / "color" / "first.png")
    with pytest.raises(InputError, match="3 depth images but 4 colour images"):
        open_rgbd(root, camera=CAM)


# -- trajectories ------------------------------------------------------------------------------------


def _poses(n: int) -> np.ndarray:
    out = []
    for k in range(n):
        a = 0.3 * k
        T = np.eye(4)
        T[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        T[:3, 3] = [0.5 * k, -0.25 * k, 2.0 + k]
        out.append(T)
    return np.array(out)


def test_redwood_log(tmp_path):
    P = _poses(3)
    text = "".join(f"{k} {k} {k + 1}\n" + "\n".join(" ".join(f"{x:.10f}" for x in row) for row in P[k]) + "\n"
                   for k in range(3))
    (tmp_path / "t.log").write_text(text)
    traj = read_trajectory(tmp_path / "t.log")
    assert traj.stamps is None and len(traj) == 3
    np.testing.assert_allclose(traj.poses, P, atol=1e-9)
    np.testing.assert_allclose(traj.for_frames(2), P[:2], atol=1e-9)
    with pytest.raises(InputError, match=r"t\.log: has 3 poses for 5 frames"):
        traj.for_frames(5)


def test_tum_trajectory_matches_by_stamp(tmp_path):
    from scipy.spatial.transform import Rotation

    P = _poses(4)
    stamps = [1.00, 1.01, 1.02, 1.03]
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for s, T in zip(stamps, P, strict=True):
        q = Rotation.from_matrix(T[:3, :3]).as_quat()  # x y z w
        lines.append(f"{s:.4f} " + " ".join(f"{x:.10f}" for x in [*T[:3, 3], *q]))
    (tmp_path / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    traj = read_trajectory(tmp_path / "groundtruth.txt")
    np.testing.assert_allclose(traj.stamps, stamps)
    got = traj.for_frames(3, np.array([1.029, 1.001, 1.012]))
    np.testing.assert_allclose(got, P[[3, 0, 1]], atol=1e-8)
    with pytest.raises(InputError, match=r"1 of 2 frames have no pose within 0\.02 s \(first: frame 1"):
        traj.for_frames(2, np.array([1.0, 2.0]))
    with pytest.raises(InputError, match="frames have no time stamps"):
        traj.for_frames(1, None)


@pytest.mark.parametrize("layout", ["rows", "lines16", "lines12", "npy"])
def test_matrix_trajectories(tmp_path, layout):
    P = _poses(3)
    path = tmp_path / ("t.npy" if layout == "npy" else "t.txt")
    if layout == "npy":
        np.save(path, P)
    elif layout == "rows":
        path.write_text("\n\n".join("\n".join(" ".join(repr(float(x)) for x in r) for r in T) for T in P))
    else:
        rows = 4 if layout == "lines16" else 3
        path.write_text("\n".join(" ".join(repr(float(x)) for x in T[:rows].ravel()) for T in P))
    np.testing.assert_allclose(read_trajectory(path).poses, P)


@pytest.mark.parametrize(("text", "match"), [
    ("0 0 1\n1 0 0 0\n0 1 0 0\n0 0 1 0\n", "5 lines per frame"),
    ("1 2 3 4 5\n", "not a trajectory depthcloud reads"),
    ("1 0 0 0\n0 1 0 0\n0 0 2 0\n0 0 0 1\n", "pose 0 is not a rigid transform"),
    ("1 0 0 x\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "line 1: expected numbers"),
    ("# only a comment\n", "no poses"),
])
def test_bad_trajectories(tmp_path, text, match):
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(FormatError, match=match):
        read_trajectory(tmp_path / "t.txt")


# -- intrinsics --------------------------------------------------------------------------------------


def test_open3d_camera_json_is_column_major(tmp_path):
    K = CAM.K
    doc = {"width": CAM.width, "height": CAM.height, "intrinsic_matrix": K.T.ravel().tolist()}
    (tmp_path / "cam.json").write_text(json.dumps(doc))
    assert read_open3d_intrinsic(tmp_path / "cam.json") == CAM
    assert load_camera(tmp_path / "cam.json") == CAM


def test_load_camera_reads_the_project_formats_too(tmp_path):
    from depthcloud.io.calibfiles import save_camera

    save_camera(tmp_path / "cam.yaml", CAM)
    assert load_camera(tmp_path / "cam.yaml") == CAM


@pytest.mark.parametrize(("doc", "match"), [
    ({"width": 4, "height": 3, "intrinsic_matrix": [1, 2]}, "intrinsic_matrix': expected 9 values"),
    ({"width": 4, "height": 3, "intrinsic_matrix": [1, 0, 0, 0, 1, 0, 0, 0, 2]}, r"K: expected \[\[fx"),
    ({"width": 4}, "missing key"),
])
def test_bad_open3d_camera_json(tmp_path, doc, match):
    (tmp_path / "cam.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=match):
        read_open3d_intrinsic(tmp_path / "cam.json")


def test_redwood_test_data(data_dir):
    root = data_dir / "rgbd_open3d_testdata"
    if not (root / "camera_primesense.json").is_file():
        pytest.skip("rgbd_open3d_testdata not found")
    cam = load_camera(root / "camera_primesense.json")
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (525, 525, 319.5, 239.5, 640, 480)
    seq = open_rgbd(root / "RGBD", camera=cam)
    assert len(seq) == 5
    first = next(iter(seq))
    valid = first.depth[first.depth > 0]
    assert valid.min() > 0.9 and valid.max() < 2.8  # millimetres became metres (0.96–2.70 m)
    traj = read_trajectory(root / "RGBD" / "trajectory.log")
    assert len(traj) == 5 and traj.poses[0][2, 3] == pytest.approx(2.1264800183565487)
