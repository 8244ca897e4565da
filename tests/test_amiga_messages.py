"""OAK messages: the project's own schema against farm-ng-amiga's, calibration JSON → OakCalibration,
and disparity images as the camera service encodes them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import need
from depthcloud.amiga.client import disparity_model
from depthcloud.amiga.emulator import planes_disparity
from depthcloud.amiga.messages import (
    decode_disparity,
    encode_disparity,
    oak_calibration_from_json,
    oak_messages,
    read_oak_calibration,
)
from depthcloud.errors import CalibrationError, FormatError, InputError

OAK_JSONS = {
    # file: (left→right translation in cm from SOURCE.md, right fx at 1280x800)
    "calib_oak_d_bw1098obc_14442C10218CCCD200.json": ((-7.550, -0.117, 0.050), 854.60),
    "calib_oak_d_people_counting.json": ((-7.377, 0.231, 0.027), 810.88),
    "calib_oak_d_pro_af_18443010F116631200.json": ((-8.446, 0.047, -0.033), 800.32),
    "recording_test_board/calib.json": ((-13.129, 0.674, -0.050), 3457.82),
}



def _load(data_dir, name):
    return json.loads(need(data_dir, f"oak_depthai/{name}").read_text())


# -- the schema -------------------------------------------------------------------------------------


def test_own_schema_matches_installed_field_for_field():
    """Every field of the own schema has the number, type and label of farm-ng-amiga's oak.proto."""
    pytest.importorskip("farm_ng.oak.oak_pb2")
    real, own = oak_messages(installed=True), oak_messages(installed=False)
    assert (real.origin, own.origin) == ("farm_ng.oak", "depthcloud")
    seen = 0
    stack = [(own.OakCalibration.DESCRIPTOR, real.OakCalibration.DESCRIPTOR),
             (own.OakFrame.DESCRIPTOR, real.OakFrame.DESCRIPTOR)]
    done = set()
    while stack:
        mine, theirs = stack.pop()
        if mine.full_name in done:
            continue
        done.add(mine.full_name)
        assert mine.full_name == theirs.full_name
        if mine.full_name.startswith("farm_ng.oak."):
            assert mine.file.name == "farm_ng/oak/oak.proto"
        assert mine.file.name == theirs.file.name
        for f in mine.fields:
            ref = theirs.fields_by_number[f.number]
            assert (f.name, f.type, f.label, f.json_name) == (ref.name, ref.type, ref.label, ref.json_name)
            if f.message_type is not None:
                assert f.message_type.full_name == ref.message_type.full_name
                stack.append((f.message_type, ref.message_type))
            if f.enum_type is not None:
                assert [(e.name, e.number) for e in f.enum_type.values] == [
                    (e.name, e.number) for e in ref.enum_type.values]
            seen += 1
        assert len(mine.fields) == len(theirs.fields), mine.full_name
    assert seen >= 50


def test_wire_round_trip_both_ways_keeps_every_byte():
    pytest.importorskip("farm_ng.oak.oak_pb2")
    real, own = oak_messages(installed=True), oak_messages(installed=False)
    frame = real.OakFrame(image_data=b"\xff\xd8xyz\xff\xd9")
    frame.meta.sequence_num = 41
    frame.meta.timestamp = 1234.5
    frame.meta.settings.exposure_time = 800
    frame.meta.encoder_options.vbr_or_mjpeg_quality = 95
    frame.meta.resolution.width = 640
    wire = frame.SerializeToString()
    mine = own.OakFrame.FromString(wire)
    assert (mine.meta.sequence_num, mine.meta.timestamp, mine.image_data) == (41, 1234.5, frame.image_data)
    assert mine.SerializeToString() == wire
    assert real.OakFrame.FromString(mine.SerializeToString()) == frame


def test_own_schema_and_installed_live_in_one_process():
    # Both must be importable together (the own schema sits in a private descriptor pool).
    pytest.importorskip("farm_ng.oak.oak_pb2")
    from farm_ng.oak import oak_pb2

    own = oak_messages(installed=False)
    assert own.OakFrame is not oak_pb2.OakFrame
    assert own.OakFrame.DESCRIPTOR.full_name == oak_pb2.OakFrame.DESCRIPTOR.full_name


def test_environment_variable_forces_the_own_schema(monkeypatch):
    oak_messages.cache_clear()
    monkeypatch.setenv("DEPTHCLOUD_AMIGA_OWN_SCHEMA", "1")
    try:
        assert oak_messages().origin == "depthcloud"
    finally:
        oak_messages.cache_clear()


