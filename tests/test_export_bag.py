"""The RealSense .bag exported to LAZ equals, frame by frame, the cloud `serve` makes of it; to MCAP,
the mcap reader finds Foxglove's schemas and the right point counts."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest

from _export_helpers import run
from conftest import need

pytest.importorskip("pyrealsense2")
laspy = pytest.importorskip("laspy")

BAG = "realsense_bag/single_depth_color_640x480.bag"


def served_clouds(spec: str, **config):
    """The clouds `serve` makes of every frame, through the server's own path: its ServeConfig → the
    shared CloudPipeline, prepare() once per frame in order, cloud() at the default decimation."""
    from depthcloud.serve.config import ServeConfig
    from depthcloud.serve.server import CloudPipeline
    from depthcloud.sources import open_source
    from depthcloud.sources.base import SourceEnded

    cfg = ServeConfig(source=spec, **config)
    pipeline = CloudPipeline(cfg.cloud_options())

    async def collect():
        out = []
        async with open_source(cfg.source, realtime=False) as src:
            while True:
                try:
                    frame = await src.next_frame(timeout_s=20)
                except SourceEnded:
                    return out
                out.append((frame.seq, frame.stamp, pipeline.cloud(pipeline.prepare(frame), cfg.decimation)))

    return asyncio.run(collect())


def test_bag_to_laz_equals_what_serve_serves(data_dir, tmp_path, capsys):
    bag = need(data_dir, BAG)
    code, _out, err = run(capsys, "export", f"bag:{bag}", "-o", tmp_path / "laz", "--format", "laz", "--workers", "1",
                         "--decimation", "2", "--frame", "zup", "--max-depth", "4", "--spatial")
    assert code == 0, err
    served = served_clouds(f"bag:{bag}", decimation=2, frame="zup", max_depth_m=4.0, spatial=True)
    rows = [json.loads(line) for line in (tmp_path / "laz" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == len(served) == 2  # the bag holds two depth frames
    for row, (seq, stamp, cloud) in zip(rows, served, strict=True):
        assert row["status"] == "ok" and row["seq"] == seq and row["points"] == len(cloud) > 10_000
        las = laspy.read(tmp_path / "laz" / row["file"])
        assert las.header.are_points_compressed and las.header.point_format.id == 7
        xyz = np.stack([las.x, las.y, las.z], axis=1)
        # the same points in the same order, to half the LAS step (0.05 mm) and float32 rounding
        assert np.abs(xyz - cloud.points.astype(np.float64)).max() <= 0.5e-4 + 1e-6
        np.testing.assert_array_equal(las.gps_time, stamp)
        assert float(las.header.offsets.max()) < 10  # offsets chosen from the data, near the camera
        # Colour: librealsense delivers the bag's one colour frame to depth frames in varying order,
        # so a frame has colour in one reading and not in the other; where both have it, it is equal.
        if cloud.colors is not None and las.red.any():
            np.testing.assert_array_equal(np.stack([las.red, las.green, las.blue], axis=1) >> 8, cloud.colors)


def test_bag_to_mcap_reads_back_with_foxglove_schemas(data_dir, tmp_path, capsys):
    pytest.importorskip("mcap_protobuf")
    from mcap.reader import make_reader
    from mcap_protobuf.decoder import DecoderFactory

    bag = need(data_dir, BAG)
    code, _, err = run(capsys, "export", str(bag), "-o", tmp_path / "m", "--format", "mcap", "--workers", "1",
                       "--decimation", "4")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "m" / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        reader = make_reader(io.BytesIO((tmp_path / "m" / row["file"]).read_bytes()),
                             decoder_factories=[DecoderFactory()])
        found = {c.topic: (s.name, p) for s, c, _, p in reader.iter_decoded_messages()}
        assert found["/depthcloud/points"][0] == "foxglove.PointCloud"
        assert found["/depthcloud/calibration"][0] == "foxglove.CameraCalibration"
        assert found["/tf"][0] == "foxglove.FrameTransform"
        pc = found["/depthcloud/points"][1]
        assert len(pc.data) // pc.point_stride == row["points"] > 1000
        cal = found["/depthcloud/calibration"][1]
        assert (cal.width, cal.height) == (640, 480)  # the camera of the full-resolution frame
        if "/depthcloud/color" in found:
            assert found["/depthcloud/color"][0] == "foxglove.RawImage"
    # and one recording of both frames, in order, that plays in Foxglove as one file
    rec = tmp_path / "m" / f"{bag.name}.mcap"
    reader = make_reader(io.BytesIO(rec.read_bytes()), decoder_factories=[DecoderFactory()])
    clouds = [(m.log_time, p) for s, _, m, p in reader.iter_decoded_messages() if s.name == "foxglove.PointCloud"]
    assert [len(p.data) // p.point_stride for _, p in clouds] == [r["points"] for r in rows]
    assert [t for t, _ in clouds] == sorted(round(r["stamp"] * 1e9) for r in rows)
    summary = reader.get_summary()
    assert sorted(s.name for s in summary.schemas.values()) == sorted(
        {"foxglove.PointCloud", "foxglove.FrameTransform", "foxglove.CameraCalibration"}
        | ({"foxglove.RawImage"} if any(c.topic == "/depthcloud/color" for c in summary.channels.values()) else set()))
