"""The calibration and stereo commands end to end, in-process: calibrate mono/stereo, stereo, undistort."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import need
from depthcloud.cli import main

pytestmark = pytest.mark.data


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, *needles: str) -> None:
    """Exit 2, no traceback, one error line (after any progress bar) that says what and where."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if "Error:" in ln]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], err


@pytest.fixture(scope="module")
def samples(data_dir: Path) -> Path:
    return need(data_dir, "opencv-samples")


@pytest.fixture(scope="module")
def artl(data_dir: Path) -> Path:
    return need(data_dir, "middlebury_eval3_q/ArtL")


def lefts(samples: Path, n: int = 13) -> list[Path]:
    return sorted(samples.glob("left[0-9]*.jpg"))[:n]


# -- calibrate mono ----------------------------------------------------------------------------------
def test_calibrate_mono_writes_opencv_and_ros(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, ros, rep, js = tmp_path / "camera.yaml", tmp_path / "ros.yaml", tmp_path / "r.md", tmp_path / "r.json"
    code, stdout, err = run(
        capsys, "calibrate", "mono", *lefts(samples), "--board", "9x6", "--square-m", "0.025", "-o", out,
        "--fix-aspect-ratio", "--method", "classic", "--reference", samples / "left_intrinsics.yml",
        "--ros", ros, "--report", rep, "--json", js, "--pictures", tmp_path / "pics",
    )
    assert code == 0, err
    assert "RMS reprojection error: 0.4" in stdout and "| left_intrinsics.yml |" in stdout
    assert "| difference | +0.04 % |" in stdout
    # The camera file loads in OpenCV's FileStorage and agrees with OpenCV's published calibration.
    fs = cv2.FileStorage(str(out), cv2.FILE_STORAGE_READ)
    K = fs.getNode("camera_matrix").mat()
    fs.release()
    assert abs(K[0, 0] / 535.9157 - 1) < 0.005 and abs(K[0, 2] - 342.2832) < 2 and abs(K[1, 2] - 235.5708) < 2
    from depthcloud.io.calibfiles import load_camera, read_ros_camera_info

    assert read_ros_camera_info(ros) == load_camera(out)
    assert rep.read_text().startswith("# Camera calibration") and '"rms_px"' in js.read_text()
    assert len(list((tmp_path / "pics").glob("corners_*.png"))) == 13


def test_calibrate_mono_glob_and_default_detector(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, err = run(
        capsys, "calibrate", "mono", str(samples / "left0[1-4].jpg"), "--board", "9x6", "--square-m", "0.025",
        "-o", tmp_path / "c.yaml",
    )
    assert code == 0, err
    assert "views used: 4" in stdout


def test_calibrate_mono_board_in_no_image(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "calibrate", "mono", *lefts(samples, 3), "--board", "7x7", "--square-m", "0.025",
                       "-o", tmp_path / "c.yaml", "--method", "classic")
    assert_user_error(code, err, "CalibrationError", "found in none of the 3 views", "left01.jpg", "check --board")
    assert not (tmp_path / "c.yaml").exists()


def test_calibrate_mono_too_few_views(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "calibrate", "mono", *lefts(samples, 2), "--board", "9x6", "--square-m", "0.025",
                       "-o", tmp_path / "c.yaml", "--method", "classic")
    assert_user_error(code, err, "only 2 of 2 views", "at least 3", "add views")


def test_calibrate_mono_unreadable_image(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "left99.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    code, _, err = run(capsys, "calibrate", "mono", *lefts(samples, 3), bad, "--board", "9x6", "--square-m", "0.025",
                       "-o", tmp_path / "c.yaml")
    assert_user_error(code, err, "FormatError", "left99.jpg", "cannot decode")
    code, _, err = run(capsys, "calibrate", "mono", tmp_path / "nope.jpg", "--board", "9x6", "--square-m", "0.025",
                       "-o", tmp_path / "c.yaml")
    assert_user_error(code, err, "nope.jpg", "no such file")
    code, _, err = run(capsys, "calibrate", "mono", str(tmp_path / "*.png"), "--board", "9x6", "--square-m", "0.025",
                       "-o", tmp_path / "c.yaml")
    assert_user_error(code, err, "matches no file")


def test_calibrate_mono_images_of_different_sizes(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = tmp_path / "left99.png"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(samples / "left04.jpg")), (320, 240)))
    code, _, err = run(capsys, "calibrate", "mono", *lefts(samples, 3), small, "--board", "9x6", "--square-m", "0.025",
                       "-o", tmp_path / "c.yaml", "--method", "classic")
    assert_user_error(code, err, "CalibrationError", "left99.png", "image size 320x240 differs from", "640x480")


