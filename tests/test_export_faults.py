"""Faults: bad frames are reported and the rest go on; --resume skips what is done (by checksum);
an export killed half-way leaves no partial file and resumes to the full set."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _export_helpers import depth_folder, leftovers, outputs, run
from depthcloud.io import read_cloud

N, CORRUPT = 200, (17, 101, 188)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return depth_folder(tmp_path_factory.mktemp("src"), N, corrupt=CORRUPT)


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_bad_frames_are_named_the_rest_written_exit_non_zero_and_resume_writes_nothing(frames, tmp_path, capsys):
    folder, camera = frames
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "export", folder, "--camera", camera, "-o", out, "--workers", "1")
    assert code == 1
    files = outputs(out)
    assert len(files) == N - len(CORRUPT) == 197
    assert "3 frame(s) failed" in err
    for i in CORRUPT:
        assert f"frames frame {i}: FormatError: d{i:04d}.png: cannot decode the image" in err
    rows = manifest(out)
    assert sorted(r["frame"] for r in rows if r["status"] == "error") == list(CORRUPT)
    assert all(r["sha256"] and r["points"] > 0 for r in rows if r["status"] == "ok")
    assert "197 frame(s)" in stdout
    # a file reads back as the cloud of its frame: index and stamp in the name
    assert "000000_0.000000.ply" in files and len(read_cloud(out / "000000_0.000000.ply")) > 0

    before = {p: p.stat().st_mtime_ns for p in out.glob("*.ply")}
    code, stdout, err = run(capsys, "export", folder, "--camera", camera, "-o", out, "--workers", "1", "--resume")
    assert code == 1  # the corrupt frames are tried again, and fail again
    assert "197 frame(s) were already done" in stdout and "0 frame(s) →" in stdout
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.ply")} == before  # nothing rewritten

    # a file changed since (a damaged copy) no longer matches its checksum: resume writes it again
    victim = out / "000005_5.000000.ply"
    victim.write_bytes(victim.read_bytes()[:-7])
    code, stdout, _ = run(capsys, "export", folder, "--camera", camera, "-o", out, "--workers", "1", "--resume")
    assert "1 frame(s) →" in stdout and outputs(out)[victim.name] == files[victim.name]


def test_a_second_export_into_the_folder_needs_resume_or_overwrite(frames, tmp_path, capsys):
    folder, camera = frames
    out = tmp_path / "o"
    assert run(capsys, "export", folder, "--camera", camera, "-o", out, "--workers", "1", "--frames", "0:5")[0] == 0
    code, _, err = run(capsys, "export", folder, "--camera", camera, "-o", out, "--workers", "1", "--frames", "0:5")
    assert code == 2 and "OutputExistsError" in err and "--resume" in err and "--overwrite" in err
    code, _, _ = run(capsys, "export", folder, "--camera", camera, "-o", out, "--workers", "1", "--frames", "0:3",
                     "--overwrite")
    assert code == 0 and len(manifest(out)) == 3
    (out / "manifest.jsonl").unlink()  # frame files without their manifest are still an earlier export's
    code, _, err = run(capsys, "export", folder, "--camera", camera, "-o", out, "--workers", "1", "--frames", "0:5")
    assert code == 2 and "OutputExistsError" in err and "frame files" in err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_half_way_then_resumed_gives_every_frame_and_no_partial_file(frames, tmp_path, sig):
    folder, camera = frames
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # ASCII PLY of a full-resolution cloud: slow enough to be stopped part way
    args = [sys.executable, "-m", "depthcloud", "export", str(folder), "--camera", str(camera), "-o", str(out),
            "--workers", "1", "--ascii"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("*.ply"))) >= 20:
                proc.send_signal(sig)
                break
            time.sleep(0.005)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().decode() if proc.stderr else ""
    written = len(list(out.glob("*.ply")))
    if written >= N - len(CORRUPT):
        pytest.skip("the export finished before it could be stopped")
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C: a non-zero exit and a line, not a traceback
        assert proc.returncode not in (0, -signal.SIGINT), err
        assert "Traceback" not in err, err
    # every file under a final name is whole: it parses (a cut one would not)
    for p in out.glob("*.ply"):
        read_cloud(p)
    env_run = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert env_run.returncode == 1  # the three corrupt frames
    assert len(list(out.glob("*.ply"))) == N - len(CORRUPT)
    assert leftovers(out) == []
    ok = {r["frame"]: r for r in manifest(out) if r["status"] == "ok"}
    assert sorted(ok) == [i for i in range(N) if i not in CORRUPT]
    import hashlib

    for r in ok.values():
        assert hashlib.sha256((out / r["file"]).read_bytes()).hexdigest() == r["sha256"]
