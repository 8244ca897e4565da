"""Issue 14 regressions on the command line: old calibration spellings as aliases, --camera with Open3D and
COLMAP files, the calibrate-stereo rig file read by disparity (defect 3), outputs refused or written as
their extension says and nothing left behind on error (defect 7), one clean line and quiet libraries
(defect 8), --frame on stereo and amiga pointcloud, and the pictures (2x2 preview, hatching, colour bars)."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import need
from depthcloud.camera import Intrinsics
from depthcloud.cli import main
from depthcloud.io import read_cloud
from depthcloud.io.calibfiles import save_camera
from depthcloud.io.depthimage import write_depth_png, write_png

INTR = Intrinsics(60.0, 61.0, 31.5, 23.5, 64, 48)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def depth_png(tmp_path: Path) -> Path:
    return write_depth_png(tmp_path / "d.png", np.full((48, 64), 1.5, np.float32))


# -- one --camera ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("old", ["-i", "--intrinsics", "--intrinsics=", "--calib", "--rig", "--middlebury"])
def test_old_spellings_still_work_with_one_note(old: str, tmp_path: Path, depth_png: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cam = save_camera(tmp_path / "cam.yaml", INTR)
    cam_args = [f"{old}{cam}"] if old.endswith("=") else [old, str(cam)]
    code, _, err = run(capsys, "depth", depth_png, *cam_args, "-o", tmp_path / "c.ply")
    assert code == 0, err
    name = old.rstrip("=")
    assert err.strip() == f"note: {name} is deprecated; use --camera (same meaning)"
    assert len(read_cloud(tmp_path / "c.ply")) == 64 * 48


def test_camera_reads_open3d_json(tmp_path: Path, depth_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    o3d = tmp_path / "o3d.json"
    o3d.write_text(json.dumps({"width": 64, "height": 48, "intrinsic_matrix": [60, 0, 0, 0, 61, 0, 31.5, 23.5, 1]}))
    code, _, err = run(capsys, "depth", depth_png, "--camera", o3d, "-o", tmp_path / "c.ply")
    assert code == 0, err
    ref = run(capsys, "depth", depth_png, "--camera", save_camera(tmp_path / "cam.yaml", INTR), "-o", tmp_path / "r.ply")
    assert ref[0] == 0
    np.testing.assert_array_equal(read_cloud(tmp_path / "c.ply").points, read_cloud(tmp_path / "r.ply").points)


def test_camera_reads_colmap_with_a_chosen_id(tmp_path: Path, depth_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cams = tmp_path / "cameras.txt"
    # Camera 2 is INTR in COLMAP's corner-origin pixels (cx + 0.5, cy + 0.5).
    cams.write_text("# Camera list\n1 SIMPLE_PINHOLE 640 480 500 320 240\n2 PINHOLE 64 48 60 61 32 24\n")
    code, _, err = run(capsys, "depth", depth_png, "--camera", f"{cams}#2", "-o", tmp_path / "c.ply")
    assert code == 0, err
    run(capsys, "depth", depth_png, "--camera", save_camera(tmp_path / "cam.yaml", INTR), "-o", tmp_path / "r.ply")
    np.testing.assert_allclose(read_cloud(tmp_path / "c.ply").points, read_cloud(tmp_path / "r.ply").points, atol=1e-6)
    code, _, err = run(capsys, "depth", depth_png, "--camera", cams, "-o", tmp_path / "first.ply")
    assert code == 2 and "differs from the intrinsics 640x480" in err  # the first camera is the default


# -- defect 3: what calibrate stereo writes, disparity reads ----------------------------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_disparity_reads_the_rig_file_calibrate_stereo_writes(data_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """End to end on OpenCV's samples: calibrate stereo → stereo --disparity → disparity --camera rig.yaml
    gives the stereo command's own points (the rectified rig from the file's P1, P2). It was refused
    ("describes an unrectified rig") before; the report without --reference was malformed (defect 7)."""
    samples = need(data_dir, "opencv-samples")
    pairs = ["01", "02", "03", "04", "05", "06", "07", "08"]
    left = [str(samples / f"left{i}.jpg") for i in pairs]
    right = [str(samples / f"right{i}.jpg") for i in pairs]
    rig = tmp_path / "rig.yaml"
    args = ["calibrate", "stereo", "--board", "9x6", "--square-m", "0.025", "-o", rig]
    for a, b in zip(left, right, strict=True):
        args += ["--left", a, "--right", b]
    code, report, err = run(capsys, *args)
    assert code == 0, err
    # Every Markdown table in the report has rows under its header (no empty table without --reference).
    tables = re.findall(r"(\|[^\n]*\|\n\|---[^\n]*\n)((?:\|[^\n]*\|\n)*)", report)
    assert tables and all(rows.strip() for _, rows in tables), report
    assert "| left |" in report and "| right |" in report
    code, _, err = run(capsys, "stereo", left[0], right[0], "--camera", rig, "-o", tmp_path / "s.ply",
                       "--disparity", tmp_path / "d.pfm", "--preset", "fast", "--max-depth", "2")
    assert code == 0, err
    code, _, err = run(capsys, "disparity", tmp_path / "d.pfm", "--camera", rig, "-o", tmp_path / "d.ply",
                       "--max-depth", "2")
    assert code == 0, err
    ours, theirs = read_cloud(tmp_path / "d.ply").points, read_cloud(tmp_path / "s.ply").points
    assert len(ours) >= len(theirs) > 1000  # disparity keeps hole-filled pixels too
    assert np.median(ours[:, 2]) == pytest.approx(np.median(theirs[:, 2]), rel=0.05)
    assert 0.2 < np.median(theirs[:, 2]) < 1.0  # the board is about half a metre away


# -- defect 7: outputs -----------------------------------------------------------------------------------------


def test_demo_of_a_wrong_size_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: demo --width 10 --height 10 ended in an IndexError and left four files."""
    code, _, err = run(capsys, "demo", "--width", "10", "--height", "10", "-o", tmp_path / "demo")
    assert code == 2 and err.startswith("InputError: --width") and "Traceback" not in err
    assert not (tmp_path / "demo").exists() or not any((tmp_path / "demo").iterdir())


