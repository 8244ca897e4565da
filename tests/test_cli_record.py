"""`depthcloud record` and `depthcloud sources`, in-process: lossless synthetic round trip, errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from depthcloud.cli import main
from depthcloud.sources.replay import read_recording
from depthcloud.sources.synthetic import default_intrinsics, render_scene


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_record_synthetic_then_replay_is_lossless(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rec" / "syn.dcrec"
    code, stdout, err = run(capsys, "record", "--source", "synthetic:96x64@30", "-o", out, "--frames", 6, "--fast")
    assert code == 0, err
    assert "recorded 6 frames" in stdout and "dropped 0, missed 0" in stdout and str(out) in stdout
    frames = read_recording(out)
    intr = default_intrinsics(96, 64)
    assert [f.seq for f in frames] == list(range(6))
    for f in frames:
        depth, color = render_scene(intr, f.seq / 30)
        assert f.stamp == f.seq / 30  # stamps kept exactly
        assert f.depth.tobytes() == depth.tobytes()  # bit-exact
        assert f.color is not None and np.array_equal(f.color, color)
        assert f.intrinsics == intr and f.frame_id == "synthetic"


def test_record_seconds_in_real_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.dcrec"
    code, stdout, _ = run(capsys, "record", "-s", "synthetic:32x24@50", "-o", out, "--seconds", 0.4)
    assert code == 0 and "recorded" in stdout
    frames = read_recording(out)
    assert 3 <= len(frames) <= 25
    assert all(b.seq > a.seq for a, b in itertools.pairwise(frames))


def test_record_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.dcrec"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, "record", "-s", "synthetic:8x8@30", "-o", out, "-n", 1)
    assert code == 2 and "OutputExistsError" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"keep me"
    code, _, err = run(capsys, "record", "-s", "synthetic:8x8@30", "-o", out, "-n", 1, "--overwrite", "--fast")
    assert code == 0 and len(read_recording(out)) == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-s", "nosuch:1", "-n", "1"], "ConfigError: source spec 'nosuch:1': unknown scheme 'nosuch'"),
        (["-s", "synthetic:0x5", "-n", "1"], "ConfigError: synthetic: size must be at least 1x1"),
        (["-s", "synthetic"], "InputError: record: a 'synthetic' source does not end by itself; give --frames N or --seconds S"),
        (["-s", "synthetic", "-n", "0"], "InputError: --frames: expected an integer >= 1, got 0"),
        (["-s", "realsense", "-n", "1", "--fast"], "ConfigError: --fast applies to synthetic, replay, bag"),
        (["-s", "replay:missing.dcrec", "-n", "1"], "SourceError: missing.dcrec: no such recording"),
        (["-s", "bag:missing.bag", "-n", "1"], "SourceError: missing.bag: no such .bag file"),
    ],
)
def test_record_bad_input_one_line(
    args: list[str], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "record", "-o", tmp_path / "o.dcrec", *args)
    assert code == 2
    assert err.strip().startswith(match) and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_sources_lists_specs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sources")
    assert code == 0
    for syntax in ("synthetic[:WxH[@FPS]]", "replay:PATH", "bag:FILE.bag", "realsense[:serial=", "amiga:CONFIG"):
        assert syntax in out


@pytest.mark.data
def test_record_a_bag_without_limits_takes_every_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import data_root

    bag = data_root() / "realsense_bag" / "single_depth_color_640x480.bag"
    if not bag.exists():
        pytest.skip(f"{bag} not found")
    out = tmp_path / "d435.dcrec"
    code, stdout, err = run(capsys, "record", "-s", f"bag:{bag}", "-o", out, "--fast")
    assert code == 0, err
    assert "recorded 2 frames" in stdout
    frames = read_recording(out)
    assert len(frames) == 2 and frames[0].intrinsics.fx == pytest.approx(390.431, abs=1e-3)
