"""`depthcloud info` on recordings it did not describe before (issue 14, defect 11): a RealSense .bag and
an Amiga event log (.bin) said "expected a text calibration file"."""

from __future__ import annotations

import json
from itertools import islice

import pytest
from tests.conftest import need, write_event_log

from depthcloud.cli import main


def test_info_describes_a_realsense_bag(data_dir, capsys):
    bag = need(data_dir, "realsense_bag/single_depth_color_640x480.bag")
    assert main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "RealSense recording (ROS bag 2.0), 1.03 MB, 2 chunk(s) (lz4)" in out
    assert "0.168 s of recording" in out
    assert "stream Depth_0: 2 frame(s)" in out and "stream Color_0: 1 frame(s)" in out


def test_info_on_a_corrupt_bag_is_one_line(tmp_path, capsys):
    (tmp_path / "x.bag").write_bytes(b"#ROSBAG V2.0\n\xff\xff\xff\x7f")
    assert main(["info", str(tmp_path / "x.bag")]) == 2
    assert "x.bag: byte 13: record header length" in capsys.readouterr().err


def test_info_describes_an_amiga_event_log(data_dir, tmp_path, capsys):
    pytest.importorskip("farm_ng.core.event_pb2")
    from depthcloud.amiga.emulator import planes_scene
    from depthcloud.amiga.messages import oak_calibration_from_json

    calib = oak_calibration_from_json(json.loads(need(
        data_dir, "oak_depthai/calib_oak_d_bw1098obc_14442C10218CCCD200.json").read_text()))
    write_event_log(tmp_path / "oak0.bin", calib, [p.message for p in islice(planes_scene(calib), 5)])
    assert main(["info", str(tmp_path / "oak0.bin")]) == 0
    out = capsys.readouterr().out
    assert "farm-ng event log (Amiga), 6 record(s)" in out
    assert "stream /disparity (OakFrame): 5 message(s)" in out
    assert "stream /calibration (OakCalibration): 1 message(s)" in out
