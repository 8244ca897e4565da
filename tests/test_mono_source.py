"""The mono: source: frames from a folder of images and from a video, through open_source."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthcloud.errors import ConfigError, SourceError
from depthcloud.sources import SourceEnded, known_schemes, open_source
from mono_onnx import gray_model, plane_model, write_video


async def _take(spec: str, n: int, **options: object) -> list:
    frames = []
    async with open_source(spec, **options) as src:
        while len(frames) < n:
            try:
                frames.append(await src.next_frame(timeout_s=30.0))
            except SourceEnded:
                break
    return frames


def test_folder_source_yields_metric_frames_with_exif_intrinsics(tmp_path: Path) -> None:
    model = plane_model(tmp_path / "plane.onnx", 2.5)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        ex = Image.Exif()
        ex[0x8769] = {0xA405: 28}
        Image.fromarray(np.full((30, 40, 3), 50 * i, np.uint8)).save(folder / f"{i}.jpg", exif=ex.tobytes())
    frames = asyncio.run(_take(f"mono:{folder},model={model}", 10, realtime=False))
    assert [f.seq for f in frames] == [0, 1, 2]
    f = frames[0]
    assert f.depth.shape == (30, 40) and (f.depth == np.float32(2.5)).all()
    assert f.color is not None and f.color.shape == (30, 40, 3) and int(frames[2].color[0, 0, 0]) in range(95, 106)
    assert f.intrinsics.fx == pytest.approx(28 / np.hypot(36, 24) * 50.0)
    assert frames[1].stamp > frames[0].stamp


def test_video_source_with_fov_and_loop(tmp_path: Path) -> None:
    model = plane_model(tmp_path / "plane.onnx", 4.0)
    video = write_video(tmp_path / "clip.avi", 3, 32, 24)
    frames = asyncio.run(_take(f"mono:{video},model={model},fov=90", 3, realtime=False))
    assert len(frames) == 3 and frames[0].intrinsics.fx == pytest.approx(16.0)
    assert all((f.depth == np.float32(4.0)).all() for f in frames)
    looped = asyncio.run(_take(f"mono:{video},model={model},fov=90,loop=1", 7, realtime=False))
    assert [f.seq for f in looped] == list(range(7))
    stamps = [f.stamp for f in looped]
    assert all(b > a for a, b in itertools.pairwise(stamps))


def test_spec_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "mono" in known_schemes()
    model = plane_model(tmp_path / "plane.onnx", 1.0)
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    monkeypatch.delenv("DEPTHCLOUD_MONO_MODEL", raising=False)
    with pytest.raises(ConfigError, match="no model"):
        open_source(f"mono:{img}")
    with pytest.raises(ConfigError, match="expected key=value"):
        open_source(f"mono:{img},model={model},colour=1")
    with pytest.raises(ConfigError, match="expected a number"):
        open_source(f"mono:{img},model={model},fov=wide")
    with pytest.raises(ConfigError, match="no such file"):
        open_source(f"mono:{tmp_path / 'none.png'},model={model}")
    with pytest.raises(SourceError, match="no such model"):
        open_source(f"mono:{img},model={tmp_path / 'none.onnx'}")
    monkeypatch.setenv("DEPTHCLOUD_MONO_MODEL", str(model))
    src = open_source(f"mono:{img},fov=60")
    assert src.name.startswith("mono:")
    # no intrinsics and a relative model fail at start, with the reason
    with pytest.raises(SourceError, match="no intrinsics"):
        asyncio.run(_take(f"mono:{img}", 1))
    rel = gray_model(tmp_path / "rel.onnx", kind="relative")
    with pytest.raises(SourceError, match="relative model"):
        asyncio.run(_take(f"mono:{img},model={rel},fov=60", 1))


def test_record_a_video_through_the_mono_source(tmp_path: Path) -> None:
    from depthcloud.cli import main
    from depthcloud.sources.replay import read_recording

    model = plane_model(tmp_path / "plane.onnx", 3.0)
    video = write_video(tmp_path / "clip.avi", 3, 32, 24)
    spec = f"mono:{video},model={model},fx=30"
    assert open_source(spec).name == f"mono:{video}"
    rec = tmp_path / "clip.dcrec"
    assert main(["record", "--source", spec, "--fast", "-o", str(rec)]) == 0
    frames = read_recording(rec)
    assert len(frames) == 3 and all((f.depth == np.float32(3.0)).all() for f in frames)
    assert frames[0].intrinsics.fx == 30.0 and frames[0].intrinsics.cx == 15.5


def test_a_missing_camera_fails_at_start(tmp_path: Path) -> None:
    model = plane_model(tmp_path / "plane.onnx", 1.0)
    with pytest.raises(SourceError, match="cannot open the camera"):
        asyncio.run(_take(f"mono:97,model={model},fov=60", 1))
