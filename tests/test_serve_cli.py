"""`depthcloud serve` and `depthcloud get`: in-process where they return, a subprocess where they serve."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from depthcloud.cli import main
from depthcloud.io import read_cloud
from depthcloud.serve.config import ServeConfig
from depthcloud.serve.server import CloudServer
from depthcloud.sources.synthetic import SyntheticSource, default_intrinsics

REPO = Path(__file__).resolve().parents[1]


async def _server(**options):
    cfg = ServeConfig(**{"port": 0, **options})
    srv = CloudServer(cfg, source_factory=lambda: SyntheticSource(default_intrinsics(80, 60), fps=30))
    await srv.start()
    while srv.snapshot is None:
        await asyncio.sleep(0.02)
    return srv


async def test_get_writes_the_cloud(tmp_path, capsys):
    srv = await _server(frame="zup")
    try:
        out = tmp_path / "sub" / "cloud.ply"
        code = await asyncio.to_thread(main, ["get", srv.url, "-o", str(out)])
        assert code == 0
        cloud = read_cloud(out)
        assert len(cloud) > 0 and cloud.frame == "zup" and cloud.colors is not None
        assert f"→ {out}" in capsys.readouterr().out
        # An existing output is refused without --overwrite: one line, exit 2, file untouched.
        before = out.read_bytes()
        code = await asyncio.to_thread(main, ["get", srv.url, "-o", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("OutputExistsError: ") and "--overwrite" in err
        assert len(err.strip().splitlines()) == 1 and out.read_bytes() == before
        code = await asyncio.to_thread(main, ["get", srv.url, "-o", str(out), "--overwrite", "--max-points", "50",
                                              "--encoding", "i16mm", "--compress", "zstd"])
        assert code == 0 and len(read_cloud(out)) == 50
        pcd = tmp_path / "cloud.pcd"
        assert await asyncio.to_thread(main, ["get", srv.url, "-o", str(pcd), "--decimation", "4"]) == 0
        assert len(read_cloud(pcd)) > 0
    finally:
        await srv.stop()


async def test_get_errors_are_one_line(tmp_path, capsys):
    srv = await _server(token="tok")
    try:
        cases = [
            (["get", srv.url, "-o", str(tmp_path / "c.ply")], "ProtocolError: ", "HTTP 401"),
            (["get", srv.url, "-o", str(tmp_path / "c.ply"), "--token", "bad"], "ProtocolError: ", "HTTP 401"),
            (["get", srv.url, "-o", str(tmp_path / "c.docx"), "--token", "tok"], "InputError: ", "unknown point-cloud extension"),
            (["get", srv.url, "-o", str(tmp_path / "c.ply"), "--token", "tok", "--encoding", "f64"], "InputError: ",
             "encoding must be one of f32, f16, i16mm"),
            (["get", "ftp://x", "-o", str(tmp_path / "c.ply")], "InputError: ", "url: expected"),
        ]
        for argv, kind, text in cases:
            code = await asyncio.to_thread(main, argv)
            err = capsys.readouterr().err
            assert code == 2, err
            assert err.startswith(kind) and text in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "c.ply").exists()
        code = await asyncio.to_thread(main, ["get", srv.url, "-o", str(tmp_path / "c.ply"), "--token", "tok"])
        assert code == 0
    finally:
        await srv.stop()


def test_get_unreachable_server(tmp_path, capsys):
    code = main(["get", "ws://127.0.0.1:9", "-o", str(tmp_path / "c.ply"), "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ProtocolError: ws://127.0.0.1:9/v1: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, text", [
    (["--decimation", "9"], "ConfigError: key 'decimation': expected an integer 1..8, got 9 (from command line)"),
    (["--frame", "ros"], "ConfigError: key 'frame': expected one of optical, zup, opengl, got 'ros'"),
    (["--source", "nosuch:1", "--port", "0"], "ConfigError: source spec 'nosuch:1': unknown scheme 'nosuch'"),
    (["--config", "missing.yaml"], "ConfigError: missing.yaml: cannot read the config file"),
])
def test_serve_refuses_bad_configuration(argv, text, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code = main(["serve", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == err.strip().splitlines()[0] and err.startswith(text)


def test_serve_env_value_is_checked(capsys, monkeypatch):
    monkeypatch.setenv("DEPTHCLOUD_MAX_CLIENTS", "lots")
    assert main(["serve"]) == 2
    assert "key 'max_clients': expected an integer 1..100000, got 'lots' (from environment" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_runs_until_stopped(tmp_path, sig):
    cfg = tmp_path / "serve.toml"
    cfg.write_text('source = "synthetic:64x48@20"\nport = 0\ndecimation = 1\n')
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "depthcloud", "serve", "--config", str(cfg), "--voxel", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"ws://127\.0\.0\.1:(\d+)/ \(compatible\)", line)
        assert m, line
        from depthcloud.serve.client import get_compat, info

        url = f"ws://127.0.0.1:{m.group(1)}"
        for _ in range(100):
            if info(url)["seq"] is not None:
                break
        assert len(get_compat(url, 1)) > 0
        assert info(url)["decimation"] == 1
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and err.strip() == "stopped"


@pytest.mark.parametrize("spec, needle", [("bag:missing.bag", "no such .bag file"), ("replay:missing.dcrec", "no such recording")])
def test_serve_a_missing_file_source_fails_at_once(spec: str, needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong path is one line and exit 2 before anything listens, not an endless reconnect loop."""
    monkeypatch.chdir(tmp_path)
    code = main(["serve", "--source", spec, "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "SourceError" in err and needle in err and "Traceback" not in err
