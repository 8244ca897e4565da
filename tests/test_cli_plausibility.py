"""Plausibility on the command line (issue 14, defect 5): wrong units and ranges are warned about on
stderr, one ``warning: …`` line each, and an empty cloud is refused (exit 2, nothing written) unless
``--allow-empty`` asks for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import need

from depthcloud.camera import Intrinsics
from depthcloud.cli import main

INTR = Intrinsics(fx=400.0, fy=380.0, cx=30.2, cy=18.7, width=64, height=40)


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def camera(tmp_path: Path) -> Path:
    from depthcloud.io.calibfiles import save_camera

    return save_camera(tmp_path / "camera.yaml", INTR)


@pytest.fixture
def depth_png(tmp_path: Path) -> Path:
    from depthcloud.io.depthimage import write_depth_png

    depth = np.random.default_rng(1).uniform(0.5, 4.0, (40, 64)).astype(np.float32)
    return write_depth_png(tmp_path / "d.png", depth)


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: ")]


def test_millimetre_limits_are_refused_with_the_evidence(capsys, tmp_path, camera, depth_png):
    """--min-depth 300 --max-depth 3000 (mm given for m) wrote a 0-point cloud with exit 0."""
    out = tmp_path / "c.ply"
    code, _, err = run(capsys, "depth", depth_png, "-i", camera, "-o", out, "--min-depth", "300", "--max-depth", "3000")
    assert code == 2 and not out.exists()
    w = warnings_of(err)
    assert any("--min-depth 300 and --max-depth 3000 m look like millimetres" in x for x in w), err
    assert any("keep 0 of 2560 valid depths" in x for x in w), err
    assert err.splitlines()[-1] == ("InputError: d.png: the cloud is empty (0 points from 2560 pixels); nothing was "
                                    "written; --allow-empty writes it anyway")
    code, _, err = run(capsys, "depth", depth_png, "-i", camera, "-o", out, "--min-depth", "300", "--allow-empty")
    assert code == 0 and out.exists() and warnings_of(err)


def test_a_plausible_depth_prints_no_warning(capsys, tmp_path, camera, depth_png):
    code, _, err = run(capsys, "depth", depth_png, "-i", camera, "-o", tmp_path / "c.ply", "--max-depth", "3")
    assert code == 0 and warnings_of(err) == []


def test_uint16_npy_millimetres_are_metres_and_float_mm_is_warned(capsys, tmp_path, camera):
    mm = np.full((40, 64), 1500, np.uint16)
    np.save(tmp_path / "mm.npy", mm)
    code, _, err = run(capsys, "depth", tmp_path / "mm.npy", "-i", camera, "-o", tmp_path / "a.ply")
    assert code == 0 and warnings_of(err) == []
    from depthcloud.io import read_cloud

    assert read_cloud(tmp_path / "a.ply").points[:, 2] == pytest.approx(1.5)
    np.save(tmp_path / "mmf.npy", mm.astype(np.float32))  # millimetres stored as float: metres by contract
    code, _, err = run(capsys, "depth", tmp_path / "mmf.npy", "-i", camera, "-o", tmp_path / "b.ply")
    assert code == 0
    assert any("median depth 1500 m" in x and "--depth-scale 0.001" in x for x in warnings_of(err)), err
    code, _, err = run(capsys, "depth", tmp_path / "mmf.npy", "-i", camera, "-o", tmp_path / "c.ply",
                       "--depth-scale", "0.001")
    assert code == 0 and warnings_of(err) == []


def test_disparity_scale_is_refused_for_pfm(capsys, tmp_path):
    """--disparity-scale was silently ignored for PFM (issue 14, defect 11)."""
    from depthcloud.io.pfm import write_pfm

    write_pfm(tmp_path / "d.pfm", np.full((4, 4), 10.0, np.float32))
    (tmp_path / "calib.txt").write_text("cam0=[100 0 2; 0 100 2; 0 0 1]\ncam1=[100 0 2; 0 100 2; 0 0 1]\n"
                                        "doffs=0\nbaseline=100\nwidth=4\nheight=4\nndisp=16\n")
    code, _, err = run(capsys, "disparity", tmp_path / "d.pfm", "--calib", tmp_path / "calib.txt", "-o",
                       tmp_path / "c.ply", "--disparity-scale", "16")
    assert code == 2 and "--disparity-scale applies to PNG disparity only" in err
    assert not (tmp_path / "c.ply").exists()


@pytest.mark.slow
def test_stereo_warns_when_the_search_cannot_reach_the_board(capsys, tmp_path, data_dir):
    """OpenCV's samples: the board at 0.34–0.42 m came out at ~0.53 m with no warning, because the
    default search (80 px) reaches only ~0.55 m. With --min-depth covering it, no warning."""
    from depthcloud.calibrate import Board, calibrate_stereo, detect_views
    from depthcloud.io.calibfiles import save_rig

    root = need(data_dir, "opencv-samples")
    board = Board(9, 6, 0.025)
    lp, rp = sorted(root.glob("left[0-9]*.jpg")), sorted(root.glob("right[0-9]*.jpg"))
    res = calibrate_stereo(detect_views(lp, board, method="classic"), detect_views(rp, board, method="classic"), board)
    rig = save_rig(tmp_path / "rig.yaml", res.rig, rectification=res.rectification.to_dict())
    code, _, err = run(capsys, "stereo", root / "left01.jpg", root / "right01.jpg", "--rig", rig,
                       "-o", tmp_path / "a.ply")
    assert code == 0, err
    (w,) = [x for x in warnings_of(err) if "disparity search limit" in x]
    assert "left01.jpg:" in w and "anything nearer comes out at about 0.5" in w and "--min-depth 0.2" in w
    code, _, err = run(capsys, "stereo", root / "left01.jpg", root / "right01.jpg", "--rig", rig,
                       "-o", tmp_path / "b.ply", "--min-depth", "0.25")
    assert code == 0 and not [x for x in warnings_of(err) if "disparity search limit" in x], err
