"""`depthcloud fuse` end to end, in-process: Redwood, TUM and recording inputs, the preview, and the
one-line errors that leave nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depthcloud.cli import main
from depthcloud.frame import Frame
from depthcloud.io.depthimage import write_depth_png, write_png
from test_surface_tsdf import CAM, SPHERE_C, SPHERE_R, look_at, render_sphere

EYES = [SPHERE_C + d for d in ((1.0, 0, 0), (0, 1.0, 0), (0.7, 0.7, 0), (0.6, 0.2, 0.7))]
POSES = [look_at(e, SPHERE_C) for e in EYES]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2 and "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and "━" not in ln]
    assert len(lines) == 1, err
    for n in needles:
        assert n in err, err


def _color(k: int) -> np.ndarray:
    rgb = np.zeros((*CAM.shape, 3), np.uint8)
    rgb[..., k % 3] = 200
    return rgb


def _camera_json(path: Path) -> Path:
    path.write_text(json.dumps({"width": CAM.width, "height": CAM.height,
                                "intrinsic_matrix": CAM.K.T.ravel().tolist()}))
    return path


def _log(path: Path, poses) -> Path:
    path.write_text("".join(f"{k} {k} {k + 1}\n" + "\n".join(" ".join(repr(float(x)) for x in r) for r in T) + "\n"
                            for k, T in enumerate(poses)))
    return path


@pytest.fixture
def redwood(tmp_path: Path) -> Path:
    root = tmp_path / "frames"
    (root / "depth").mkdir(parents=True)
    (root / "color").mkdir()
    for k, pose in enumerate(POSES):
        write_depth_png(root / "depth" / f"{k:05d}.png", render_sphere(CAM, pose, SPHERE_C, SPHERE_R))
        write_png(root / "color" / f"{k:05d}.png", _color(k))
    _log(root / "trajectory.log", POSES)
    _camera_json(root / "camera.json")
    return root


def _sphere_error(path: Path) -> np.ndarray:
    from depthcloud.surface.meshio import read_mesh

    mesh = read_mesh(path)
    assert mesh.colors is not None and mesh.normals is not None and len(mesh) > 5000
    return np.abs(np.linalg.norm(mesh.vertices - SPHERE_C, axis=1) - SPHERE_R)


def test_fuse_redwood_folder_with_preview(redwood: Path, tmp_path: Path, capsys) -> None:
    out, png = tmp_path / "out" / "sphere.ply", tmp_path / "sphere.png"
    code, stdout, err = run(capsys, "fuse", redwood, "--poses", redwood / "trajectory.log", "--camera",
                            redwood / "camera.json", "-o", out, "--preview", png)
    assert code == 0, err
    assert "fused 4 frames into" in stdout and str(out) in stdout
    err_m = _sphere_error(out)
    assert err_m.mean() < 0.001 and np.percentile(err_m, 99) < 0.005  # mm depth PNG, 1 cm voxels
    from depthcloud.io.depthimage import read_color

    pic = read_color(png)
    assert pic.shape == (600, 800, 3) and (pic != 255).any(axis=2).mean() > 0.05
    # never replaced without --overwrite; with it, an OBJ at a coarser voxel
    code, _, err = run(capsys, "fuse", redwood, "--poses", redwood / "trajectory.log", "--camera",
                       redwood / "camera.json", "-o", out)
    one_line_error(code, err, "OutputExistsError", "--overwrite")
    code, _, err = run(capsys, "fuse", redwood, "--poses", redwood / "trajectory.log", "--camera",
                       redwood / "camera.json", "-o", tmp_path / "s.obj", "--voxel", "0.02", "--trunc", "0.06")
    assert code == 0, err
    assert (tmp_path / "s.obj").is_file()


def test_fuse_tum_folder_and_trajectory(tmp_path: Path, capsys) -> None:
    from scipy.spatial.transform import Rotation

    root = tmp_path / "tum"
    (root / "depth").mkdir(parents=True)
    (root / "rgb").mkdir()
    stamps = [100.0 + 0.5 * k for k in range(len(POSES))]
    for k, (s, pose) in enumerate(zip(stamps, POSES, strict=True)):
        write_depth_png(root / "depth" / f"{s:.4f}.png", render_sphere(CAM, pose, SPHERE_C, SPHERE_R),
                        depth_scale=1 / 5000)
        write_png(root / "rgb" / f"{s:.4f}.png", _color(k))
    (root / "depth.txt").write_text("".join(f"{s:.4f} depth/{s:.4f}.png\n" for s in stamps))
    (root / "rgb.txt").write_text("".join(f"{s + 0.01:.4f} rgb/{s:.4f}.png\n" for s in stamps))
    gt = ["# timestamp tx ty tz qx qy qz qw"]
    for s, T in zip(stamps, POSES, strict=True):  # listed out of order, at slightly other times
        gt.insert(1, f"{s - 0.004:.4f} " + " ".join(repr(float(x)) for x in [*T[:3, 3], *Rotation.from_matrix(T[:3, :3]).as_quat()]))
    (root / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    out = tmp_path / "tum.ply"
    code, _, err = run(capsys, "fuse", root, "--poses", root / "groundtruth.txt", "--camera",
                       _camera_json(tmp_path / "cam.json"), "-o", out, "--ascii")
    assert code == 0, err
    assert out.read_bytes().startswith(b"ply\nformat ascii")
    assert np.percentile(_sphere_error(out), 99) < 0.005


def test_fuse_recording_with_npy_poses(tmp_path: Path, capsys) -> None:
    from depthcloud.sources.replay import RecordingWriter

    rec = tmp_path / "r.dcrec"
    with RecordingWriter(rec) as w:
        for k, pose in enumerate(POSES):
            w.write(Frame(render_sphere(CAM, pose, SPHERE_C, SPHERE_R), CAM, _color(k), seq=k, stamp=float(k)))
    np.save(tmp_path / "poses.npy", np.array(POSES))
    code, _, err = run(capsys, "fuse", rec, "--poses", tmp_path / "poses.npy", "-o", tmp_path / "r.glb")
    assert code == 0, err
    assert np.percentile(_sphere_error(tmp_path / "r.glb"), 99) < 0.005
    # --camera replaces the recorded intrinsics (a wrong size is named); --depth-scale makes no sense
    code, _, err = run(capsys, "fuse", rec, "--poses", tmp_path / "poses.npy", "-o", tmp_path / "r2.ply",
                       "--camera", _camera_json(tmp_path / "cam.json"))
    assert code == 0, err
    small = {"width": 16, "height": 12, "intrinsic_matrix": [20.0, 0, 0, 0, 20.0, 0, 7.5, 5.5, 1]}
    (tmp_path / "small.json").write_text(json.dumps(small))
    code, _, err = run(capsys, "fuse", rec, "--poses", tmp_path / "poses.npy", "-o", tmp_path / "r3.ply",
                       "--camera", tmp_path / "small.json")
    one_line_error(code, err, "r.dcrec", "camera 16x12 from --camera")
    code, _, err = run(capsys, "fuse", rec, "--poses", tmp_path / "poses.npy", "-o", tmp_path / "r3.ply",
                       "--depth-scale", "0.001")
    one_line_error(code, err, "a recording stores depth in metres already")
    assert not (tmp_path / "r3.ply").exists()


def test_fewer_poses_than_frames_is_one_line_and_writes_nothing(redwood: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.ply"
    code, _, err = run(capsys, "fuse", redwood, "--poses", _log(tmp_path / "short.log", POSES[:2]), "--camera",
                       redwood / "camera.json", "-o", out, "--preview", tmp_path / "p.png")
    one_line_error(code, err, "InputError", "short.log", "has 2 poses for 4 frames")
    assert not out.exists() and not (tmp_path / "p.png").exists()


def test_depth_without_intrinsics_is_one_line(redwood: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "fuse", redwood, "--poses", redwood / "trajectory.log", "-o", tmp_path / "m.ply")
    one_line_error(code, err, "InputError", "without intrinsics", "--camera")


def test_empty_volume_is_one_line_and_writes_nothing(redwood: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.ply"
    code, _, err = run(capsys, "fuse", redwood, "--poses", redwood / "trajectory.log", "--camera",
                       redwood / "camera.json", "-o", out, "--max-depth", "0.5")
    one_line_error(code, err, "InputError", "volume is empty", "--depth-scale")
    assert not out.exists()


def test_too_high_min_weight_is_one_line(redwood: Path, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "fuse", redwood, "--poses", redwood / "trajectory.log", "--camera",
                       redwood / "camera.json", "-o", tmp_path / "m.ply", "--min-weight", "9")
    one_line_error(code, err, "no surface seen by 9 or more frames")
    assert not (tmp_path / "m.ply").exists()


@pytest.mark.parametrize(("args", "needles"), [
    (["-o", "m.xyz"], ["expected a mesh file ending in .ply"]),
    (["-o", "m.ply", "--preview", "p.jpg"], ["expected a .png path"]),
    (["-o", "m.ply", "--voxel", "0.05", "--trunc", "0.01"], ["trunc_m", "at least one voxel"]),
])
def test_bad_options(redwood: Path, tmp_path: Path, capsys, args, needles) -> None:
    args = [str(tmp_path / a) if a.endswith((".ply", ".xyz", ".jpg")) else a for a in args]
    code, _, err = run(capsys, "fuse", redwood, "--poses", redwood / "trajectory.log", "--camera",
                       redwood / "camera.json", *args)
    one_line_error(code, err, *needles)


def test_fuse_redwood_test_data(data_dir: Path, tmp_path: Path, capsys) -> None:
    root = data_dir / "rgbd_open3d_testdata"
    if not (root / "RGBD" / "trajectory.log").is_file():
        pytest.skip("rgbd_open3d_testdata not found")
    out = tmp_path / "room.ply"
    code, stdout, err = run(capsys, "fuse", root / "RGBD", "--poses", root / "RGBD" / "trajectory.log",
                            "--camera", root / "camera_primesense.json", "-o", out)
    assert code == 0, err
    assert "fused 5 frames" in stdout and out.stat().st_size > 1_000_000
