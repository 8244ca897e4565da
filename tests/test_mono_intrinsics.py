"""depthcloud.mono.intrinsics: camera files, values, field of view and EXIF; never a silent guess."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthcloud.camera import Intrinsics
from depthcloud.errors import FormatError, InputError
from depthcloud.mono.intrinsics import ExifFocal, image_camera, intrinsics_from_exif, read_exif_focal
from depthcloud.mono.pipeline import CameraOptions


def _jpeg(path: Path, w: int, h: int, exif_ifd: dict[int, object] | None = None, orientation: int | None = None) -> Path:
    img = Image.fromarray(np.full((h, w, 3), 90, np.uint8))
    ex = Image.Exif()
    if orientation is not None:
        ex[0x0112] = orientation
    if exif_ifd:
        ex[0x8769] = exif_ifd
    img.save(path, exif=ex.tobytes())
    return path


def test_exif_35mm_equivalent_uses_the_diagonal(tmp_path: Path) -> None:
    size, exif = read_exif_focal(_jpeg(tmp_path / "a.jpg", 640, 480, {0xA405: 26, 0x920A: 4.25}))
    assert size == (640, 480) and exif.focal_35mm == 26 and exif.focal_mm == pytest.approx(4.25)
    cam = image_camera(640, 480, exif=exif)
    f = 26 / math.hypot(36, 24) * math.hypot(640, 480)
    assert cam.intrinsics.fx == pytest.approx(f) and cam.intrinsics.fy == pytest.approx(f)
    assert (cam.intrinsics.cx, cam.intrinsics.cy) == (319.5, 239.5)
    assert "FocalLengthIn35mmFilm 26 mm" in cam.source


def test_exif_focal_length_with_focal_plane_resolution(tmp_path: Path) -> None:
    # 4000 px over a 6.4 mm wide sensor = 625 px/mm, given per cm; the file is the same picture at 1000 px.
    ifd = {0x920A: 4.0, 0xA20E: 6250.0, 0xA20F: 6250.0, 0xA210: 3, 0xA002: 4000, 0xA003: 3000}
    _size, exif = read_exif_focal(_jpeg(tmp_path / "b.jpg", 1000, 750, ifd))
    cam = image_camera(1000, 750, exif=exif)
    assert cam.intrinsics.fx == pytest.approx(4.0 * 625 * 0.25)
    assert "FocalPlaneResolution" in cam.source


def test_exif_focal_length_needs_a_sensor_size(tmp_path: Path) -> None:
    _size, exif = read_exif_focal(_jpeg(tmp_path / "c.jpg", 600, 400, {0x920A: 5.0}))
    with pytest.raises(InputError, match=r"no 35 mm equivalent and no sensor size.*--sensor-width"):
        image_camera(600, 400, exif=exif)
    cam = image_camera(600, 400, exif=exif, sensor_width_mm=6.0)
    assert cam.intrinsics.fx == pytest.approx(5.0 * 600 / 6.0) and "sensor width 6 mm" in cam.source


def test_rotated_orientation_swaps_the_size(tmp_path: Path) -> None:
    size, exif = read_exif_focal(_jpeg(tmp_path / "r.jpg", 640, 480, {0xA405: 28}, orientation=6))
    assert size == (480, 640) and exif.orientation == 6


def test_no_intrinsics_refuses_with_the_options(tmp_path: Path) -> None:
    _size, exif = read_exif_focal(_jpeg(tmp_path / "n.jpg", 64, 48))
    assert exif == ExifFocal()
    with pytest.raises(InputError, match=r"--camera FILE, --fx F .*--fov DEG"):
        image_camera(64, 48, exif=exif)
    with pytest.raises(InputError, match="--camera FILE"):
        image_camera(64, 48)
    assert intrinsics_from_exif(exif, 64, 48) is None


def test_unreadable_image_is_a_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(FormatError, match="cannot read the image"):
        read_exif_focal(bad)


def test_explicit_values_fov_and_conflicts() -> None:
    cam = image_camera(641, 479, fx=500.0, fy=480.0, cx=300.25, cy=250.5)
    assert cam.intrinsics == Intrinsics(500.0, 480.0, 300.25, 250.5, 641, 479)
    cam = image_camera(641, 479, fx=500.0)
    assert (cam.intrinsics.fy, cam.intrinsics.cx, cam.intrinsics.cy) == (500.0, 320.0, 239.0)
    assert "fy = fx" in cam.source and "principal point at the image centre" in cam.source
    cam = image_camera(640, 480, fov_deg=90.0)
    assert cam.intrinsics.fx == pytest.approx(320.0)
    with pytest.raises(InputError, match="give one of"):
        image_camera(640, 480, fx=500.0, fov_deg=60.0)
    with pytest.raises(InputError, match="need --fx"):
        image_camera(640, 480, cx=3.0)
    # explicit values win over EXIF
    assert image_camera(640, 480, fov_deg=90.0, exif=ExifFocal(focal_35mm=26.0)).source.startswith("horizontal")


def test_camera_file_is_rescaled_to_the_same_aspect(tmp_path: Path) -> None:
    from depthcloud.io.calibfiles import save_camera

    intr = Intrinsics(525.0, 520.0, 319.5, 239.5, 640, 480)
    path = save_camera(tmp_path / "cam.yaml", intr)
    opts = CameraOptions.from_file(path)
    assert opts.resolve(640, 480).intrinsics == intr
    half = opts.resolve(320, 240)
    assert half.intrinsics == intr.resized(320, 240) and "rescaled to 320x240" in half.source
    with pytest.raises(InputError, match="another aspect ratio"):
        opts.resolve(641, 479 - 100)


def test_docs_python_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The ```python blocks of docs/mono.md run as written, next to a photo with EXIF."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "mono.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert blocks
    from mono_onnx import plane_model

    _jpeg(tmp_path / "photo.jpg", 640, 480, {0xA405: 26})
    plane_model(tmp_path / "da2-metric-indoor-vits.onnx", 2.0, max_depth=20.0)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "docs/mono.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "EXIF FocalLengthIn35mmFilm 26 mm" in out and "307200 points;" in out
    assert (tmp_path / "photo.ply").is_file()
