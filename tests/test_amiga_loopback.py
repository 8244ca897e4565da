"""Client ↔ emulator over real gRPC on 127.0.0.1 (ports chosen free at run time), farm-ng-core's own
EventClient against the emulator, recording and replaying event logs, and the amiga: source."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from itertools import islice

import cv2
import numpy as np
import pytest

from conftest import need, write_event_log
from depthcloud.amiga.client import OakClient, ServiceConfig, record
from depthcloud.amiga.emulator import OakEmulator, Published, planes_disparity, planes_scene, recording_scene
from depthcloud.amiga.eventlog import read_event_log
from depthcloud.amiga.messages import oak_calibration_from_json, oak_messages
from depthcloud.camera import StereoRig
from depthcloud.errors import SourceError, SourceTimeout

pytest.importorskip("farm_ng.core.event_service")

DEPTHS = (0.5, 1.0, 2.0)  # plane edges at columns 213 and 427: not on JPEG's 8-pixel grid
CALIB = "oak_depthai/calib_oak_d_bw1098obc_14442C10218CCCD200.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=[True, False], ids=["oak_pb2", "own-schema"])
def messages(request):
    if request.param:
        pytest.importorskip("farm_ng.oak.oak_pb2")
    return oak_messages(installed=request.param)


@pytest.fixture
def calibration(data_dir, messages):
    return oak_calibration_from_json(json.loads(need(data_dir, CALIB).read_text()), messages=messages)


def client_for(emu: OakEmulator, *, timeout_s: float = 5.0, messages=None) -> OakClient:
    return OakClient(ServiceConfig(emu.name, "127.0.0.1", emu.port), timeout_s=timeout_s, messages=messages)


@pytest.mark.parametrize("name", ["oak0", "oak/1"])
async def test_planes_come_back_at_f_b_over_d(calibration, messages, name):
    scene = planes_scene(calibration, depths_m=DEPTHS, messages=messages)
    async with OakEmulator(calibration, scene, name=name, fps=50, messages=messages) as emu, client_for(emu, messages=messages) as client:
        frame = await anext(client.frames())
        calib = await client.calibration()
    assert calib == calibration
    assert frame.frame_id == name and frame.depth.shape == (400, 640)
    intr = frame.intrinsics
    B = 0.0755104  # |(-7.550, -0.117, 0.050)| cm, SOURCE.md
    fb = intr.fx * B
    assert intr.fx == pytest.approx(854.60 / 2, abs=0.01)
    edges = np.linspace(0, 640, len(DEPTHS) + 1).round().astype(int)
    for z_true, a, b in zip(DEPTHS, edges[:-1], edges[1:], strict=True):
        d_int = round(fb / z_true)  # 8-bit whole-pixel disparity, as the camera sends
        band = frame.depth[:, a:b]
        # Whole JPEG blocks inside a plane decode exactly: Z = f·B/d, d = round(f·B/Z).
        inner = frame.depth[:, ((a + 15) // 8) * 8:((b - 8) // 8) * 8]
        np.testing.assert_allclose(inner, fb / d_int, rtol=1e-6)
        assert abs(fb / d_int - z_true) <= fb / (fb / z_true - 0.5) - z_true
        # Everywhere else JPEG may move d by one level: Z stays within f·B/(d ± 1).
        assert band.min() >= fb / (d_int + 1) - 1e-6 and band.max() <= fb / (d_int - 1) + 1e-6


async def test_points_match_opencv_reprojection_of_the_same_frame(calibration, messages):
    scene = planes_scene(calibration, depths_m=DEPTHS, messages=messages)
    async with OakEmulator(calibration, scene, fps=50, messages=messages) as emu, client_for(emu, messages=messages) as client:
        item = await anext(client.disparity())
        frame = await anext(client.frames())
    from depthcloud.amiga.client import disparity_model

    model = disparity_model(calibration, 640, 400)
    cloud = model.cloud(item.disparity)
    # OpenCV's Q uses one focal length: compare X and Z (Y scales with fy, which differs slightly).
    Q = StereoRig.from_rectified(model.intrinsics, model.baseline_m).Q
    ref = cv2.reprojectImageTo3D(item.disparity.astype(np.float32), Q)
    keep = (ref[..., 2] >= 0.2) & (ref[..., 2] <= 7.5) & (item.disparity > 0)
    np.testing.assert_allclose(cloud.points[:, [0, 2]], ref[keep][:, [0, 2]], rtol=1e-5)
    np.testing.assert_array_equal(frame.depth, model.depth(item.disparity))


async def test_every_n_is_honoured(calibration, messages):
    scene = planes_scene(calibration, messages=messages)
    async with OakEmulator(calibration, scene, fps=100, messages=messages) as emu, client_for(emu, messages=messages) as client:
        items = [item async for item in _take(client.disparity(every_n=3), 5)]
    seqs = [i.event_sequence for i in items]
    assert all(s % 3 == 0 for s in seqs)
    assert np.diff(seqs).tolist() == [3, 3, 3, 3]
    assert [i.sequence_num for i in items] == seqs  # the OAK's own counter agrees


async def _take(aiter, n):
    async for item in aiter:
        yield item
        n -= 1
        if n == 0:
            return


async def test_farm_ng_core_event_client_alone_gets_calibration_and_frames(data_dir):
    """A client written only with farm-ng-core's EventClient, as farm-ng's example uses it."""
    from farm_ng.core.event_client import EventClient
    from farm_ng.core.event_service_pb2 import EventServiceConfig, SubscribeRequest
    from farm_ng.core.uri_pb2 import Uri
    from google.protobuf.empty_pb2 import Empty

    oak_pb2 = pytest.importorskip("farm_ng.oak.oak_pb2")
    calib = oak_calibration_from_json(json.loads(need(data_dir, CALIB).read_text()))
    for name, path in [("oak0", "/disparity"), ("oak/1", "oak/1/disparity")]:
        async with OakEmulator(calib, planes_scene(calib), name=name, fps=50) as emu:
            config = EventServiceConfig(name=name, port=emu.port, host="127.0.0.1")
            client = EventClient(config)
            reply = await asyncio.wait_for(client.request_reply("/calibration", Empty(), decode=True), 5)
            assert isinstance(reply, oak_pb2.OakCalibration)
            assert reply.board_name == "BW1098OBC" and len(reply.camera_data) == 3
            got = []
            request = SubscribeRequest(uri=Uri(path=path, query=f"service_name={name}"), every_n=2)
            stream = client.subscribe(request, decode=True)
            for _ in range(3):
                event, message = await asyncio.wait_for(anext(stream), 5)
                got.append((event.uri.path, event.sequence, message))
            await stream.aclose()
            await client.channel.close()
        assert all(p == path for p, _, _ in got)
        assert all(isinstance(m, oak_pb2.OakFrame) for _, _, m in got)
        assert [s % 2 for _, s, _ in got] == [0, 0, 0]
        image = cv2.imdecode(np.frombuffer(got[0][2].image_data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape == (400, 640) and got[0][2].meta.resolution.width == 640


async def test_record_then_replay_gives_the_same_payloads(calibration, messages, tmp_path):
    scene = planes_scene(calibration, messages=messages)
    async with OakEmulator(calibration, scene, name="oak/1", fps=50, messages=messages) as emu, client_for(emu, messages=messages) as client:
        summary = await record(client, tmp_path / "rec.bin", frames=6)
    assert summary.counts == {"disparity": 6, "calibration": 1}
    first, problem = read_event_log(tmp_path / "rec.bin")
    assert problem is None and len(first) == 7

    rec = recording_scene(tmp_path / "rec.bin", messages=messages)
    assert rec.calibration == calibration and len(rec.frames) == 6 and rec.problem is None
    async with OakEmulator(rec.calibration, rec.frames, name="oak/1", fps=50, wait_for_client=True,
                           messages=messages) as emu, client_for(emu, messages=messages) as client:
        await record(client, tmp_path / "again.bin", frames=6)
    second, _ = read_event_log(tmp_path / "again.bin")
    assert [r.payload for r in second] == [r.payload for r in first]  # bit-exact, calibration included
    assert [r.path for r in second[1:]] == ["oak/1/disparity"] * 6


async def test_corrupt_frames_are_skipped_counted_and_reported(calibration, messages):
    good = list(islice(planes_scene(calibration, messages=messages), 4))
    cut = messages.OakFrame()
    cut.CopyFrom(good[1].message)
    cut.image_data = cut.image_data[: len(cut.image_data) // 2]
    junk = messages.OakFrame(image_data=b"not an image")
    frames = [good[0], Published("disparity", cut), good[2], Published("disparity", junk), good[3]]
    async with OakEmulator(calibration, frames, fps=50, wait_for_client=True, messages=messages) as emu, client_for(emu, timeout_s=2, messages=messages) as client:
        items = [i async for i in _take(client.disparity(), 3)]
    assert [i.sequence_num for i in items] == [0, 2, 3]
    assert client.stats.corrupt == 2 and client.stats.decoded == 3
    report = client.stats.report()
    assert "3 frames decoded, 2 corrupt skipped" in report
    assert re.search(r"event \d+: JPEG disparity is truncated \(no end-of-image marker\); event \d+: image_data "
                     r"\(12 bytes\) is neither JPEG nor PNG", report)


async def test_no_service_is_a_clean_timeout():
    port = free_port()
    client = OakClient(ServiceConfig("oak0", "127.0.0.1", port), timeout_s=0.5)
    with pytest.raises(SourceTimeout, match=rf"no answer from the OAK service 'oak0' at 127\.0\.0\.1:{port} within 0\.5 s"):
        await client.calibration()
    await client.close()


async def test_silent_service_times_out_waiting_for_frames(calibration, messages):
    async with OakEmulator(calibration, [], fps=50, messages=messages) as emu, client_for(emu, timeout_s=0.5, messages=messages) as client:
        assert (await client.calibration()) == calibration
        with pytest.raises(SourceTimeout, match="waiting for /disparity"):
            await anext(client.disparity())


async def test_emulator_refuses_a_port_in_use(calibration):
    async with OakEmulator(calibration, []) as first:
        with pytest.raises(SourceError, match=rf"cannot listen on 127\.0\.0\.1:{first.port}"):
            await OakEmulator(calibration, [], port=first.port).start()


def test_emulator_refuses_bad_arguments(calibration):
    from depthcloud.errors import InputError

    with pytest.raises(InputError, match="expected an OakCalibration"):
        OakEmulator({}, [])
    with pytest.raises(InputError, match="service name"):
        OakEmulator(calibration, [], name="/")
    with pytest.raises(InputError, match="loop=True needs a list"):
        OakEmulator(calibration, iter([]), loop=True)
    with pytest.raises(InputError, match="fps"):
        OakEmulator(calibration, [], fps=0)
    with pytest.raises(InputError, match=r"disparity 1089 px, outside"):
        planes_disparity(64, 48, 430.0, 0.1, [0.0395])


async def test_amiga_source_live_and_replayed(calibration, tmp_path):
    from depthcloud.sources import open_source

    async with OakEmulator(calibration, planes_scene(calibration), fps=50) as emu:
        cfg = tmp_path / "service_config.json"
        cfg.write_text(json.dumps({"name": "oak0", "port": emu.port, "host": "127.0.0.1"}))
        async with open_source(f"amiga:{cfg}", timeout_s=5) as source:
            frame = await source.next_frame(timeout_s=5)
            assert frame.depth.shape == (400, 640) and frame.depth.max() > 0
        async with client_for(emu) as client:
            await record(client, tmp_path / "rec.bin", frames=3)
    async with open_source(f"amiga:{tmp_path / 'rec.bin'}") as replay:
        frames = [f async for f in replay]
    assert len(frames) == 3  # a recording played as fast as it is read loses nothing
    assert frames[-1].depth.shape == (400, 640)


async def test_amiga_replay_delivers_every_recorded_frame(calibration, tmp_path):
    """Issue 14: open_source("amiga:oak0.bin") delivered 2 of 20 frames (newest-frame-wins on a file
    read as fast as possible); a consumer that keeps up, even a slow one, now gets all of them."""
    from depthcloud.sources import open_source

    write_event_log(tmp_path / "oak0.bin", calibration, [p.message for p in islice(planes_scene(calibration), 20)])
    async with open_source(f"amiga:{tmp_path / 'oak0.bin'}") as replay:
        seqs = []
        async for f in replay:
            seqs.append(f.seq)
            await asyncio.sleep(0.001)  # a consumer slower than the file
        assert replay.stats.dropped == 0
    assert seqs == list(range(20))
    # Paced (fps) it behaves like a live camera: newest frame wins, nothing waits for the consumer.
    async with open_source(f"amiga:{tmp_path / 'oak0.bin'}", fps=1000) as paced:
        assert not paced.lossless


async def test_truncated_recording_replays_what_is_whole(calibration, tmp_path):
    async with OakEmulator(calibration, planes_scene(calibration), fps=50) as emu, client_for(emu) as client:
        await record(client, tmp_path / "rec.bin", frames=4)
    data = (tmp_path / "rec.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-100])
    rec = recording_scene(tmp_path / "cut.bin")
    assert len(rec.frames) == 3
    assert "the payload is cut" in rec.problem and "4 whole records read" in rec.problem


async def test_replay_source_skips_corrupt_frames_and_needs_a_calibration(calibration, tmp_path):
    from depthcloud.amiga.client import ClientStats
    from depthcloud.amiga.source import replay_frames
    from depthcloud.errors import FormatError

    frames = [p.message for p in islice(planes_scene(calibration), 3)]
    frames[1].image_data = b"\xff\xd8 cut"

    write_event_log(tmp_path / "log.bin", calibration, frames)
    stats = ClientStats()
    got = [f async for f in replay_frames(tmp_path / "log.bin", stats=stats)]
    assert [f.seq for f in got] == [0, 2]
    assert (stats.decoded, stats.corrupt) == (2, 1) and "frame 1: JPEG disparity is truncated" in stats.report()

    write_event_log(tmp_path / "nocal.bin", None, frames[:1])
    with pytest.raises(FormatError, match=r"nocal\.bin: no OakCalibration in this event log"):
        _ = [f async for f in replay_frames(tmp_path / "nocal.bin")]


def test_record_reads_an_amiga_recording_to_its_end(calibration, tmp_path, capsys):
    """`record --source amiga:FILE.bin` needs no --frames: it is a recording, read to its end, every frame."""
    from depthcloud.cli import main
    from depthcloud.sources.replay import read_recording

    write_event_log(tmp_path / "oak0.bin", calibration, [p.message for p in islice(planes_scene(calibration), 12)])
    assert main(["record", "--source", f"amiga:{tmp_path / 'oak0.bin'}", "-o", str(tmp_path / "oak.dcrec")]) == 0
    assert "recorded 12 frames" in capsys.readouterr().out
    assert [f.seq for f in read_recording(tmp_path / "oak.dcrec")] == list(range(12))
