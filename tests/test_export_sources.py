"""Every kind of source reaches files: depth folders (with colour), disparity folders + rig, stereo
pair folders + rig, .dcrec recordings (seeking to ranges), Amiga event logs, the synthetic scene,
several sources at once; ranges, --every and the cloud options; and the wrong inputs people give."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _export_helpers import SMALL, depth_folder, outputs, run
from conftest import need
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.io import read_cloud
from depthcloud.io.depthimage import write_png
from depthcloud.sources.synthetic import render_scene


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_depth_folder_with_colour_and_the_cloud_options(tmp_path, capsys):
    folder, camera = depth_folder(tmp_path / "src", 6)
    layout = tmp_path / "redwood"
    (layout / "depth").mkdir(parents=True)
    (layout / "color").mkdir()
    for i, p in enumerate(sorted(folder.iterdir())):
        p.rename(layout / "depth" / p.name)
        write_png(layout / "color" / f"c{i:04d}.png", render_scene(SMALL, i / 30.0)[1])
    code, _, err = run(capsys, "export", layout, "--camera", camera, "-o", tmp_path / "o", "--workers", "1",
                       "--frames", "1:6", "--every", "2", "--frame", "zup", "--crop", "0,-10,-10,10,10,10")
    assert code == 0, err
    got = rows(tmp_path / "o")
    assert [r["frame"] for r in got] == [1, 3, 5]
    cloud = read_cloud(tmp_path / "o" / got[0]["file"])
    assert cloud.frame == "zup" and cloud.colors is not None and cloud.colors.any()
    assert cloud.points[:, 0].min() >= 0  # the crop box is in the output frame: in front of the camera
    # the same frame through the library (depth → cloud → zup) has the same points
    from depthcloud.geometry import Unprojector
    from depthcloud.io.depthimage import read_depth

    depth = read_depth(sorted((layout / "depth").iterdir())[1])
    ref = Unprojector(SMALL)(depth).to_frame("zup")
    np.testing.assert_array_equal(cloud.points, ref.points)


def test_voxel_outliers_and_decimation_shrink_the_cloud(tmp_path, capsys):
    folder, camera = depth_folder(tmp_path / "src", 2, intr=Intrinsics.from_fov(96, 72, 70.0))
    plain = tmp_path / "plain"
    assert run(capsys, "export", folder, "--camera", camera, "-o", plain, "--workers", "1")[0] == 0
    small = tmp_path / "small"
    code, _, err = run(capsys, "export", folder, "--camera", camera, "-o", small, "--workers", "1", "--decimation", "2",
                       "--voxel", "0.1", "--outliers", "--spatial", "--holes", "nearest", "--format", "npz")
    assert code == 0, err
    a, b = rows(plain), rows(small)
    assert all(0 < y["points"] < x["points"] / 4 for x, y in zip(a, b, strict=True))


def test_disparity_folder_with_a_rectified_rig(tmp_path, data_dir, capsys):
    scene = need(data_dir, "middlebury_eval3_q")
    sets = sorted(p for p in scene.iterdir() if p.is_dir() and (p / "disp0GT.pfm").is_file())
    if not sets:
        pytest.skip("no Middlebury scene with disp0GT.pfm")
    src = tmp_path / "disp"
    src.mkdir()
    (src / "a.pfm").symlink_to(sets[0] / "disp0GT.pfm")
    code, _, err = run(capsys, "export", f"disparity:{src}", "--camera", sets[0] / "calib.txt", "-o", tmp_path / "o",
                       "--workers", "1")
    assert code == 0, err
    # the same cloud the `disparity` command makes
    code, _, err = run(capsys, "disparity", sets[0] / "disp0GT.pfm", "--calib", sets[0] / "calib.txt",
                       "-o", tmp_path / "ref.ply")
    assert code == 0, err
    assert read_cloud(tmp_path / "o" / rows(tmp_path / "o")[0]["file"]) == read_cloud(tmp_path / "ref.ply")


def test_stereo_pair_folder_with_a_rig(tmp_path, capsys):
    from depthcloud.io.calibfiles import save_rig

    left = Intrinsics.from_fov(96, 64, 60.0)
    rig = StereoRig.from_rectified(left, baseline_m=0.1)
    root = tmp_path / "pairs"
    (root / "left").mkdir(parents=True)
    (root / "right").mkdir()
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (64, 140, 3), dtype=np.uint8)
    for i in range(2):
        write_png(root / "left" / f"{i}.png", texture[:, 20:116])
        write_png(root / "right" / f"{i}.png", texture[:, 8:104])  # a plane 12 px of disparity away
    cam = save_rig(tmp_path / "rig.yaml", rig)
    code, _, err = run(capsys, "export", root, "--camera", cam, "-o", tmp_path / "o", "--workers", "1")
    assert code == 0, err
    cloud = read_cloud(tmp_path / "o" / rows(tmp_path / "o")[0]["file"])
    # the cloud depthcloud.stereo makes of the pair itself
    from depthcloud.stereo import reconstruct

    ref = reconstruct(texture[:, 20:116], texture[:, 8:104], rig).cloud
    assert len(cloud) > 500 and cloud == ref


def test_recording_ranges_seek_and_match_the_whole_run(tmp_path, capsys):
    from depthcloud.frame import Frame
    from depthcloud.sources.replay import RecordingWriter

    rec = tmp_path / "r.dcrec"
    with RecordingWriter(rec) as w:
        for i in range(9):
            depth, color = render_scene(SMALL, i / 10)
            w.write(Frame(depth, SMALL, color, seq=100 + i, stamp=i / 10))
    code, _, err = run(capsys, "export", f"replay:{rec}", "-o", tmp_path / "all", "--workers", "1")
    assert code == 0, err
    code, _, err = run(capsys, "export", rec, "-o", tmp_path / "part", "--workers", "1", "--frames", "4:7")
    assert code == 0, err
    every = outputs(tmp_path / "all")
    part = outputs(tmp_path / "part")
    assert sorted(part) == ["000004_0.400000.ply", "000005_0.500000.ply", "000006_0.600000.ply"]
    assert all(every[k] == v for k, v in part.items())
    assert [r["seq"] for r in rows(tmp_path / "part")] == [104, 105, 106]


def test_a_damaged_recording_frame_is_reported_and_the_rest_exported(tmp_path, capsys):
    from depthcloud.frame import Frame
    from depthcloud.sources.replay import RecordingReader, RecordingWriter

    rec = tmp_path / "r.dcrec"
    with RecordingWriter(rec) as w:
        for i in range(4):
            w.write(Frame(render_scene(SMALL, i / 10)[0], SMALL, seq=i, stamp=float(i)))
    with RecordingReader(rec) as r:
        offsets = r.offsets()
    data = bytearray(rec.read_bytes())
    data[offsets[1] + 20] ^= 0xFF  # flip a byte inside frame 1's payload: its checksum fails
    rec.write_bytes(bytes(data))
    code, _, err = run(capsys, "export", rec, "-o", tmp_path / "o", "--workers", "1")
    assert code == 1 and "r.dcrec frame 1: FormatError" in err and "checksum mismatch" in err
    assert [r["frame"] for r in rows(tmp_path / "o") if r["status"] == "ok"] == [0, 2, 3]


def test_amiga_event_log(tmp_path, data_dir, capsys):
    pytest.importorskip("farm_ng.core.event_pb2")
    from farm_ng.core.event_pb2 import Event
    from farm_ng.core.uri import make_proto_uri

    from depthcloud.amiga.emulator import planes_scene
    from depthcloud.amiga.eventlog import EventLogWriter
    from depthcloud.amiga.messages import oak_calibration_from_json

    calib = oak_calibration_from_json(json.loads(
        need(data_dir, "oak_depthai/calib_oak_d_bw1098obc_14442C10218CCCD200.json").read_text()))
    log = tmp_path / "events.bin"
    with EventLogWriter(log) as w:
        for path, msg in [("/calibration", calib)] + [("/disparity", p.message) for _, p in
                                                      zip(range(5), planes_scene(calib, width=64, height=40), strict=False)]:
            payload = msg.SerializeToString()
            w.write(Event(uri=make_proto_uri(path, msg, service_name="oak0"), payload_length=len(payload)), payload)
    code, _, err = run(capsys, "export", f"amiga:{log}", "-o", tmp_path / "o", "--workers", "1", "--frames", "1:")
    assert code == 0, err
    got = rows(tmp_path / "o")
    assert [r["frame"] for r in got] == [1, 2, 3, 4] and [r["seq"] for r in got] == [1, 2, 3, 4]
    assert all(r["points"] > 0 for r in got)


def test_several_sources_get_a_folder_each(tmp_path, capsys):
    folder, camera = depth_folder(tmp_path / "src", 3)
    code, _, err = run(capsys, "export", folder, "synthetic:40x30", "--camera", camera, "-o", tmp_path / "o",
                       "--workers", "1", "--frames", "0:2", "--format", "pcd")
    assert code == 0, err
    assert sorted(outputs(tmp_path / "o", ".pcd")) == [
        "frames/000000_0.000000.pcd", "frames/000001_1.000000.pcd",
        "synthetic_40x30/000000_0.000000.pcd", "synthetic_40x30/000001_0.033333.pcd"]


@pytest.mark.parametrize("args, needles", [
    (["{folder}", "-o", "{out}", "--format", "e57"], ["InputError: --format: expected one of ply, pcd"]),
    (["{folder}", "-o", "{out}"], ["InputError", "depth images need the camera", "--camera FILE"]),
    (["{folder}", "--camera", "{camera}", "-o", "{out}", "--frames", "5"], ["--frames: expected A:B"]),
    (["{folder}", "--camera", "{camera}", "-o", "{out}", "--frames", "7:3"], ["--frames: expected 0 <= A < B"]),
    (["{folder}", "--camera", "{camera}", "-o", "{out}", "--frames", "a:b"], ["--frames: expected A:B"]),
    (["synthetic:40x30", "-o", "{out}"], ["synthetic: the synthetic scene never ends; give --frames A:B"]),
    (["nope:x", "-o", "{out}"], ["ConfigError", "unknown scheme 'nope'"]),
    (["{missing}", "-o", "{out}"], ["InputError", "no such file or folder"]),
    (["{folder}", "--camera", "{camera}", "-o", "{out}", "--crop", "1,2,3"], ["--crop: expected six numbers"]),
    (["{folder}", "--camera", "{camera}", "-o", "{out}", "--holes", "left"], ["--holes: expected one of"]),
    (["{folder}", "--camera", "{camera}", "-o", "{out}", "--workers", "2", "--scheduler", "tcp://h:1"],
     ["--workers starts a local cluster and --scheduler"]),
    (["{folder}", "--camera", "{camera}", "-o", "{out}", "--resume", "--overwrite"], ["give one"]),
    (["disparity:{folder}", "--camera", "{camera}", "-o", "{out}"], ["is a single camera; this source needs a stereo rig"]),
])
def test_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys, args, needles):
    folder, camera = depth_folder(tmp_path / "src", 1)
    subst = {"folder": folder, "camera": camera, "out": tmp_path / "o", "missing": tmp_path / "missing"}
    code, _, err = run(capsys, "export", *[a.format(**subst) for a in args])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0]
    assert not (tmp_path / "o").exists()  # nothing was started


def test_info_describes_mcap_and_laz(tmp_path, capsys):
    folder, camera = depth_folder(tmp_path / "src", 1)
    for fmt in ("mcap", "laz"):
        assert run(capsys, "export", folder, "--camera", camera, "-o", tmp_path / fmt, "--workers", "1",
                   "--format", fmt)[0] == 0
        code, out, _ = run(capsys, "info", tmp_path / fmt / f"000000_0.000000.{fmt}")
        assert code == 0
        if fmt == "mcap":
            assert "/depthcloud/points (foxglove.PointCloud) × 1" in out and "first point cloud" in out
        else:
            assert "point cloud," in out and "attributes: xyz" in out


def _recording(path: Path, n: int) -> Path:
    from depthcloud.frame import Frame
    from depthcloud.sources.replay import RecordingWriter

    with RecordingWriter(path) as w:
        for i in range(n):
            depth, color = render_scene(SMALL, i / 10)
            w.write(Frame(depth, SMALL, color, seq=i, stamp=i / 10))
    return path


@pytest.mark.parametrize("workers", ["1", "2"])
def test_temporal_filter_sees_every_frame_in_order_whatever_the_workers(tmp_path, capsys, workers):
    from depthcloud.pipeline import CloudOptions, CloudPipeline
    from depthcloud.sources.replay import read_recording

    rec = _recording(tmp_path / "r.dcrec", 8)
    code, _, err = run(capsys, "export", rec, "-o", tmp_path / "o", "--workers", workers, "--temporal", "--every", "3",
                       "--format", "npz")
    assert code == 0, err
    pipeline = CloudPipeline(CloudOptions(temporal=True))
    expected = {i: pipeline(f) for i, f in enumerate(read_recording(rec))}  # the stream, as serve runs it
    got = rows(tmp_path / "o")
    assert [r["frame"] for r in got] == [0, 3, 6]
    for r in got:
        assert read_cloud(tmp_path / "o" / r["file"]) == expected[r["frame"]]


def test_any_registered_source_spec_comes_for_free(tmp_path, capsys, monkeypatch):
    import depthcloud.sources as sources
    from depthcloud.sources.synthetic import SyntheticSource

    def factory(arg: str, **options):
        return SyntheticSource(SMALL, frames=int(arg), **options)

    monkeypatch.setattr(sources, "_REGISTRY", dict(sources._REGISTRY))  # registered for this test only
    sources.register_source("fakecam", factory, syntax="fakecam:N")
    code, _, err = run(capsys, "export", "fakecam:5", "-o", tmp_path / "o", "--workers", "1", "--frames", "2:")
    assert code == 0, err
    got = rows(tmp_path / "o")
    assert [(r["frame"], r["seq"]) for r in got] == [(2, 2), (3, 3), (4, 4)] and got[0]["source"] == "fakecam_5"


def test_a_source_gone_after_planning_is_an_error_row_per_task_and_the_others_go_on(tmp_path, capsys):
    from depthcloud.export import Exporter, open_frames

    rec = _recording(tmp_path / "r.dcrec", 3)
    folder, camera = depth_folder(tmp_path / "src", 2)
    sets = [open_frames(str(rec)), open_frames(str(folder), camera=camera)]
    rec.unlink()  # vanished between planning and reading (a shared disk unmounted, a file moved)
    summary = Exporter(sets, tmp_path / "o", workers=1).run()
    assert summary.written == 2 and summary.failed == 3  # three one-frame tasks, each reports its range
    assert [(s, f) for s, f, _ in summary.failures] == [("r.dcrec", 0), ("r.dcrec", 1), ("r.dcrec", 2)]
    assert all("SourceError" in e and "no such recording" in e and "not exported" in e for _, _, e in summary.failures)
