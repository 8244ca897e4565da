"""``depthcloud amiga pointcloud | emulate | record`` in-process, against an emulator on 127.0.0.1 that
runs in its own thread and event loop (the CLI runs its own ``asyncio.run``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import need
from depthcloud.amiga.client import OakClient, ServiceConfig
from depthcloud.amiga.emulator import OakEmulator, planes_scene
from depthcloud.amiga.eventlog import read_event_log
from depthcloud.amiga.messages import read_oak_calibration
from depthcloud.cli import main
from depthcloud.errors import SourceTimeout

pytest.importorskip("farm_ng.core.event_service")

CALIB = "oak_depthai/calib_oak_d_pro_af_18443010F116631200.json"


@contextmanager
def emulator_thread(calibration, frames, **options) -> Iterator[OakEmulator]:
    """An OakEmulator serving from a background thread; stopped (and joined) on exit."""
    loop = asyncio.new_event_loop()
    emu = OakEmulator(calibration, frames, **options)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(emu.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "emulator did not start"
    try:
        yield emu
    finally:
        asyncio.run_coroutine_threadsafe(emu.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def calib_path(data_dir) -> Path:
    return need(data_dir, CALIB)


@pytest.fixture
def calibration(calib_path):
    return read_oak_calibration(calib_path)


def write_config(path: Path, port: int, name: str = "oak0", every_n: int = 1) -> Path:
    path.write_text(json.dumps({
        "name": name, "port": port, "host": "localhost",
        "subscriptions": [{"uri": {"path": "/disparity" if "/" not in name else f"{name}/disparity",
                                   "query": f"service_name={name}"}, "every_n": every_n}],
    }))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line_error(capsys, code: int, text: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert text in err, err


def test_pointcloud_saves_right_disparity_images_and_binary_plys(calibration, tmp_path, capsys):
    from depthcloud.io import read_cloud

    cfg = write_config(tmp_path / "service_config.json", 0)
    with emulator_thread(calibration, planes_scene(calibration, depths_m=(0.3, 1.0, 3.0, 7.0)), fps=30) as emu:
        write_config(cfg, emu.port, every_n=2)
        code = main(["amiga", "pointcloud", "--service-config", str(cfg), "--frames", "2", "--save-disparity",
                     "--save-pointcloud", "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "f = 400.16 px, B = 8.446 cm, keeping 0.2–7.5 m" in out
    pngs = sorted((tmp_path / "out").glob("disparity_*.png"))
    plys = sorted((tmp_path / "out").glob("cloud_*.ply"))
    assert len(pngs) == len(plys) == 2
    seqs = [int(p.stem.split("_")[1]) for p in plys]
    assert all(s % 2 == 0 for s in seqs)  # every_n = 2 from the config
    assert (tmp_path / "out" / plys[0].name).read_bytes().startswith(b"ply\nformat binary_little_endian")
    cloud = read_cloud(plys[0])
    z = cloud.points[:, 2]
    assert z.min() >= 0.2 and z.max() <= 7.5
    assert len(cloud.points) == 640 * 400  # all four planes lie inside 0.2–7.5 m (7 m reads as f·B/5 = 6.76 m)
    image = cv2.imread(str(pngs[0]))[:, :, ::-1]
    # Near is hot, far is cold, and the colours follow disparity without wrapping around.
    fb = 400.158 * 0.0844635
    colours = [tuple(image[200, x]) for x in (80, 240, 400, 560)]
    assert len(set(colours)) == 4
    d = np.array([round(fb / z) for z in (0.3, 1.0, 3.0, 7.0)], np.float64)
    vmin, vmax = fb / 7.5, fb / 0.2
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    for colour, dv in zip(colours, d, strict=True):
        expected = lut[round((dv - vmin) / (vmax - vmin) * 255)]
        assert np.abs(np.array(colour, int) - expected).max() <= 12, (colour, expected, dv)


def test_pointcloud_without_a_service_times_out_cleanly(tmp_path, capsys):
    cfg = write_config(tmp_path / "service_config.json", free_port())
    code = main(["amiga", "pointcloud", "--service-config", str(cfg), "--frames", "1", "--timeout", "0.5"])
    one_line_error(capsys, code, "within 0.5 s (request /calibration); is the service running?")


def test_pointcloud_bad_configs(tmp_path, capsys):
    code = main(["amiga", "pointcloud", "--service-config", str(tmp_path / "missing.json")])
    one_line_error(capsys, code, "ConfigError: ")
    bad = tmp_path / "bad.json"
    bad.write_text("{name: oak0}")
    code = main(["amiga", "pointcloud", "--service-config", str(bad)])
    one_line_error(capsys, code, "line 1: not valid JSON")
    bad.write_text(json.dumps({"name": "oak0", "port": 99999, "host": "localhost"}))
    code = main(["amiga", "pointcloud", "--service-config", str(bad)])
    one_line_error(capsys, code, "key 'port': expected a port number 1..65535, got 99999")
    ok = write_config(tmp_path / "ok.json", 50010)
    code = main(["amiga", "pointcloud", "--service-config", str(ok), "--min-depth", "3", "--max-depth", "2"])
    one_line_error(capsys, code, "--max-depth 2.0 must exceed --min-depth 3.0")
    code = main(["amiga", "pointcloud", "--service-config", str(ok), "--every-n", "0"])
    one_line_error(capsys, code, "--every-n: expected a number >= 1")


def test_pointcloud_refuses_to_overwrite(calibration, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cloud_000000.ply").write_bytes(b"keep me")
    frames = list(islice(planes_scene(calibration), 2))  # held until the client takes frame 0
    with emulator_thread(calibration, frames, fps=30, wait_for_client=True) as emu:
        cfg = write_config(tmp_path / "sc.json", emu.port)
        code = main(["amiga", "pointcloud", "--service-config", str(cfg), "--frames", "1", "--save-pointcloud",
                     "-o", str(tmp_path / "out")])
    one_line_error(capsys, code, "OutputExistsError: ")
    assert (tmp_path / "out" / "cloud_000000.ply").read_bytes() == b"keep me"


def test_emulate_publishes_and_exits(calib_path, capsys):
    code = main(["amiga", "emulate", "--name", "oak/1", "--port", "0", "--camera", str(calib_path),
                 "--fps", "100", "--frames", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OAK emulator 'oak/1' on 127.0.0.1:" in out and "oak/1/calibration, oak/1/disparity at 100 fps" in out
    assert "published 3 messages" in out


def test_emulate_needs_a_calibration(tmp_path, capsys):
    code = main(["amiga", "emulate", "--port", "0"])
    one_line_error(capsys, code, "give --camera FILE")
    (tmp_path / "c.json").write_text('{"cameraData": "x"}')
    code = main(["amiga", "emulate", "--port", "0", "--camera", str(tmp_path / "c.json")])
    one_line_error(capsys, code, "key 'cameraData': missing or not a list")


def test_record_then_emulate_from_the_recording(calibration, calib_path, tmp_path, capsys):
    with emulator_thread(calibration, planes_scene(calibration), name="oak/1", fps=30) as emu:
        cfg = write_config(tmp_path / "sc.json", emu.port, name="oak/1")
        code = main(["amiga", "record", "--service-config", str(cfg), "-o", str(tmp_path / "rec.bin"),
                     "--frames", "4"])
        assert code == 0, capsys.readouterr().err
        code = main(["amiga", "record", "--service-config", str(cfg), "-o", str(tmp_path / "rec.bin"),
                     "--frames", "4"])
        one_line_error(capsys, code, "OutputExistsError: ")
    records, problem = read_event_log(tmp_path / "rec.bin")
    assert problem is None and [r.path for r in records] == ["oak/1/calibration"] + ["oak/1/disparity"] * 4

    # Cut the last record: `emulate --from` replays what is whole (held until a client subscribes),
    # payload for payload, and says what was not whole.
    data = (tmp_path / "rec.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-500])
    port = free_port()
    result: dict[str, int] = {}
    cli = threading.Thread(target=lambda: result.setdefault("code", main(
        ["amiga", "emulate", "--name", "oak/1", "--port", str(port), "--from", str(tmp_path / "cut.bin"),
         "--fps", "50"])))
    cli.start()
    try:
        got = asyncio.run(_take_payloads(ServiceConfig("oak/1", "127.0.0.1", port), 3))
    finally:
        cli.join(20)
    assert result.get("code") == 0
    assert got == [r.payload for r in records[1:4]]
    captured = capsys.readouterr()
    assert "truncated at byte" in captured.err and "4 whole records read" in captured.err
    assert "published 3 messages" in captured.out


async def _take_payloads(config, n: int) -> list[bytes]:
    for _ in range(50):  # the CLI's server may take a moment to listen
        try:
            async with OakClient(config, timeout_s=0.5) as client:
                await client.calibration()
                break
        except SourceTimeout:
            continue
    async with OakClient(config, timeout_s=10) as client:
        out = []
        async for _event, payload in client.events(config.stream_path("disparity")):
            out.append(payload)
            if len(out) == n:
                return out
    return out


@pytest.mark.slow
def test_ctrl_c_stops_pointcloud_cleanly(calibration, tmp_path):
    """A real SIGINT to a real process: a summary, exit 0, no traceback."""
    with emulator_thread(calibration, planes_scene(calibration), fps=20) as emu:
        cfg = write_config(tmp_path / "sc.json", emu.port)
        proc = subprocess.Popen(
            [sys.executable, "-m", "depthcloud", "amiga", "pointcloud", "--service-config", str(cfg)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("frame "):
                    break
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "stopped by Ctrl-C after" in err and "Traceback" not in err
    assert " frames, " in out


def test_pointcloud_with_a_calibration_missing_the_aligned_camera(data_dir, tmp_path, capsys):
    doc = json.loads(need(data_dir, CALIB).read_text())
    doc["cameraData"] = [c for c in doc["cameraData"] if c[0] != 2]  # no right camera
    (tmp_path / "calib.json").write_text(json.dumps(doc))
    calibration = read_oak_calibration(tmp_path / "calib.json")
    with emulator_thread(calibration, planes_scene_without_model(), fps=30) as emu:
        cfg = write_config(tmp_path / "sc.json", emu.port)
        code = main(["amiga", "pointcloud", "--service-config", str(cfg), "--frames", "1"])
    one_line_error(capsys, code, "CalibrationError: OAK calibration: <depthai>: no camera at socket 2; sockets present: 0, 1")


def planes_scene_without_model():
    """Disparity frames made without a calibration (planes_scene needs the right camera)."""
    from depthcloud.amiga.emulator import Published, planes_disparity
    from depthcloud.amiga.messages import encode_disparity, oak_messages

    image = encode_disparity(planes_disparity(640, 400, 400.0, 0.08, (0.5, 1.0)))
    seq = 0
    while True:
        frame = oak_messages().OakFrame(image_data=image)
        frame.meta.sequence_num = seq
        yield Published("disparity", frame)
        seq += 1
