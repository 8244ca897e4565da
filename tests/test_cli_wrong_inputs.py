"""Acceptance (issue 14): the wrong invocations in docs/cli.md — the one table, read here — each end with
their exit status and exactly one line on stderr matching the documented pattern, never a traceback."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from depthcloud.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
ROW = re.compile(r"^\| `depthcloud (?P<args>[^`]*)` \| (?P<code>\d+) \| `(?P<pattern>.*)` \|$")


def table() -> list[tuple[str, int, str]]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split("<!-- wrong-invocations:start -->", 1)[1].split("<!-- wrong-invocations:end -->", 1)[0]
    rows = [ROW.match(line) for line in body.splitlines() if line.startswith("| `depthcloud")]
    assert all(rows), "every row of the table reads as | `depthcloud ARGS` | EXIT | `REGEX` |"
    return [(m["args"], int(m["code"]), m["pattern"]) for m in rows if m]


ROWS = table()


def test_the_table_has_at_least_40_distinct_wrong_invocations() -> None:
    assert len(ROWS) >= 40
    assert len({args for args, _, _ in ROWS}) == len(ROWS)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from depthcloud.camera import Intrinsics, StereoRig
    from depthcloud.cloud import PointCloud
    from depthcloud.io import write_cloud
    from depthcloud.io.calibfiles import save_camera, save_rig
    from depthcloud.io.depthimage import write_depth_png, write_png
    from depthcloud.io.pfm import write_pfm

    root = tmp_path_factory.mktemp("wrong")
    intr = Intrinsics(60.0, 61.0, 31.5, 23.5, 64, 48)
    f: dict[str, Path] = {"OUT": root / "out"}
    f["OUT"].mkdir()
    f["CAM"] = save_camera(root / "camera.yaml", intr)
    f["BIGCAM"] = save_camera(root / "big.yaml", intr.resized(128, 96))
    f["RAWRIG"] = save_rig(root / "raw_rig.yaml", StereoRig(intr, intr, np.eye(3), np.array([-0.1, 0.0, 0.0])))
    f["MB"] = root / "calib.txt"
    f["MB"].write_text("cam0=[60 0 31.5; 0 60 23.5; 0 0 1]\ncam1=[60 0 31.5; 0 60 23.5; 0 0 1]\ndoffs=0\n"
                       "baseline=100\nwidth=64\nheight=48\nndisp=32\n")
    f["COLMAP"] = root / "cameras.txt"
    f["COLMAP"].write_text("1 PINHOLE 64 48 60 61 32 24\n")
    f["LIECAM"] = root / "lie.yaml"
    f["LIECAM"].write_text(f["CAM"].read_text().replace("cols: 3", "cols: 4294967295", 1))
    f["TXT"] = root / "notes.txt"
    f["TXT"].write_text("hello, this is not a calibration\n")
    depth = np.full((48, 64), 1.5, np.float32)
    f["DEPTH"] = write_depth_png(root / "depth.png", depth)
    (root / "more").mkdir()
    f["DEPTH2"] = write_depth_png(root / "more" / "depth2.png", depth)
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, ::4] = 255
    f["IMG"] = write_png(root / "left.png", rgb)
    f["RIGHT"] = write_png(root / "right.png", np.roll(rgb, -2, axis=1))
    f["PFM"] = write_pfm(root / "disp.pfm", np.full((48, 64), 4.0, np.float32))
    f["DISPPNG"] = write_png(root / "disp16.png", np.full((48, 64), 64, np.uint16))
    f["CLOUD"] = write_cloud(root / "cloud.ply", PointCloud(np.ones((3, 3), np.float32)))
    f["CFG"] = root / "service_config.json"
    f["CFG"].write_text(json.dumps({"name": "oak0", "port": 1, "host": "localhost", "subscriptions": [
        {"uri": {"path": "/disparity", "query": "service_name=oak0"}, "every_n": 1}]}))
    return {k: str(v) for k, v in f.items()}


@pytest.mark.parametrize(("args", "code", "pattern"), ROWS, ids=[a[:60] for a, _, _ in ROWS])
def test_wrong_invocation(args: str, code: int, pattern: str, files: dict[str, str],
                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(**files) for a in shlex.split(args)]
    got = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert got == code, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not any(p in lines[0] for p in ("[Errno", "kind=", "extrinsics=", "image_size=", "overwrite=True"))
