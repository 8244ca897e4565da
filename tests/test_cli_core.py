"""The core CLI commands end to end, in-process: depth, disparity, convert, info, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import need
from depthcloud.camera import Intrinsics
from depthcloud.cli import main
from depthcloud.cloud import PointCloud

MIDDLEBURY_SCENES = [
    "Adirondack", "ArtL", "Jadeplant", "Motorcycle", "MotorcycleE", "Piano", "PianoL",
    "Pipes", "Playtable", "PlaytableP", "Recycle",
]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert n in err, err


@pytest.mark.data
@pytest.mark.parametrize("scene", MIDDLEBURY_SCENES)
def test_disparity_middlebury_gt_to_metric_points(scene: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Acceptance: every finite GT disparity lands at Z = B·f/(d + doffs) (mm → m), X, Y from cam0, coloured from im0."""
    import cv2

    from depthcloud.io import read_cloud
    from depthcloud.io.pfm import read_pfm

    folder = need(data_dir, f"middlebury_eval3_q/{scene}")
    out = tmp_path / "cloud.ply"
    code, _, err = run(capsys, "disparity", folder / "disp0GT.pfm", "--camera", folder / "calib.txt",
                       "--color", folder / "im0.png", "-o", out)
    assert code == 0, err
    cloud = read_cloud(out)

    # Independent float64 reference straight from the calib.txt numbers.
    vals: dict[str, str] = {}
    for line in (folder / "calib.txt").read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            vals[k.strip()] = v.strip()
    cam0 = np.array([[float(x) for x in row.split()] for row in vals["cam0"].strip("[] ").split(";")])
    f, cx, cy = cam0[0, 0], cam0[0, 2], cam0[1, 2]
    baseline_mm, doffs = float(vals["baseline"]), float(vals["doffs"])
    d = read_pfm(folder / "disp0GT.pfm").astype(np.float64)
    rows, cols = np.nonzero(np.isfinite(d))
    z = baseline_mm * f / (d[rows, cols] + doffs) / 1000.0
    ref = np.stack([(cols - cx) * z / f, (rows - cy) * z / f, z], axis=1)

    assert len(cloud) == len(ref)
    np.testing.assert_allclose(cloud.points, ref, rtol=1e-5, atol=0)
    rgb = cv2.cvtColor(cv2.imread(str(folder / "im0.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert cloud.colors is not None
    np.testing.assert_array_equal(cloud.colors, rgb[rows, cols])


@pytest.fixture
def camera_file(tmp_path: Path) -> tuple[Path, Intrinsics]:
    from depthcloud.io.calibfiles import save_camera

    intr = Intrinsics(fx=400.0, fy=380.0, cx=30.2, cy=18.7, width=64, height=40)
    path = tmp_path / "camera.yaml"
    save_camera(path, intr)
    return path, intr


def _depth_png(tmp_path: Path, name: str, shape: tuple[int, int] = (40, 64)) -> tuple[Path, np.ndarray]:
    from depthcloud.io.depthimage import write_depth_png

    rng = np.random.default_rng(len(name))
    depth = np.round(rng.uniform(0.5, 4.0, size=shape), 3).astype(np.float32)
    depth[::7, ::5] = 0
    path = tmp_path / name
    write_depth_png(path, depth, depth_scale=0.001)
    return path, depth


def test_depth_png_with_color_writes_metric_cloud(tmp_path: Path, camera_file: tuple[Path, Intrinsics], capsys: pytest.CaptureFixture[str]) -> None:
    from depthcloud.io import read_cloud
    from depthcloud.io.depthimage import write_png

    cam, intr = camera_file
    png, depth = _depth_png(tmp_path, "d.png")
    color = np.zeros((40, 64, 3), np.uint8)
    color[..., 0] = np.arange(64, dtype=np.uint8)[None, :]
    color[..., 1] = np.arange(40, dtype=np.uint8)[:, None]
    write_png(tmp_path / "c.png", color)
    out = tmp_path / "out.ply"
    code, stdout, err = run(capsys, "depth", png, "--camera", cam, "--color", tmp_path / "c.png", "-o", out)
    assert code == 0, err
    assert str(out) in stdout
    cloud = read_cloud(out)
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols].astype(np.float64)
    ref = np.stack([(cols - intr.cx) / intr.fx * z, (rows - intr.cy) / intr.fy * z, z], axis=1)
    np.testing.assert_allclose(cloud.points, ref, atol=1e-5)
    assert cloud.colors is not None
    np.testing.assert_array_equal(cloud.colors[:, 0], cols)  # red = column: u is the column
    np.testing.assert_array_equal(cloud.colors[:, 1], rows)  # green = row


def test_depth_several_inputs_make_a_folder_and_zup_frame(tmp_path: Path, camera_file: tuple[Path, Intrinsics], capsys: pytest.CaptureFixture[str]) -> None:
    from depthcloud.io import read_cloud

    cam, _ = camera_file
    a, depth_a = _depth_png(tmp_path, "a.png")
    b, _ = _depth_png(tmp_path, "b.png")
    code, _, err = run(capsys, "depth", a, b, "--camera", cam, "-o", tmp_path / "clouds", "--frame", "zup", "--max-depth", "3")
    assert code == 0, err
    ca = read_cloud(tmp_path / "clouds" / "a.ply")
    assert (tmp_path / "clouds" / "b.ply").exists()
    # z-up: forward (optical z) is +x, and nothing farther than 3 m survives.
    assert ca.points[:, 0].max() <= 3.0 + 1e-6
    assert ca.points[:, 0].min() > 0
    assert len(ca) == int(((depth_a > 0) & (depth_a <= 3.0)).sum())


def test_outputs_are_never_overwritten_without_flag(tmp_path: Path, camera_file: tuple[Path, Intrinsics], capsys: pytest.CaptureFixture[str]) -> None:
    cam, _ = camera_file
    png, _ = _depth_png(tmp_path, "d.png")
    out = tmp_path / "out.ply"
    out.write_bytes(b"precious")
    code, _, err = run(capsys, "depth", png, "--camera", cam, "-o", out)
    assert_user_error(code, err, "OutputExistsError", "out.ply", "--overwrite")
    assert out.read_bytes() == b"precious"
    code, _, err = run(capsys, "depth", png, "--camera", cam, "-o", out, "--overwrite")
    assert code == 0, err


@pytest.mark.parametrize(
    "make_args, needles",
    [
        (lambda t, cam, png: ["depth", t / "missing.png", "--camera", cam, "-o", t / "o.ply"], ["missing.png", "no such file"]),
        (lambda t, cam, png: ["depth", png, "--camera", t / "nocam.yaml", "-o", t / "o.ply"], ["nocam.yaml"]),
        (lambda t, cam, png: ["depth", png, "--camera", cam, "-o", t / "o.ply", "--frame", "sideways"], ["--frame", "sideways"]),
        (lambda t, cam, png: ["depth", png, "--camera", cam, "-o", t / "o.ply", "--color", png, "--color", png], ["--color"]),
        (lambda t, cam, png: ["disparity", png, "--camera", cam, "-o", t / "o.ply"], ["stereo rig"]),
        (lambda t, cam, png: ["convert", png, t / "o.weird"], []),
    ],
)
def test_bad_input_is_one_line_and_exit_2(make_args, needles, tmp_path: Path, camera_file: tuple[Path, Intrinsics], capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    cam, _ = camera_file
    png, _ = _depth_png(tmp_path, "d.png")
    code, _, err = run(capsys, *make_args(tmp_path, cam, png))
    assert_user_error(code, err, *needles)


def test_depth_size_mismatch_names_file(tmp_path: Path, camera_file: tuple[Path, Intrinsics], capsys: pytest.CaptureFixture[str]) -> None:
    cam, _ = camera_file
    png, _ = _depth_png(tmp_path, "small.png", shape=(20, 30))
    code, _, err = run(capsys, "depth", png, "--camera", cam, "-o", tmp_path / "o.ply")
    assert_user_error(code, err, "small.png", "30x20", "64x40")


def test_debug_shows_traceback(tmp_path: Path, camera_file: tuple[Path, Intrinsics]) -> None:
    from depthcloud.errors import DepthcloudError

    cam, _ = camera_file
    with pytest.raises(DepthcloudError):
        main(["--debug", "depth", str(tmp_path / "nope.png"), "--camera", str(cam), "-o", str(tmp_path / "o.ply")])


def test_convert_round_trip_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from depthcloud.io import read_cloud, write_cloud

    rng = np.random.default_rng(3)
    cloud = PointCloud(rng.normal(size=(500, 3)).astype(np.float32), rng.integers(0, 256, (500, 3), dtype=np.uint8))
    write_cloud(tmp_path / "a.ply", cloud)
    code, _, err = run(capsys, "convert", tmp_path / "a.ply", tmp_path / "b.pcd")
    assert code == 0, err
    code, _, err = run(capsys, "convert", tmp_path / "b.pcd", tmp_path / "c.ply")
    assert code == 0, err
    back = read_cloud(tmp_path / "c.ply")
    np.testing.assert_array_equal(back.points, cloud.points)
    np.testing.assert_array_equal(back.colors, cloud.colors)  # type: ignore[arg-type]

    code, out, err = run(capsys, "info", tmp_path / "c.ply")
    assert code == 0, err
    assert "500 points" in out and "colors" in out

    code, _, err = run(capsys, "convert", tmp_path / "c.ply", tmp_path / "c.ply", "--overwrite")
    assert_user_error(code, err, "same file")


def test_info_describes_images_and_calibrations(tmp_path: Path, camera_file: tuple[Path, Intrinsics], capsys: pytest.CaptureFixture[str]) -> None:
    cam, _ = camera_file
    png, _ = _depth_png(tmp_path, "d.png")
    code, out, err = run(capsys, "info", png)
    assert code == 0, err
    assert "64x40" in out and "uint16" in out
    code, out, err = run(capsys, "info", cam)
    assert code == 0, err
    assert "fx 400" in out and "fy 380" in out


@pytest.mark.data
def test_info_middlebury_calib_reports_depth_formula(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calib = need(data_dir, "middlebury_eval3_q/Adirondack/calib.txt")
    code, out, err = run(capsys, "info", calib)
    assert code == 0, err
    assert "rectified" in out and "baseline: 0.176252 m" in out and "doffs: 53.271" in out


def test_info_describes_a_recording_and_its_damage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "syn.dcrec"
    code, _, err = run(capsys, "record", "-s", "synthetic:48x32@30", "-o", rec, "--frames", "3", "--fast")
    assert code == 0, err
    code, out, err = run(capsys, "info", rec)
    assert code == 0, err
    assert "3 frame(s)" in out and "48x32" in out and "colour: yes" in out and "damaged" not in out
    data = rec.read_bytes()
    cut = tmp_path / "cut.dcrec"
    cut.write_bytes(data[: len(data) - 10])
    code, out, err = run(capsys, "info", cut)
    assert code == 0, err
    assert "2 frame(s)" in out and "damaged: truncated" in out


def test_an_unwritable_output_folder_is_one_line_not_a_traceback(tmp_path: Path, camera_file: tuple[Path, Intrinsics], capsys: pytest.CaptureFixture[str]) -> None:
    import os

    if os.geteuid() == 0:
        # root ignores folder permissions; a path under a regular file fails for everyone.
        blocker = tmp_path / "afile"
        blocker.write_text("x")
        target = blocker / "sub" / "o.ply"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "sub" / "o.ply"
    cam, _ = camera_file
    png, _ = _depth_png(tmp_path, "d.png")
    code, _, err = run(capsys, "depth", png, "--camera", cam, "-o", target)
    assert_user_error(code, err, "Error")
