"""Fuzzing the calibration parsers: whatever the input, the only error is a FormatError."""

from __future__ import annotations

import contextlib
import json
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depthcloud.errors import FormatError
from depthcloud.io.calibfiles import (
    load_calibration,
    parse_depthai,
    parse_middlebury_calib,
    parse_ros_camera_info,
    read_opencv_storage,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MIDDLEBURY = (
    "cam0=[ 1038.018 0 322.037 ; 0 1038.018 243.393 ; 0 0 1 ] \n"
    "cam1=[1038.018 0 375.308; 0 1038.018 243.393; 0 0 1]\n"
    " doffs= 53.271 \nbaseline= 176.252\n width= 718\nheight= 496\n ndisp= 73\n isint=0\n vmin= 8 \nvmax= 65\n"
    " dyavg= 0.184\n dymax= 0.423\n"
)

ROS = (
    "image_width: 64\nimage_height: 48\ncamera_name: cam\n"
    "camera_matrix:\n  rows: 3\n  cols: 3\n  data: [500.5, 0.0, 31.5, 0.0, 480.25, 23.5, 0.0, 0.0, 1.0]\n"
    "distortion_model: plumb_bob\n"
    "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.1, -0.2, 0.001, 0.002, 0.0]\n"
    "rectification_matrix:\n  rows: 3\n  cols: 3\n  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]\n"
    "projection_matrix:\n  rows: 3\n  cols: 4\n  data: [500.5, 0.0, 31.5, 0.0, 0.0, 480.25, 23.5, 0.0, 0.0, 0.0, 1.0, 0.0]\n"
)

OPENCV = (
    "%YAML:1.0\n---\ndepthcloud_format: 1\nkind: camera\nimage_width: 64\nimage_height: 48\n"
    "camera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n"
    "   data: [ 500.5, 0., 31.5, 0., 480.25, 23.5, 0., 0., 1. ]\n"
    "distortion_model: opencv\n"
    "distortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n"
    "   data: [ 0.1, -0.2, 1.0e-03, 2.0e-03, 0. ]\n"
    "metadata:\n   rms: 0.25\n   note: \"x\"\n"
)

OAK = json.dumps({
    "boardName": "OAK-D",
    "cameraData": [
        [1, {"intrinsicMatrix": [[800.0, 0.0, 640.0], [0.0, 800.0, 400.0], [0.0, 0.0, 1.0]],
             "distortionCoeff": [0.1] + [0.0] * 13, "width": 1280, "height": 800,
             "extrinsics": {"rotationMatrix": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                            "translation": {"x": -7.5, "y": 0.0, "z": 0.0}, "toCameraSocket": 2}}],
        [2, {"intrinsicMatrix": [[800.0, 0.0, 640.0], [0.0, 800.0, 400.0], [0.0, 0.0, 1.0]],
             "distortionCoeff": [0.0] * 14, "width": 1280, "height": 800,
             "extrinsics": {"rotationMatrix": [], "translation": {"x": 0, "y": 0, "z": 0}, "toCameraSocket": -1}}],
    ],
    "stereoRectificationData": {"leftCameraSocket": 1, "rightCameraSocket": 2},
})

# Characters that matter to these formats, so mutations hit the grammar and not only the numbers.
SYNTAX = st.sampled_from([*list("=[];,.:-+eE0123456789 \t\n\r{}\"'!#%<>/xX"), "nan", "inf", "1e999", "\x00", "é"])


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    """``base`` with a few random deletions, insertions and replacements."""
    s = base
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(s)))
        j = draw(st.integers(i, min(len(s), i + 8)))
        piece = draw(st.one_of(SYNTAX, st.text(max_size=4)))
        s = s[:i] + (piece if draw(st.booleans()) else "") + s[j:]
    return s


def _only_format_errors(fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a doffs that disagrees with the cameras only warns
        with contextlib.suppress(FormatError):
            fn(*args, **kwargs)


@FUZZ
@given(st.one_of(mutated(MIDDLEBURY), st.text(max_size=200), st.binary(max_size=200)))
def test_middlebury_parser_raises_only_format_errors(text: str | bytes) -> None:
    _only_format_errors(parse_middlebury_calib, text, source="calib.txt")


@FUZZ
@given(st.one_of(mutated(ROS), st.text(max_size=200)))
def test_ros_parser_raises_only_format_errors(text: str) -> None:
    _only_format_errors(parse_ros_camera_info, text, source="cam.yaml")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["cameraData", "camera_data", "intrinsicMatrix", "width", "height", "extrinsics",
                         "toCameraSocket", "rotationMatrix", "translation", "x", "cameraNumber", "distortionCoeff",
                         "stereoRectificationData", "rectifiedRotationLeft", "boardName"]),
        children, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(st.one_of(mutated(OAK), JSON_VALUES.map(json.dumps)))
def test_depthai_parser_raises_only_format_errors(text: str) -> None:
    try:
        doc = json.loads(text)
    except ValueError:
        return
    _only_format_errors(lambda: parse_depthai(doc, source="oak.json").rig())


@pytest.fixture(scope="module")
def fuzz_dir():  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@FUZZ
@given(st.one_of(mutated(OPENCV), st.binary(max_size=120)))
def test_opencv_storage_reader_raises_only_format_errors(fuzz_dir: Path, content: str | bytes) -> None:
    p = fuzz_dir / "calib.yml"
    p.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    _only_format_errors(read_opencv_storage, p)


@FUZZ
@given(st.one_of(mutated(OPENCV), mutated(MIDDLEBURY), mutated(ROS), mutated(OAK), st.binary(max_size=120)))
def test_load_calibration_raises_only_format_errors(fuzz_dir: Path, content: str | bytes) -> None:
    p = fuzz_dir / "any.calib"
    p.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    _only_format_errors(load_calibration, p)