def test_unknown_cloud_extension_is_not_a_folder(tmp_path: Path, depth_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: depth -o x.las made a folder named x.las (LAS is written now; E57 is not)."""
    code, _, err = run(capsys, "depth", depth_png, "--camera", save_camera(tmp_path / "c.yaml", INTR), "-o", tmp_path / "x.e57")
    assert code == 2 and "unknown point-cloud extension '.e57'" in err
    assert not (tmp_path / "x.e57").exists()
    # A path without a suffix is a folder, and so is an existing folder.
    code, _, err = run(capsys, "depth", depth_png, "--camera", tmp_path / "c.yaml", "-o", tmp_path / "clouds")
    assert code == 0, err
    assert (tmp_path / "clouds" / "d.ply").exists()


def test_record_refuses_a_cloud_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "record", "-s", "synthetic:64x48@30", "-o", tmp_path / "a.ply", "--frames", "1")
    assert code == 2 and "end in .dcrec" in err
    assert not (tmp_path / "a.ply").exists()


@pytest.mark.parametrize(("name", "magic"), [("u.jpg", b"\xff\xd8\xff"), ("u.jpeg", b"\xff\xd8\xff"), ("u.png", b"\x89PNG")])
def test_undistort_writes_what_the_extension_says(name: str, magic: bytes, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: undistort -o u.jpg wrote PNG data."""
    cam = save_camera(tmp_path / "c.yaml", Intrinsics(60.0, 61.0, 31.5, 23.5, 64, 48, dist=(0.05, 0.0, 0.0, 0.0, 0.0)))
    img = write_png(tmp_path / "in.png", np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    code, _, err = run(capsys, "undistort", img, "--camera", cam, "-o", tmp_path / name)
    assert code == 0, err
    assert (tmp_path / name).read_bytes().startswith(magic)
    assert cv2.imread(str(tmp_path / name)).shape == (48, 64, 3)


def test_replaying_a_truncated_recording_warns_where_it_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: a cut .dcrec replayed silently short."""
    assert main(["record", "-s", "synthetic:64x48@30", "-o", str(tmp_path / "r.dcrec"), "--frames", "12", "--fast"]) == 0
    data = (tmp_path / "r.dcrec").read_bytes()
    (tmp_path / "cut.dcrec").write_bytes(data[: int(len(data) * 0.6)])
    capsys.readouterr()
    code, out, err = run(capsys, "record", "-s", f"replay:{tmp_path / 'cut.dcrec'}", "-o", tmp_path / "again.dcrec", "--fast")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "cut.dcrec: the recording is cut short: " in lines[0]
    n = int(re.search(r"(\d+) whole frame\(s\) played", lines[0]).group(1))  # type: ignore[union-attr]
    assert f"recorded {n} frames" in out and 0 < n < 12
    assert "byte" in lines[0]


# -- defect 8: one clean line ----------------------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: `depthcloud … | head` ended in a BrokenPipeError traceback."""

    class ClosedPipe(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", ClosedPipe())  # the console writes to sys.stdout
    assert main(["sources"]) == 0
    assert capsys.readouterr().err == ""


def test_os_errors_have_no_errno_text(tmp_path: Path, depth_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, _, err = run(capsys, "depth", depth_png, "--camera", save_camera(tmp_path / "c.yaml", INTR),
                       "-o", blocker / "sub" / "o.ply")
    assert code == 2 and err.startswith("Error: ") and "[Errno" not in err and len(err.strip().splitlines()) == 1


def test_library_logs_are_told_to_keep_quiet() -> None:
    import depthcloud.cli  # noqa: F401 (sets the environment on import)

    assert os.environ.get("GRPC_VERBOSITY") == "ERROR" or "GRPC_VERBOSITY" in os.environ
    main(["sources"])
    assert cv2.utils.logging.getLogLevel() <= cv2.utils.logging.LOG_LEVEL_ERROR


# -- --frame on stereo and amiga pointcloud; pictures --------------------------------------------------------


@pytest.mark.data
def test_stereo_frame_and_preview_grid(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artl = need(data_dir, "middlebury_eval3_q/ArtL")
    base = ["stereo", artl / "im0.png", artl / "im1.png", "--camera", artl / "calib.txt", "--preset", "balanced"]
    assert run(capsys, *base, "-o", tmp_path / "opt.ply", "--preview", tmp_path / "p.png")[0] == 0
    assert run(capsys, *base, "-o", tmp_path / "zup.ply", "--frame", "zup")[0] == 0
    opt, zup = read_cloud(tmp_path / "opt.ply"), read_cloud(tmp_path / "zup.ply")
    np.testing.assert_allclose(zup.points, opt.to_frame("zup").points, atol=1e-6)
    assert zup.frame == "zup"
    prev = cv2.imread(str(tmp_path / "p.png"))[:, :, ::-1]
    h, w = 277, 347
    assert 2 * h < prev.shape[0] < 2 * h + 80 and 2 * w < prev.shape[1] < 2 * w + 200  # 2x2, colour bars beside
    # The hole-filled pixels are hatched: white stripes appear in the disparity panel (bottom left) where
    # the image itself has none.
    panel = prev[prev.shape[0] - h:, :w]
    assert ((panel == 255).all(axis=2)).mean() > 0.01


def test_hatch_marks_only_the_mask() -> None:
    from depthcloud.viz import hatch

    img = np.zeros((20, 30, 3), np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:20] = True
    out = hatch(img, mask, every_px=4)
    marked = (out != 0).any(axis=2)
    assert marked[mask].mean() > 0.2 and not marked[~mask].any()
    assert not img.any()  # the input is not modified


def test_grid_is_rows_of_columns() -> None:
    from depthcloud.viz import grid

    tiles = [np.full((10, 20, 3), i * 40, np.uint8) for i in range(4)]
    out = grid(tiles, columns=2, gap=2)
    assert out.shape == (10 + 2 + 10, 20 + 2 + 20, 3)
    assert out[0, 0].tolist() == [0, 0, 0] and out[12, 22].tolist() == [120, 120, 120]


def test_colour_bar_with_a_label_on_a_tiny_image() -> None:
    """Regression: a labelled colour bar on an image under 18 px high raised IndexError (demo 10x10)."""
    from depthcloud.viz import with_colorbar

    out = with_colorbar(np.zeros((10, 10, 3), np.uint8), vmin=0.0, vmax=1.0, label="m")
    assert out.shape[0] >= 34


@pytest.mark.data
def test_amiga_pointcloud_writes_the_frame_asked_for(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from depthcloud.amiga.emulator import planes_scene
    from depthcloud.amiga.messages import read_oak_calibration
    from test_amiga_cli import emulator_thread, write_config

    calibration = read_oak_calibration(need(data_dir, "oak_depthai/calib_oak_d_bw1098obc_14442C10218CCCD200.json"))
    cfg = write_config(tmp_path / "service_config.json", 0)
    clouds = {}
    for frame in ("optical", "zup"):
        with emulator_thread(calibration, planes_scene(calibration, depths_m=(0.5, 1.0, 2.0, 3.0)), fps=30) as emu:
            write_config(cfg, emu.port)
            code = main(["amiga", "pointcloud", "--service-config", str(cfg), "--frames", "1", "--save-pointcloud",
                         "--save-disparity", "--frame", frame, "-o", str(tmp_path / frame)])
        assert code == 0, capsys.readouterr().err
        clouds[frame] = read_cloud(next((tmp_path / frame).glob("cloud_*.ply")))
        png = cv2.imread(str(next((tmp_path / frame).glob("disparity_*.png"))))
        assert png.shape[1] > 640  # the colour bar beside the disparity
    np.testing.assert_allclose(clouds["zup"].points, clouds["optical"].to_frame("zup").points, atol=1e-5)
