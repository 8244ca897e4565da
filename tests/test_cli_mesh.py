"""The ``mesh`` command and ``stereo --mesh`` end to end, in-process: grid meshes of depth and disparity
images, Poisson of a cloud, previews, and one clean line for each kind of wrong input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from tests import surface_scene as S
from tests.test_cli_calib import assert_user_error, run

from conftest import need
from depthcloud import PointCloud
from depthcloud.io import write_cloud
from depthcloud.io.calibfiles import save_camera
from depthcloud.io.depthimage import write_depth_png, write_png
from depthcloud.surface import mesh_from_depth, read_mesh


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("scene")
    sc = S.scene()
    out = {"depth": d / "depth.png", "color": d / "color.png", "camera": d / "camera.yaml"}
    write_depth_png(out["depth"], sc.depth)
    write_png(out["color"], sc.color)
    save_camera(out["camera"], sc.intr)
    return out


def test_grid_mesh_of_a_depth_image_with_colour_and_preview(files, tmp_path, capsys):
    out, png = tmp_path / "m.ply", tmp_path / "m.png"
    code, stdout, err = run(capsys, "mesh", files["depth"], "--camera", files["camera"], "--color", files["color"],
                            "-o", out, "--preview", png)
    assert code == 0, err
    m = read_mesh(out)
    sc = S.scene()
    ref = mesh_from_depth(sc.depth_mm, sc.intr, color=sc.color)
    assert m == ref  # the library's mesh, written as is
    assert f"{len(m.vertices)} vertices, {len(m)} triangles" in stdout and "preview:" in stdout
    assert cv2.imread(str(png)).shape[1] > 3 * 480
    # Options reach the library: a tight --max-edge cuts more, --frame turns the mesh, --ascii, OBJ/GLB.
    code, _, err = run(capsys, "mesh", files["depth"], "--camera", files["camera"], "-o", tmp_path / "t.obj",
                       "--max-edge", "0.001", "--max-angle", "60", "--frame", "zup")
    assert code == 0, err
    t = read_mesh(tmp_path / "t.obj")
    assert len(t) < len(m) and t.frame == "zup"
    code, _, err = run(capsys, "mesh", files["depth"], "--camera", files["camera"], "-o", tmp_path / "a.ply", "--ascii",
                       "--max-depth", "2.0")
    assert code == 0, err
    assert b"format ascii" in (tmp_path / "a.ply").read_bytes()[:40]
    assert read_mesh(tmp_path / "a.ply").vertices[:, 2].max() <= 2.0


def test_poisson_of_a_cloud_without_normals_says_so(tmp_path, capsys):
    pytest.importorskip("open3d")
    rng = np.random.default_rng(0)
    d = rng.normal(size=(3000, 3))
    pts = d / np.linalg.norm(d, axis=1, keepdims=True) * 0.3 + [0, 0, 1.5]
    write_cloud(tmp_path / "s.ply", PointCloud(pts.astype(np.float32)))
    code, _, err = run(capsys, "mesh", tmp_path / "s.ply", "--method", "poisson", "-o", tmp_path / "p.ply",
                            "--poisson-depth", "6")
    assert code == 0, err
    assert "warning:" in err and "normals computed" in err
    m = read_mesh(tmp_path / "p.ply")
    r = np.linalg.norm(m.vertices - [0, 0, 1.5], axis=1)
    assert len(m) > 100 and np.median(np.abs(r - 0.3)) < 0.02


def test_poisson_of_a_depth_image_uses_the_pixel_normals(files, tmp_path, capsys):
    pytest.importorskip("open3d")
    code, _, err = run(capsys, "mesh", files["depth"], "--camera", files["camera"], "--method", "poisson",
                       "-o", tmp_path / "p.ply", "--poisson-depth", "6")
    assert code == 0, err
    assert "normals computed" not in err
    assert len(read_mesh(tmp_path / "p.ply")) > 100


def test_wrong_inputs_one_line_each(files, tmp_path, capsys):
    depth, cam = files["depth"], files["camera"]
    code, _, err = run(capsys, "mesh", depth, "-o", tmp_path / "m.ply")
    assert_user_error(code, err, "depth.png", "needs --camera FILE")
    small = tmp_path / "small.png"
    write_depth_png(small, np.ones((10, 12), np.float32))
    code, _, err = run(capsys, "mesh", small, "--camera", cam, "-o", tmp_path / "m.ply")
    assert_user_error(code, err, "small.png", "12x10 differs from the intrinsics 320x232")
    code, _, err = run(capsys, "mesh", depth, "--camera", cam, "--color", small, "-o", tmp_path / "m.ply")
    assert_user_error(code, err, "small.png", "differs from the depth/disparity image 320x232")
    (tmp_path / "exists.ply").write_bytes(b"x")
    code, _, err = run(capsys, "mesh", depth, "--camera", cam, "-o", tmp_path / "exists.ply")
    assert_user_error(code, err, "exists.ply", "--overwrite")
    assert (tmp_path / "exists.ply").read_bytes() == b"x"
    code, _, err = run(capsys, "mesh", depth, "--camera", cam, "-o", tmp_path / "m.stl")
    assert_user_error(code, err, "expected a mesh file ending in .ply, .obj, .glb")
    code, _, err = run(capsys, "mesh", depth, "--camera", cam, "-o", tmp_path / "m.ply", "--method", "marching")
    assert_user_error(code, err, "--method: expected one of grid, poisson")
    code, _, err = run(capsys, "mesh", depth, "--camera", cam, "-o", tmp_path / "m.ply", "--max-edge", "5cm")
    assert_user_error(code, err, "--max-edge: expected a fraction of the depth like 0.05")
    code, _, err = run(capsys, "mesh", depth, "--camera", cam, "-o", tmp_path / "m.ply", "--max-edge", "2px")
    assert_user_error(code, err, "a step in disparity pixels needs a stereo rig")
    code, _, err = run(capsys, "mesh", depth, "--camera", cam, "--disparity", "-o", tmp_path / "m.ply")
    assert_user_error(code, err, "--disparity needs a rectified stereo rig")
    write_cloud(tmp_path / "c.ply", PointCloud(np.eye(3)))
    code, _, err = run(capsys, "mesh", tmp_path / "c.ply", "-o", tmp_path / "m.ply")
    assert_user_error(code, err, "c.ply", "use --method poisson")
    code, _, err = run(capsys, "mesh", tmp_path / "missing.png", "--camera", cam, "-o", tmp_path / "m.ply")
    assert_user_error(code, err, "missing.png", "no such file")
    # Nothing left to mesh: an error, and no file.
    code, _, err = run(capsys, "mesh", depth, "--camera", cam, "-o", tmp_path / "e.ply", "--min-depth", "50")
    assert_user_error(code, err, "no triangles", "nothing written")
    assert not (tmp_path / "e.ply").exists()


def test_implausible_depth_units_are_warned(files, tmp_path, capsys):
    code, _, err = run(capsys, "mesh", files["depth"], "--camera", files["camera"], "--depth-scale", "1",
                       "-o", tmp_path / "k.ply")
    assert code == 0, err
    assert "warning:" in err and "median depth is" in err and "--depth-scale" in err


@pytest.fixture(scope="module")
def artl(data_dir: Path) -> Path:
    return need(data_dir, "middlebury_eval3_q/ArtL")


@pytest.mark.data
def test_disparity_map_with_its_rig(artl, tmp_path, capsys):
    code, _, err = run(capsys, "mesh", artl / "disp0GT.pfm", "--disparity", "--camera", artl / "calib.txt",
                            "--color", artl / "im0.png", "-o", tmp_path / "d.ply")
    assert code == 0, err
    m = read_mesh(tmp_path / "d.ply")
    assert m.colors is not None and np.median(m.vertices[:, 2]) == pytest.approx(1.78, rel=0.1)
    # 2 px of disparity (the default) keeps more of the sloped surfaces than 0.5 px, no more than 8 px.
    counts = []
    for edge in ("0.5px", "8px"):
        code, _, err = run(capsys, "mesh", artl / "disp0GT.pfm", "--disparity", "--camera", artl / "calib.txt",
                           "-o", tmp_path / f"{edge}.ply", "--max-edge", edge)
        assert code == 0, err
        counts.append(len(read_mesh(tmp_path / f"{edge}.ply")))
    assert counts[0] < len(m) <= counts[1]


@pytest.mark.data
def test_stereo_writes_a_mesh(artl, tmp_path, capsys):
    code, stdout, err = run(capsys, "stereo", artl / "im0.png", artl / "im1.png", "--middlebury", artl / "calib.txt",
                            "-o", tmp_path / "c.ply", "--mesh", tmp_path / "m.glb", "--preset", "fast")
    assert code == 0, err
    assert "mesh:" in stdout
    pytest.importorskip("trimesh")
    m = read_mesh(tmp_path / "m.glb")
    assert len(m) > 10000 and m.colors is not None
    assert np.median(m.vertices[:, 2]) == pytest.approx(1.78, rel=0.1)


@pytest.mark.data
def test_depth_frame_with_an_open3d_camera_json(data_dir, tmp_path, capsys):
    d = need(data_dir, "rgbd_open3d_testdata")
    code, _, err = run(capsys, "mesh", d / "RGBD/depth/00000.png", "--camera", d / "camera_primesense.json",
                            "--color", d / "RGBD/color/00000.jpg", "-o", tmp_path / "room.ply", "--max-depth", "3")
    assert code == 0, err
    m = read_mesh(tmp_path / "room.ply")
    assert len(m) > 100_000 and m.colors is not None and m.vertices[:, 2].max() <= 3.0