# -- calibration ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OAK_JSONS))
@pytest.mark.parametrize("own", [False, True], ids=["oak_pb2", "own-schema"])
def test_each_oak_json_gives_the_baseline_of_source_md(data_dir, name, own):
    (tx, ty, tz), fx_right = OAK_JSONS[name]
    calib = oak_calibration_from_json(_load(data_dir, name), messages=oak_messages(installed=not own))
    model = disparity_model(calib, 640, 400)
    expected_cm = float(np.linalg.norm([tx, ty, tz]))
    assert model.baseline_m * 100 == pytest.approx(expected_cm, abs=2e-3)
    # Intrinsics of socket 2 (right), scaled from 1280x800 to 640x400.
    assert model.intrinsics.fx == pytest.approx(fx_right / 2, abs=0.01)
    assert model.intrinsics.shape == (400, 640)
    assert not model.intrinsics.is_distorted


def test_cameras_are_picked_by_socket_not_list_order(data_dir):
    doc = _load(data_dir, "calib_oak_d_pro_af_18443010F116631200.json")
    assert [c[0] for c in doc["cameraData"]] == [2, 0, 1]  # the list starts with the right camera
    calib = oak_calibration_from_json(doc)
    assert [c.camera_number for c in calib.camera_data] == [2, 0, 1]
    left = disparity_model(calib, 1280, 800, align_socket=1)
    right = disparity_model(calib, 1280, 800, align_socket=2)
    assert left.intrinsics.fx == pytest.approx(801.53, abs=0.01)
    assert left.intrinsics.cx == pytest.approx(647.38, abs=0.01)
    assert right.intrinsics.fx == pytest.approx(800.32, abs=0.01)
    # Shuffling the list changes nothing.
    doc["cameraData"] = doc["cameraData"][::-1]
    shuffled = disparity_model(oak_calibration_from_json(doc), 1280, 800, align_socket=1)
    assert shuffled.intrinsics == left.intrinsics


def test_calibration_matrices_are_flat_row_major_and_translations_stay_cm(data_dir):
    doc = _load(data_dir, "calib_oak_d_bw1098obc_14442C10218CCCD200.json")
    calib = oak_calibration_from_json(doc)
    left = next(c for c in calib.camera_data if c.camera_number == 1)
    K = doc["cameraData"][0][1]["intrinsicMatrix"]
    assert list(left.intrinsic_matrix) == pytest.approx([x for row in K for x in row])
    assert (left.intrinsic_matrix[0], left.intrinsic_matrix[2], left.intrinsic_matrix[5]) == pytest.approx(
        (860.69, 644.09, 398.37), abs=0.01)
    assert left.extrinsics.to_camera_socket == 2
    assert left.extrinsics.translation.x == pytest.approx(-7.550, abs=1e-3)
    assert len(left.distortion_coeff) == 14
    assert len(calib.stereo_rectification_data.rectified_rotation_left) == 9


def test_protobuf_json_form_round_trips(data_dir):
    from google.protobuf.json_format import MessageToDict

    calib = oak_calibration_from_json(_load(data_dir, "calib_oak_d_people_counting.json"))
    for snake in (False, True):
        again = oak_calibration_from_json(MessageToDict(calib, preserving_proto_field_name=snake))
        assert again == calib