def test_calibrate_mono_refuses_existing_output_and_bad_board(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.yaml"
    out.write_text("keep me")
    code, _, err = run(capsys, "calibrate", "mono", *lefts(samples, 3), "--board", "9x6", "--square-m", "0.025", "-o", out)
    assert_user_error(code, err, "OutputExistsError", "c.yaml", "--overwrite")
    assert out.read_text() == "keep me"
    code, _, err = run(capsys, "calibrate", "mono", *lefts(samples, 3), "--board", "9by6", "--square-m", "0.025",
                       "-o", tmp_path / "d.yaml")
    assert_user_error(code, err, "board: expected COLSxROWS")
    code, _, err = run(capsys, "calibrate", "mono", *lefts(samples, 3), "--board", "9x6", "--square-m", "-1",
                       "-o", tmp_path / "d.yaml")
    assert_user_error(code, err, "--square-m: expected a positive number")


# -- calibrate stereo --------------------------------------------------------------------------------
def test_calibrate_stereo_writes_rig_with_rectification(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rig.yaml"
    code, stdout, err = run(
        capsys, "calibrate", "stereo", "--left", str(samples / "left[0-9]*.jpg"), "--right", str(samples / "right[0-9]*.jpg"),
        "--board", "9x6", "--square-m", "0.025", "-o", out, "--method", "classic",
        "--reference", samples / "intrinsics.yml", "--ros", tmp_path / "info.yaml", "--pictures", tmp_path / "pics",
    )
    assert code == 0, err
    assert "pairs used: 13" in stdout and "left (intrinsics.yml)" in stdout
    mean_dy = float(stdout.split("|Δy|: mean ")[1].split(" px")[0])
    assert mean_dy <= 0.3
    fs = cv2.FileStorage(str(out), cv2.FILE_STORAGE_READ)
    T, Q, P2 = fs.getNode("T").mat(), fs.getNode("Q").mat(), fs.getNode("P2").mat()
    fs.release()
    assert 0.080 < np.linalg.norm(T) < 0.087 and Q.shape == (4, 4) and P2.shape == (3, 4)
    from depthcloud.io.calibfiles import load_rig_file

    rf = load_rig_file(out)
    assert set(rf.rectification) >= {"R1", "R2", "P1", "P2", "Q", "roi1", "roi2", "alpha"}
    assert (tmp_path / "info_left.yaml").exists() and (tmp_path / "info_right.yaml").exists()
    assert (tmp_path / "pics" / "rectified_pair.png").exists()


def test_calibrate_stereo_unequal_counts(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "calibrate", "stereo", "--left", str(samples / "left0[1-4].jpg"), "--right", str(samples / "right0[1-3].jpg"),
        "--board", "9x6", "--square-m", "0.025", "-o", tmp_path / "rig.yaml",
    )
    assert_user_error(code, err, "CalibrationError", "--left gives 4 images but --right gives 3")


def test_calibrate_stereo_different_sizes(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = tmp_path / "small"
    small.mkdir()
    for p in sorted(samples.glob("right0[1-4].jpg")):
        img = cv2.imread(str(p))
        cv2.imwrite(str(small / p.name), cv2.resize(img, (480, 360)))
    code, _, err = run(
        capsys, "calibrate", "stereo", "--left", str(samples / "left0[1-4].jpg"), "--right", str(small / "*.jpg"),
        "--board", "9x6", "--square-m", "0.025", "-o", tmp_path / "rig.yaml", "--method", "classic",
    )
    assert_user_error(code, err, "right01.jpg", "left images are 640x480 but right images are 480x360")


# -- stereo ------------------------------------------------------------------------------------------
def test_stereo_middlebury_writes_everything(artl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    o = tmp_path
    code, stdout, err = run(
        capsys, "stereo", artl / "im0.png", artl / "im1.png", "--camera", artl / "calib.txt", "-o", o / "c.ply",
        "--disparity", o / "d.pfm", "--depth", o / "z.png", "--preview", o / "p.png", "--views", o / "v.png",
        "--preset", "fast",
    )
    assert code == 0, err
    assert "cloud:" in stdout and "points" in stdout
    from depthcloud.io import read_cloud
    from depthcloud.io.depthimage import read_depth
    from depthcloud.io.pfm import read_pfm

    d = read_pfm(o / "d.pfm")
    gt = read_pfm(artl / "disp0GT.pfm")
    assert d.shape == gt.shape == (277, 347)
    both = np.isfinite(d) & np.isfinite(gt)
    assert np.median(np.abs(d[both] - gt[both])) < 1.0  # the written disparity is in pixels, left view
    z = read_depth(o / "z.png")
    assert z.shape == d.shape and np.median(z[z > 0]) == pytest.approx(1.78, rel=0.1)  # SOURCE.md: median 1.78 m
    cloud = read_cloud(o / "c.ply")
    assert cloud.colors is not None and len(cloud.points) > 0.5 * d.size
    prev = cv2.imread(str(o / "p.png"))
    # A 2x2 grid (left | right over disparity | depth), not a 4-wide strip.
    assert 2 * 277 < prev.shape[0] < 3 * 277 and 2 * 347 < prev.shape[1] < 3 * 347
    assert cv2.imread(str(o / "v.png")) is not None


def test_stereo_folders_with_rig(artl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Folders of pairs in one call; a rig file from calibfiles.save_rig is the calibration."""
    from depthcloud.io.calibfiles import read_middlebury_calib, save_rig

    rig = tmp_path / "rig.yaml"
    save_rig(rig, read_middlebury_calib(artl / "calib.txt").rig)
    L, R = tmp_path / "L", tmp_path / "R"
    L.mkdir()
    R.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(artl / "im0.png", L / name)
        shutil.copy(artl / "im1.png", R / name)
    code, stdout, err = run(capsys, "stereo", L, R, "--camera", rig, "-o", tmp_path / "out", "--depth", tmp_path / "depth",
                            "--preset", "fast", "--min-depth", "1.0", "--max-depth", "3.0")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.ply", "b.ply"]
    assert sorted(p.name for p in (tmp_path / "depth").iterdir()) == ["a.png", "b.png"]
    assert "2 pairs" in stdout
    # A third left image without a partner.
    shutil.copy(artl / "im0.png", L / "c.png")
    code, _, err = run(capsys, "stereo", L, R, "--camera", rig, "-o", tmp_path / "out2")
    assert_user_error(code, err, "StereoError", "3 left images but 2 right images")


def test_stereo_wls_smooths_and_keeps_matched_pixels(artl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from depthcloud.io.pfm import read_pfm

    args = ("stereo", artl / "im0.png", artl / "im1.png", "--camera", artl / "calib.txt", "--preset", "tutorial")
    code, _, err = run(capsys, *args, "-o", tmp_path / "a.ply", "--disparity", tmp_path / "a.pfm")
    assert code == 0, err
    code, _, err = run(capsys, *args, "-o", tmp_path / "b.ply", "--disparity", tmp_path / "b.pfm", "--wls")
    assert code == 0, err
    plain, smooth = read_pfm(tmp_path / "a.pfm"), read_pfm(tmp_path / "b.pfm")
    assert np.isfinite(smooth).mean() > np.isfinite(plain).mean() + 0.05  # WLS fills holes
    gt = read_pfm(artl / "disp0GT.pfm")
    both = np.isfinite(smooth) & np.isfinite(gt)
    assert np.median(np.abs(smooth[both] - gt[both])) < 1.0


def test_stereo_pair_of_different_sizes(artl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    right = tmp_path / "right.png"
    cv2.imwrite(str(right), cv2.imread(str(artl / "im1.png"))[:, :300])
    code, _, err = run(capsys, "stereo", artl / "im0.png", right, "--camera", artl / "calib.txt", "-o", tmp_path / "c.ply")
    assert_user_error(code, err, "StereoError", "im0.png", "right.png", "347x277 but the right is 300x277")
    assert not (tmp_path / "c.ply").exists()


def test_stereo_rig_that_does_not_fit(artl: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = need(data_dir, "middlebury_eval3_q/Motorcycle/calib.txt")
    code, _, err = run(capsys, "stereo", artl / "im0.png", artl / "im1.png", "--camera", other, "-o", tmp_path / "c.ply")
    assert_user_error(code, err, "StereoError", "im0.png", "images are 347x277 but the rig is for 741x497")


def test_stereo_option_errors(artl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "stereo", artl / "im0.png", artl / "im1.png", "-o", tmp_path / "c.ply")
    assert_user_error(code, err, "UsageError: missing option '--camera'")
    code, _, err = run(capsys, "stereo", artl / "im0.png", artl / "im1.png", "--camera", artl / "calib.txt",
                       "-o", tmp_path / "c.ply", "--preset", "best")
    assert_user_error(code, err, "preset: expected one of fast, balanced, quality")
    code, _, err = run(capsys, "stereo", artl / "im0.png", tmp_path / "missing.png", "--camera", artl / "calib.txt",
                       "-o", tmp_path / "c.ply")
    assert_user_error(code, err, "missing.png", "no such file")


# -- undistort ---------------------------------------------------------------------------------------
def test_undistort(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = samples / "left01.jpg"
    code, stdout, err = run(capsys, "undistort", img, "--camera", samples / "left_intrinsics.yml", "-o", tmp_path / "u.png",
                            "--camera-out", tmp_path / "u.yaml")
    assert code == 0, err
    assert "undistorted:" in stdout and "camera:" in stdout
    out = cv2.imread(str(tmp_path / "u.png"))
    assert out.shape == (480, 640, 3)
    # Reference: OpenCV's own undistort with the same new camera matrix.
    fs = cv2.FileStorage(str(samples / "left_intrinsics.yml"), cv2.FILE_STORAGE_READ)
    K, D = fs.getNode("camera_matrix").mat(), fs.getNode("distortion_coefficients").mat()
    fs.release()
    newK, _ = cv2.getOptimalNewCameraMatrix(K, D, (640, 480), 0.0, (640, 480))
    ref = cv2.undistort(cv2.imread(str(img)), K, D, None, newK)
    assert np.abs(out.astype(int) - ref.astype(int))[20:-20, 20:-20].mean() < 2.0
    from depthcloud.io.calibfiles import load_camera

    cam = load_camera(tmp_path / "u.yaml")
    assert cam.model == "none" and cam.fx == pytest.approx(newK[0, 0])
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(img)), (320, 240)))
    code, _, err = run(capsys, "undistort", small, "--camera", samples / "left_intrinsics.yml", "-o", tmp_path / "s.png")
    assert_user_error(code, err, "small.png", "320x240 does not match the camera's 640x480")
