"""`depthcloud mono`: exact clouds from a known-depth model, EXIF intrinsics, alignment, clean refusals,
`mono eval`, and the dispatch between `mono IMAGE…` and its subcommands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import need
from depthcloud.camera import Intrinsics
from depthcloud.cli import main
from depthcloud.geometry import Unprojector
from depthcloud.io import read_cloud, read_depth, read_pfm, write_depth_png
from depthcloud.io.depthimage import read_color
from depthcloud.mono.intrinsics import FULL_FRAME_DIAGONAL_MM
from mono_onnx import gray_model, plane_model, write_video


def _image(path: Path, w: int, h: int, *, seed: int = 0, exif: dict[int, object] | None = None) -> Path:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    if exif is not None:
        ex = Image.Exif()
        ex[0x8769] = exif
        img.save(path, exif=ex.tobytes(), quality=95)
    else:
        img.save(path)
    return path


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("w", "h"), [(641, 479), (64, 48), (33, 101)])
def test_cloud_is_exactly_the_unprojected_plane(tmp_path: Path, w: int, h: int) -> None:
    model = plane_model(tmp_path / "plane.onnx", 2.75, max_depth=20)
    img = _image(tmp_path / "img.png", w, h)
    out = tmp_path / "cloud.ply"
    rc = main(["mono", str(img), "-o", str(out), "--model", str(model),
               "--fx", "612.5", "--fy", "598.25", "--cx", "300.75", "--cy", "250.5"])
    assert rc == 0
    intr = Intrinsics(612.5, 598.25, 300.75, 250.5, w, h)
    expect = Unprojector(intr)(np.full((h, w), 2.75, np.float32), color=read_color(img))
    got = read_cloud(out)
    assert np.array_equal(got.points, expect.points) and np.array_equal(got.colors, expect.colors)
    head = out.read_bytes()[:600].decode("ascii", "replace")
    assert "comment intrinsics: given fx=612.5 fy=598.25 cx=300.75 cy=250.5" in head
    assert "plane.onnx (metric" in head


def test_exif_focal_length_is_used_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = plane_model(tmp_path / "plane.onnx", 3.0)
    img = _image(tmp_path / "photo.jpg", 641, 479, exif={0xA405: 26, 0x920A: 4.25})
    out = tmp_path / "photo.ply"
    assert main(["mono", str(img), "-o", str(out), "--model", str(model)]) == 0
    f = 26 / FULL_FRAME_DIAGONAL_MM * np.hypot(641, 479)
    intr = Intrinsics(f, f, 320.0, 239.0, 641, 479)
    expect = Unprojector(intr)(np.full((479, 641), 3.0, np.float32))
    np.testing.assert_allclose(read_cloud(out).points, expect.points, rtol=1e-6, atol=1e-6)
    assert "EXIF FocalLengthIn35mmFilm 26 mm" in capsys.readouterr().out
    assert b"comment intrinsics: EXIF FocalLengthIn35mmFilm 26 mm" in out.read_bytes()[:800]


def test_save_depth_preview_and_frame(tmp_path: Path) -> None:
    model = plane_model(tmp_path / "plane.onnx", 1.5)
    img = _image(tmp_path / "img.png", 80, 60)
    out = tmp_path / "c.pcd"
    rc = main(["mono", str(img), "-o", str(out), "--model", str(model), "--fov", "70", "--save-depth",
               "--preview", str(tmp_path / "p.png"), "--frame", "zup"])
    assert rc == 0
    assert (read_depth(tmp_path / "c.depth.png") == np.float32(1.5)).all()
    assert (read_pfm(tmp_path / "c.depth.pfm") == np.float32(1.5)).all()
    pic = read_color(tmp_path / "p.png")
    assert pic.shape[0] >= 60 and pic.shape[1] > 3 * 80
    cloud = read_cloud(out)
    assert cloud.frame == "zup" and np.allclose(cloud.points[:, 0], 1.5)  # forward is +x in zup


def test_folder_gives_one_cloud_per_image_and_refuses_to_overwrite(tmp_path: Path) -> None:
    model = plane_model(tmp_path / "plane.onnx", 2.0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        _image(folder / f"im{i}.png", 40, 30, seed=i)
    out = tmp_path / "out"
    assert main(["mono", str(folder), "-o", str(out), "--model", str(model), "--fov", "60"]) == 0
    assert _files(out) == {"im0.ply", "im1.ply", "im2.ply"}
    before = (out / "im0.ply").read_bytes()
    assert main(["mono", str(folder), "-o", str(out), "--model", str(model), "--fov", "50"]) == 2
    assert (out / "im0.ply").read_bytes() == before
    assert main(["mono", str(folder), "-o", str(out), "--model", str(model), "--fov", "50", "--overwrite"]) == 0


def test_video_gives_one_cloud_per_frame(tmp_path: Path) -> None:
    model = plane_model(tmp_path / "plane.onnx", 2.0)
    video = write_video(tmp_path / "clip.avi", 4, 48, 32)
    out = tmp_path / "out"
    assert main(["mono", str(video), "-o", str(out), "--model", str(model), "--fov", "60"]) == 0
    assert _files(out) == {f"clip_{i:06d}.ply" for i in range(4)}
    assert len(read_cloud(out / "clip_000003.ply")) == 48 * 32
    assert main(["mono", str(video), "-o", str(out), "--model", str(model), "--fov", "60"]) == 2  # no overwrite
    assert main(["mono", str(video), "-o", str(out), "--model", str(model), "--fov", "60", "--overwrite"]) == 0


def test_relative_model_aligned_to_sparse_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The model's output follows the image's grey level; the scene's true inverse depth is
    # 0.5·r + 0.1, and the sparse depth (200 pixels, 20 % of them wrong) says so.
    model = gray_model(tmp_path / "rel.onnx", gain=0.5, offset=1.0, kind="relative")
    w, h = 96, 72
    ramp = np.tile(np.linspace(20, 230, w).astype(np.uint8)[None, :, None], (h, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    from depthcloud.mono.runtime import DepthModel

    r = DepthModel(model).predict(ramp)
    truth = (1.0 / (0.5 * r + 0.1)).astype(np.float32)
    rng = np.random.default_rng(5)
    sparse = np.zeros_like(truth)
    pick = rng.choice(truth.size, 200, replace=False)
    sparse.flat[pick] = truth.flat[pick]
    sparse.flat[pick[:40]] *= rng.uniform(1.5, 2.5, 40).astype(np.float32)
    write_depth_png(tmp_path / "sparse.png", sparse, depth_scale=0.0005)
    out = tmp_path / "ramp.ply"
    rc = main(["mono", str(tmp_path / "ramp.png"), "-o", str(out), "--model", str(model), "--fov", "60",
               "--align", str(tmp_path / "sparse.png"), "--depth-scale", "0.0005", "--save-depth"])
    assert rc == 0
    np.testing.assert_allclose(read_pfm(tmp_path / "ramp.depth.pfm"), truth, rtol=2e-3)
    text = capsys.readouterr().out
    assert "aligned 1/z" in text and "of 200 points" in text


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], match: str, folder: Path) -> None:
    before = _files(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "Traceback" not in err
    assert _files(folder) == before  # nothing written, nothing half-written


def test_bad_input_is_one_clean_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = plane_model(tmp_path / "plane.onnx", 2.0)
    img = _image(tmp_path / "img.png", 40, 30)
    out = str(tmp_path / "out" / "c.ply")
    base = ["mono", str(img), "-o", out, "--save-depth", "--preview", str(tmp_path / "out" / "p.png")]
    _refused(capsys, [*base, "--model", str(good)], "InputError: ", tmp_path)  # no intrinsics
    _refused(capsys, [*base, "--model", str(good)], "--camera FILE", tmp_path)
    wrong = plane_model(tmp_path / "wrong.onnx", 2.0, input_name="image")
    _refused(capsys, [*base, "--model", str(wrong), "--fov", "60"], "FormatError: ", tmp_path)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00\x01garbage" * 20)
    _refused(capsys, [*base, "--model", str(corrupt), "--fov", "60"], "not a loadable ONNX model", tmp_path)
    unreadable = tmp_path / "broken.jpg"
    unreadable.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    _refused(capsys, ["mono", str(unreadable), "-o", out, "--model", str(good), "--fov", "60"],
             "cannot read the image", tmp_path)
    _refused(capsys, [*base, "--model", str(good), "--fov", "60", "--frame", "nope"], "--frame", tmp_path)
    hf = plane_model(tmp_path / "hf.onnx", 2.0, kind=None)
    _refused(capsys, [*base, "--model", str(hf), "--fov", "60"], "--kind metric", tmp_path)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        _refused(capsys, [*base, "--model", str(good), "--fov", "60", "--device", "cuda"],
                 "no CUDA execution provider", tmp_path)


def test_subcommands_beside_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mono", "--help"]) == 0
    text = capsys.readouterr().out
    assert "eval" in text and "export" in text
    assert main(["mono", "eval", "--help"]) == 0
    assert "RGB-D pairs" in capsys.readouterr().out
    assert main(["mono", "export", "--help"]) == 0
    assert "--encoder" in capsys.readouterr().out
    # an image argument is not taken for a subcommand name, and options may come first
    model = plane_model(tmp_path / "plane.onnx", 2.0)
    img = _image(tmp_path / "x.png", 20, 10)
    assert main(["mono", "--model", str(model), "--fov", "60", "-o", str(tmp_path / "x.ply"), str(img)]) == 0
    assert (tmp_path / "x.ply").is_file()


def test_eval_on_a_known_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = plane_model(tmp_path / "plane.onnx", 2.2)
    _image(tmp_path / "c.png", 30, 20)
    gt = np.full((20, 30), 2.0, np.float32)
    write_depth_png(tmp_path / "d.png", gt)
    report = tmp_path / "scores.json"
    rc = main(["mono", "eval", "--model", str(model), f"{tmp_path / 'c.png'},{tmp_path / 'd.png'}", "-o", str(report)])
    assert rc == 0
    doc = json.loads(report.read_text())
    raw, aligned = doc["pairs"][0]["raw"], doc["pairs"][0]["aligned"]
    assert raw["abs_rel"] == pytest.approx(0.1, rel=1e-5) and raw["rmse_m"] == pytest.approx(0.2, rel=1e-5)
    assert raw["delta1"] == 1.0 and aligned["abs_rel"] < 1e-6
    assert "AbsRel" in capsys.readouterr().out


def test_eval_on_real_rgbd_pairs(data_dir: Path, tmp_path: Path) -> None:
    root = need(data_dir, "rgbd_open3d_testdata/RGBD")
    model = plane_model(tmp_path / "plane.onnx", 2.0)
    report = tmp_path / "scores.json"
    assert main(["mono", "eval", "--model", str(model), str(root), "-o", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert len(doc["pairs"]) == 5
    first = doc["pairs"][0]
    gt = read_depth(root / first["depth"].split("RGBD/")[-1])
    z = gt[gt > 0].astype(np.float64)
    assert first["raw"]["abs_rel"] == pytest.approx(np.mean(np.abs(2.0 - z) / z), rel=1e-6)
    assert first["raw"]["pixels"] == z.size
    assert doc["mean"]["aligned"]["delta1"] >= doc["mean"]["raw"]["delta1"] - 1e-9


def test_export_reports_a_missing_converter_or_runs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["mono", "export", str(tmp_path / "missing.pth"), "-o", str(tmp_path / "m.onnx"),
               "--encoder", "vits", "--kind", "metric", "--max-depth", "20"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_camera_file_of_another_resolution_is_rescaled(tmp_path: Path) -> None:
    from depthcloud.io.calibfiles import save_camera

    model = plane_model(tmp_path / "plane.onnx", 1.75)
    cam = Intrinsics(400.0, 390.0, 159.5, 119.5, 320, 240)
    save_camera(tmp_path / "cam.yaml", cam)
    img = _image(tmp_path / "big.png", 640, 480)
    out = tmp_path / "big.ply"
    assert main(["mono", str(img), "-o", str(out), "--model", str(model), "--camera", str(tmp_path / "cam.yaml")]) == 0
    expect = Unprojector(cam.resized(640, 480))(np.full((480, 640), 1.75, np.float32))
    assert np.array_equal(read_cloud(out).points, expect.points)
    assert b"rescaled to 640x480" in out.read_bytes()[:800]


def test_align_to_a_cloud_and_to_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A metric model that says 2 m where the scene is at 2.5 m: a cloud or a recorded frame fixes the scale.
    from depthcloud.frame import Frame
    from depthcloud.io import write_cloud
    from depthcloud.sources.replay import RecordingWriter

    model = plane_model(tmp_path / "plane.onnx", 2.0)
    img = _image(tmp_path / "im.png", 64, 48)
    intr = Intrinsics(70.0, 70.0, 31.5, 23.5, 64, 48)
    truth = np.full((48, 64), 2.5, np.float32)
    write_cloud(tmp_path / "lidar.ply", Unprojector(intr)(truth))
    common = ["--model", str(model), "--fx", "70", "--save-depth"]
    assert main(["mono", str(img), "-o", str(tmp_path / "a.ply"), *common, "--align", str(tmp_path / "lidar.ply")]) == 0
    np.testing.assert_allclose(read_pfm(tmp_path / "a.depth.pfm"), 2.5, rtol=1e-6)
    # a sensor frame at half the resolution of the same camera, as a recording
    with RecordingWriter(tmp_path / "take.dcrec") as rec:
        rec.write(Frame(np.full((24, 32), 2.5, np.float32), intr.resized(32, 24)))
    assert main(["mono", str(img), "-o", str(tmp_path / "b.ply"), *common, "--align", str(tmp_path / "take.dcrec")]) == 0
    np.testing.assert_allclose(read_pfm(tmp_path / "b.depth.pfm"), 2.5, rtol=1e-6)
    assert "aligned z = 1.25*d" in capsys.readouterr().out
    before = _files(tmp_path)
    assert main(["mono", str(img), "-o", str(tmp_path / "c.ply"), *common, "--align", str(tmp_path / "im.png"),
                 "--align", str(tmp_path / "im.png")]) == 2
    assert _files(tmp_path) == before


def test_eval_of_a_relative_model(tmp_path: Path) -> None:
    # The model's output is affine in the image's grey level; the ground truth is made to be exactly
    # the inverse of 0.5·r + 0.1, so the aligned scores are perfect and there is no raw score.
    from depthcloud.io import write_pfm
    from depthcloud.mono.runtime import DepthModel

    model = gray_model(tmp_path / "rel.onnx", gain=0.5, offset=1.0, kind="relative")
    ramp = np.tile(np.linspace(20, 230, 50).astype(np.uint8)[None, :, None], (40, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "c.png")
    r = DepthModel(model).predict(ramp)
    write_pfm(tmp_path / "d.pfm", (1.0 / (0.5 * r + 0.1)).astype(np.float32))
    report = tmp_path / "s.json"
    assert main(["mono", "eval", "--model", str(model), f"{tmp_path / 'c.png'},{tmp_path / 'd.pfm'}", "-o", str(report)]) == 0
    pair = json.loads(report.read_text())["pairs"][0]
    assert pair["raw"] is None and pair["aligned"]["abs_rel"] < 1e-5
    assert pair["fit"]["scale"] == pytest.approx(0.5, rel=1e-4) and pair["fit"]["shift"] == pytest.approx(0.1, rel=1e-3)


def test_a_poor_alignment_is_written_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A flat prediction against a scene whose depth doubles across the image: most samples disagree.
    model = plane_model(tmp_path / "plane.onnx", 2.0)
    img = _image(tmp_path / "im.png", 64, 48)
    truth = np.tile(np.linspace(2.0, 4.0, 64, dtype=np.float32)[None, :], (48, 1))
    write_depth_png(tmp_path / "d.png", truth)
    assert main(["mono", str(img), "-o", str(tmp_path / "a.ply"), "--model", str(model), "--fx", "60",
                 "--align", str(tmp_path / "d.png")]) == 0
    assert "alignment samples agree with the fit; is the metric depth of this view?" in capsys.readouterr().err


def test_a_photo_stored_rotated_is_used_upright(tmp_path: Path) -> None:
    # Phones store portrait photos as landscape pixels plus EXIF orientation 6; the decoder turns them
    # upright, and the intrinsics must be those of the upright image.
    img = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    ex = Image.Exif()
    ex[0x0112] = 6
    ex[0x8769] = {0xA405: 26}
    img.save(tmp_path / "portrait.jpg", exif=ex.tobytes())
    out = tmp_path / "p.ply"
    assert main(["mono", str(tmp_path / "portrait.jpg"), "-o", str(out), "--model",
                 str(plane_model(tmp_path / "plane.onnx", 1.0))]) == 0
    assert b"size 48x64" in out.read_bytes()[:800]
    pts = read_cloud(out).points
    assert np.ptp(pts[:, 1]) > np.ptp(pts[:, 0])  # taller than wide