def test_read_oak_calibration_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_oak_calibration(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"cameraData": [')
    with pytest.raises(FormatError, match=r"bad\.json: line 1: not valid JSON"):
        read_oak_calibration(bad)
    bad.write_text('{"boardName": "x"}')
    with pytest.raises(FormatError, match=r"bad\.json: key 'cameraData': missing"):
        read_oak_calibration(bad)
    bad.write_text('{"cameraData": [[1, {"intrinsicMatrix": [[1, 2], [3, 4]]}]]}')
    with pytest.raises(FormatError, match=r"cameraData\[0\]\.intrinsicMatrix.*expected 9 numbers"):
        read_oak_calibration(bad)
    bad.write_text('{"cameraData": [[1, {"width": 10}]], "nonsense": 1}')
    with pytest.raises(FormatError, match=r"not an OAK calibration.*nonsense"):
        read_oak_calibration(bad)


def test_calibration_without_the_needed_camera(data_dir):
    doc = _load(data_dir, "recording_test_board/calib.json")  # sockets 1 and 2 only
    calib = oak_calibration_from_json(doc)
    with pytest.raises(CalibrationError, match=r"no camera at socket 0; sockets present: 1, 2"):
        disparity_model(calib, 640, 400, align_socket=0)
    doc["cameraData"] = [c for c in doc["cameraData"] if c[0] != 2]
    with pytest.raises(CalibrationError, match=r"no camera at socket 2; sockets present: 1$"):
        disparity_model(oak_calibration_from_json(doc), 640, 400)


# -- disparity images -------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_lossless_encodings_round_trip_exactly(encoding, rng):
    d = rng.integers(0, 256, size=(7, 13), dtype=np.uint8)
    data = encode_disparity(d, encoding=encoding)
    out = decode_disparity(data, width=13, height=7)
    assert out.dtype == np.uint8 and out.shape == (7, 13)
    np.testing.assert_array_equal(out, d)


def test_jpeg_error_is_confined_to_plane_edges():
    """The quantisation the loopback tests allow: at quality 95 whole 8×8 blocks inside a plane decode
    exactly; blocks across an edge may be off by one level."""
    d = planes_disparity(640, 400, 427.3, 0.0755, (0.5, 1.0, 2.0))
    err = decode_disparity(encode_disparity(d, quality=95)).astype(int) - d
    assert np.abs(err).max() <= 1
    edges = (213, 427)
    inner = np.ones(640, bool)
    for x in edges:
        inner[x - 8:x + 8] = False
    assert np.abs(err[:, inner]).max() == 0


def test_decode_takes_channel_zero_of_a_colour_jpeg():
    import cv2

    d = np.full((16, 24), 37, np.uint8)
    ok, buf = cv2.imencode(".jpg", np.dstack([d, d, d]))
    assert ok
    out = decode_disparity(buf.tobytes())
    assert out.shape == (16, 24) and int(out[8, 8]) == 37


def test_degenerate_sizes_round_trip():
    for shape in [(1, 1), (1, 9), (9, 1)]:
        d = np.full(shape, 5, np.uint8)
        for enc in ("jpeg", "png", "raw"):
            out = decode_disparity(encode_disparity(d, encoding=enc), width=shape[1], height=shape[0])
            assert out.shape == shape
            assert np.abs(out.astype(int) - 5).max() <= 1


def test_corrupt_disparity_is_refused():
    good = encode_disparity(np.full((8, 8), 9, np.uint8))
    with pytest.raises(FormatError, match="truncated"):
        decode_disparity(good[: len(good) // 2])
    with pytest.raises(FormatError, match="does not decode"):
        decode_disparity(b"\xff\xd8" + b"\x00" * 50 + b"\xff\xd9")
    with pytest.raises(FormatError, match="neither JPEG nor PNG"):
        decode_disparity(b"\x01\x02\x03")
    with pytest.raises(FormatError, match=r"expected 2x2 = 4 bytes, got 3"):
        decode_disparity(b"\x01\x02\x03", width=2, height=2)
    with pytest.raises(FormatError, match="empty"):
        decode_disparity(b"")
    with pytest.raises(InputError, match="expected bytes"):
        decode_disparity("text")  # type: ignore[arg-type]


def test_encode_refuses_what_the_camera_cannot_send():
    with pytest.raises(InputError, match="uint8"):
        encode_disparity(np.zeros((4, 4), np.uint16))
    with pytest.raises(InputError, match=r"expected shape \(H, W\)"):
        encode_disparity(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="encoding"):
        encode_disparity(np.zeros((4, 4), np.uint8), encoding="webp")
    with pytest.raises(InputError, match="quality"):
        encode_disparity(np.zeros((4, 4), np.uint8), quality=0)


def test_without_farm_ng_amiga_the_own_schema_is_used(monkeypatch):
    """farm-ng-core alone suffices: with farm_ng.oak unimportable the default falls back."""
    import sys

    from depthcloud.errors import MissingDependencyError

    oak_messages.cache_clear()
    monkeypatch.delenv("DEPTHCLOUD_AMIGA_OWN_SCHEMA", raising=False)
    monkeypatch.setitem(sys.modules, "farm_ng.oak.oak_pb2", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "farm_ng.oak", None)
    try:
        msgs = oak_messages()
        assert msgs.origin == "depthcloud"
        frame = msgs.OakFrame(image_data=encode_disparity(np.full((4, 4), 7, np.uint8), encoding="png"))
        assert decode_disparity(msgs.OakFrame.FromString(frame.SerializeToString()).image_data)[0, 0] == 7
        with pytest.raises(MissingDependencyError, match=r"pip install 'depthcloud\[amiga\]'"):
            oak_messages(installed=True)
    finally:
        oak_messages.cache_clear()
