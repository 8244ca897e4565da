"""Calibration files: real files against their SOURCE.md tables, exact round trips, OpenCV as reference."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from conftest import need
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError, InputError, OutputExistsError
from depthcloud.io.calibfiles import (
    KNOWN_FORMATS,
    load_calibration,
    load_camera,
    load_camera_file,
    load_rig,
    load_rig_file,
    parse_depthai,
    parse_middlebury_calib,
    parse_ros_camera_info,
    read_depthai_calib,
    read_middlebury_calib,
    read_opencv_camera,
    read_opencv_stereo,
    read_opencv_stereo_cameras,
    read_opencv_storage,
    read_ros_camera_info,
    save_camera,
    save_rig,
    write_opencv_storage,
    write_ros_camera_info,
)

# ------------------------------------------------------------------------------------------------
# Middlebury calib.txt
# ------------------------------------------------------------------------------------------------

# middlebury_eval3_q/SOURCE.md: scene: (W, H, f, cx0, cx1, cy, doffs, baseline_mm, ndisp, vmin, vmax)
MIDDLEBURY = {
    "Adirondack": (718, 496, 1038.02, 322.037, 375.308, 243.393, 53.271, 176.252, 73, 8, 65),
    "ArtL": (347, 277, 935, 148, 198, 138, 50, 160, 64, 16, 58),
    "Jadeplant": (659, 497, 1823.3, 226.653, 427.697, 244.689, 201.044, 380.135, 160, 5, 149),
    "Motorcycle": (741, 497, 999.421, 294.182, 326.96, 252.932, 32.778, 193.001, 70, 7, 65),
    "MotorcycleE": (741, 497, 999.421, 294.182, 326.96, 252.932, 32.778, 193.001, 70, 7, 65),
    "Piano": (707, 481, 713.189, 356.021, 387.361, 238.263, 31.34, 178.089, 65, 9, 55),
    "PianoL": (707, 481, 713.189, 356.021, 387.361, 238.263, 31.34, 178.089, 65, 9, 55),
    "Pipes": (735, 485, 989.886, 392.942, 412.274, 243.221, 19.331, 236.922, 75, 6, 69),
    "Playtable": (680, 463, 585.489, 285.413, 312.353, 234.124, 26.94, 193.006, 73, 6, 68),
    "PlaytableP": (681, 462, 582.389, 285.363, 310.433, 231.763, 25.07, 193.006, 73, 6, 68),
    "Recycle": (720, 486, 746.775, 326.835, 370.947, 239.722, 44.112, 178.232, 65, 8, 57),
}

CANONICAL = (
    "cam0=[1038.018 0 322.037; 0 1038.018 243.393; 0 0 1]\n"
    "cam1=[1038.018 0 375.308; 0 1038.018 243.393; 0 0 1]\n"
    "doffs=53.271\nbaseline=176.252\nwidth=718\nheight=496\nndisp=73\nisint=0\nvmin=8\nvmax=65\n"
    "dyavg=0.184\ndymax=0.423\n"
)


@pytest.mark.parametrize("scene", sorted(MIDDLEBURY))
def test_middlebury_real_files_match_source_table(data_dir: Path, scene: str) -> None:
    W, H, f, cx0, cx1, cy, doffs, base_mm, ndisp, vmin, vmax = MIDDLEBURY[scene]
    path = need(data_dir, f"middlebury_eval3_q/{scene}/calib.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every real file's doffs agrees with its cx1 - cx0
        calib = read_middlebury_calib(path)
    rig = calib.rig
    assert (calib.width, calib.height) == (W, H) == rig.left.size == rig.right.size
    assert rig.left.fx == pytest.approx(f, abs=0.01) and rig.left.fy == rig.left.fx
    assert (rig.left.cx, rig.left.cy) == pytest.approx((cx0, cy), abs=1e-9)
    assert (calib.cam1.cx, calib.cam1.cy) == pytest.approx((cx1, cy), abs=1e-9)
    assert calib.doffs == pytest.approx(doffs, abs=1e-12)
    assert rig.doffs_px == pytest.approx(doffs, abs=1e-9)
    assert rig.baseline_m == pytest.approx(base_mm / 1000.0, rel=1e-12)
    assert calib.baseline_mm == pytest.approx(base_mm, rel=1e-12)
    assert rig.rectified and np.array_equal(rig.R, np.eye(3))
    assert rig.T[0] < 0  # right camera at +x: X_r = X_l - B
    assert (calib.ndisp, calib.vmin, calib.vmax, calib.isint) == (ndisp, vmin, vmax, False)
    assert calib.dyavg is not None and calib.dymax is not None and 0 <= calib.dyavg <= calib.dymax
    assert load_calibration(path) == rig


def test_middlebury_depth_from_rig_q_matches_the_source_formula(data_dir: Path) -> None:
    """Z = baseline·f/(d + doffs) (SOURCE.md) equals what cv2.reprojectImageTo3D makes of rig.Q."""
    rig = read_middlebury_calib(need(data_dir, "middlebury_eval3_q/Adirondack/calib.txt")).rig
    disp = np.full((3, 4), 20.0, dtype=np.float32)
    disp[1, 2] = 41.5
    xyz = cv2.reprojectImageTo3D(disp, rig.Q)
    f, b, doffs = 1038.018, 0.176252, 53.271
    z = b * f / (disp.astype(np.float64) + doffs)
    np.testing.assert_allclose(xyz[..., 2], z, rtol=1e-5)
    np.testing.assert_allclose(xyz[1, 2, 0], (2 - 322.037) * z[1, 2] / f, rtol=1e-5)
    np.testing.assert_allclose(xyz[1, 2, 1], (1 - 243.393) * z[1, 2] / f, rtol=1e-5)


def test_middlebury_canonical_and_whitespace_variants_agree() -> None:
    ref = parse_middlebury_calib(CANONICAL)
    variant = (
        "cam0=[ 1038.018 0 322.037 ; 0 1038.018 243.393 ; 0 0 1 ] \r\n"
        "  cam1 = [1038.018, 0, 375.308; 0, 1038.018, 243.393; 0, 0, 1]\t\r\n\r\n"
        " doffs= 53.271 \r\nbaseline =176.252\r\n width= 718\r\nheight= 496 \r\n ndisp= 73\r\n"
        " isint=0\r\n vmin= 8 \r\nvmax= 65\r\n dyavg= 0.184\r\n dymax= 0.423\r\n"
    )
    got = parse_middlebury_calib(variant.encode())
    assert got == ref
    assert ref.rig.left == Intrinsics(1038.018, 1038.018, 322.037, 243.393, 718, 496)


def test_middlebury_optional_keys_absent_are_none() -> None:
    text = "\n".join(CANONICAL.splitlines()[:6]) + "\n"
    calib = parse_middlebury_calib(text)
    assert (calib.ndisp, calib.isint, calib.vmin, calib.vmax, calib.dyavg, calib.dymax) == (None,) * 6
    assert calib.width == 718 and calib.focal_px == 1038.018


def test_middlebury_doffs_disagreeing_with_cx_warns_and_keeps_doffs() -> None:
    text = CANONICAL.replace("doffs=53.271", "doffs=50.0")
    with pytest.warns(UserWarning, match="doffs 50.0 disagrees"):
        calib = parse_middlebury_calib(text)
    assert calib.doffs == 50.0 and calib.rig.doffs_px == pytest.approx(50.0, abs=1e-9)
    assert calib.cam1.cx == 375.308


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (CANONICAL.replace("baseline=176.252\n", ""), r"key 'baseline': missing key\(s\) baseline"),
        (CANONICAL + "focal=3\n", r"line 13: key 'focal': unknown key"),
        (CANONICAL + "ndisp=80\n", r"line 13: key 'ndisp': repeated key \(first on line 7\)"),
        (CANONICAL.replace("=176.252", "=abc"), r"line 4: key 'baseline': expected a number, got 'abc'"),
        (CANONICAL.replace("=176.252", "=nan"), r"key 'baseline': expected a number, got 'nan'"),
        (CANONICAL.replace("=176.252", "=1e999"), r"key 'baseline': number out of range"),
        (CANONICAL.replace("=176.252", "=-176"), r"key 'baseline': expected a positive baseline"),
        (CANONICAL.replace("width=718", "width=71.5"), r"key 'width': expected an integer >= 1"),
        (CANONICAL.replace("isint=0", "isint=2"), r"key 'isint': expected 0 or 1"),
        (CANONICAL.replace("; 0 0 1]\ncam1", "]\ncam1"), r"line 1: key 'cam0': expected a 3x3 matrix .* 3x3 numbers|rows of 3x3"),
        (CANONICAL.replace("[1038.018 0 322.037; 0 1038.018 243.393; 0 0 1]", "1038.018"), r"key 'cam0': expected '\[a b c"),
        (CANONICAL.replace("0 0 1]\ncam1", "0 1 1]\ncam1"), r"key 'cam0': K: expected \[\[fx"),
        (CANONICAL.replace("doffs=53.271", "doffs 53.271"), r"line 3: expected 'key=value'"),
        ("", r"empty file"),
        ("   \n\n", r"empty file"),
    ],
)
def test_middlebury_bad_input_names_the_problem(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        parse_middlebury_calib(text, source="calib.txt")


def test_middlebury_matrix_with_two_rows_is_refused() -> None:
    text = CANONICAL.replace("; 0 0 1]\ncam1", "]\ncam1")
    with pytest.raises(FormatError, match=r"line 1: key 'cam0': expected a 3x3 matrix \(rows split by ';'\), got rows of 3x3"):
        parse_middlebury_calib(text)


def test_middlebury_binary_file_is_a_format_error_naming_the_file(tmp_path: Path) -> None:
    p = tmp_path / "calib.txt"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(FormatError, match=r"calib\.txt: binary content") as info:
        read_middlebury_calib(p)
    assert info.value.path == str(p)
    p.write_bytes(b"cam0=\xff\xfe")
    with pytest.raises(FormatError, match="not UTF-8"):
        read_middlebury_calib(p)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_middlebury_calib(tmp_path / "nope.txt")


# ------------------------------------------------------------------------------------------------
# OpenCV FileStorage
# ------------------------------------------------------------------------------------------------


def test_opencv_left_intrinsics_matches_source_and_cv2(data_dir: Path) -> None:
    path = need(data_dir, "opencv-samples/left_intrinsics.yml")
    cam = read_opencv_camera(path)
    # SOURCE.md: fx=fy=535.9157, cx=342.2832, cy=235.5708, dist=[-0.26637, -0.03859, 0.00178, -0.00028, 0.23839]
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == pytest.approx((535.9157, 535.9157, 342.2832, 235.5708), abs=1e-4)
    assert cam.dist == pytest.approx((-0.26637, -0.03859, 0.00178, -0.00028, 0.23839), abs=1e-5)
    assert cam.size == (640, 480) and cam.model == "opencv"
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    assert np.array_equal(cam.K, fs.getNode("camera_matrix").mat())
    assert np.array_equal(cam.dist_array, fs.getNode("distortion_coefficients").mat().ravel())
    assert load_calibration(path) == cam
    doc = read_opencv_storage(path)
    assert doc["nframes"] == 13 and isinstance(doc["nframes"], int)
    assert doc["avg_reprojection_error"] == pytest.approx(0.39259, abs=1e-5)
    assert doc["per_view_reprojection_errors"].shape == (13, 1)
    assert doc["per_view_reprojection_errors"].dtype == np.float64  # stored as dt: f
    assert doc["extrinsic_parameters"].shape == (13, 6)


def test_opencv_stereo_intrinsics_yml(data_dir: Path, tmp_path: Path) -> None:
    path = need(data_dir, "opencv-samples/intrinsics.yml")
    left, right = read_opencv_stereo_cameras(path, image_size=(640, 480))
    # SOURCE.md: fx = fy about 534.8
    assert left.fx == left.fy == right.fx == pytest.approx(534.8, abs=0.01)
    assert (left.cx, left.cy, right.cx, right.cy) == pytest.approx((335.686, 240.662, 334.557, 242.053), abs=1e-3)
    assert left.dist == pytest.approx((0.29589, -1.03547, 0, 0, 0), abs=1e-5)
    with pytest.raises(FormatError, match=r"intrinsics\.yml: key 'R': the extrinsics are missing"):
        load_calibration(path)
    with pytest.raises(FormatError, match=r"does not record the image size \(image_width, image_height\)"):
        read_opencv_stereo_cameras(path)
    # With OpenCV's stereo sample's second file, the pair is a rig.
    ext = write_opencv_storage(tmp_path / "extrinsics.yml", {"R": np.eye(3), "T": np.array([[-0.0836], [0.0], [0.0]])})
    rig = load_calibration(path, extrinsics=ext, image_size=(640, 480))
    assert isinstance(rig, StereoRig) and not rig.rectified
    assert rig.baseline_m == pytest.approx(0.0836) and rig.left == left and rig.right == right
    assert read_opencv_stereo(path, extrinsics=ext, image_size=(640, 480)) == rig


def _sample_mapping() -> dict:
    rng = np.random.default_rng(7)
    return {
        "an_int": -123456,
        "a_float": 0.1,
        "tiny": 5e-324,
        "a_string": 'has "quotes", colons: and spaces',
        "empty": "",
        "K": rng.normal(size=(3, 3)) * 10.0 ** rng.integers(-30, 30, size=(3, 3)),
        "column": rng.normal(size=(5, 1)),
        "ints": np.arange(6, dtype=np.int32).reshape(2, 3),
        "seq": [1, 2.5, 3],
        "nested": {"rms": 0.123456789012345678, "name": "left", "deeper": {"n": 3}},
        "list_of_maps": [{"a": 1}, {"b": "x"}],
    }


@pytest.mark.parametrize("ext", [".yml", ".yaml", ".xml", ".json"])
def test_opencv_storage_round_trip_is_exact(tmp_path: Path, ext: str) -> None:
    m = _sample_mapping()
    p = write_opencv_storage(tmp_path / f"s{ext}", m)
    got = read_opencv_storage(p)
    assert list(got) == list(m)
    for k in ("an_int", "a_float", "tiny", "a_string", "empty", "seq", "list_of_maps"):
        assert got[k] == m[k] and type(got[k]) is type(m[k]), k
    assert got["nested"] == m["nested"]
    for k in ("K", "column"):
        assert got[k].dtype == np.float64 and np.array_equal(got[k], m[k]), k
    assert np.array_equal(got["ints"], m["ints"]) and got["ints"].dtype == np.float64
    # The independent reader: OpenCV itself.
    fs = cv2.FileStorage(str(p), cv2.FILE_STORAGE_READ)
    assert np.array_equal(fs.getNode("K").mat(), m["K"]) and fs.getNode("a_string").string() == m["a_string"]


def test_opencv_storage_yaml_header_and_one_d_arrays(tmp_path: Path) -> None:
    p = write_opencv_storage(tmp_path / "a.yml", {"D": np.array([1.0, 2.0, 3.0]), "flag": True})
    text = p.read_text()
    assert text.startswith("%YAML:1.0\n")
    assert "!!opencv-matrix" in text and "dt: d" in text
    got = read_opencv_storage(p)
    assert got["D"].shape == (1, 3) and got["flag"] == 1


def test_opencv_storage_write_refuses_existing_and_bad_values(tmp_path: Path) -> None:
    p = write_opencv_storage(tmp_path / "a.yml", {"x": 1})
    with pytest.raises(OutputExistsError, match="exists"):
        write_opencv_storage(p, {"x": 2})
    write_opencv_storage(p, {"x": 2}, overwrite=True)
    assert read_opencv_storage(p) == {"x": 2}
    with pytest.raises(InputError, match=r"key '2bad' is not an identifier"):
        write_opencv_storage(tmp_path / "b.yml", {"2bad": 1})
    with pytest.raises(InputError, match=r"big: integer 4294967296 does not fit"):
        write_opencv_storage(tmp_path / "b.yml", {"big": 2**32})
    with pytest.raises(InputError, match=r"cube: expected a non-empty 1-D or 2-D numeric array"):
        write_opencv_storage(tmp_path / "b.yml", {"cube": np.zeros((2, 2, 2))})
    with pytest.raises(InputError, match=r"obj: cannot store a object"):
        write_opencv_storage(tmp_path / "b.yml", {"obj": object()})
    with pytest.raises(InputError, match=r"nested\.x: cannot store a set"):
        write_opencv_storage(tmp_path / "b.yml", {"nested": {"x": {1}}})
    with pytest.raises(InputError, match=r"mapping\.meta\.flag: OpenCV's YAML does not keep the string 'true' \(it reads back as 1\)"):
        write_opencv_storage(tmp_path / "b.yml", {"meta": {"flag": "true"}})
    assert not (tmp_path / "b.yml").exists()
    assert read_opencv_storage(write_opencv_storage(tmp_path / "b.xml", {"flag": "true"})) == {"flag": "true"}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"empty file"),
        (b"\x00\x01\x02garbage", r"binary content"),
        (b"%YAML:1.0\na: [1, 2\n", r"line \d+: OpenCV FileStorage: .*"),
        (b"just some words\n", r"OpenCV FileStorage"),
        (b"<?xml version=\"1.0\"?>\n<opencv_storage>\n<a>1</b>\n", r"OpenCV FileStorage"),
    ],
)
def test_opencv_storage_bad_files(tmp_path: Path, content: bytes, match: str) -> None:
    p = tmp_path / "bad.yml"
    p.write_bytes(content)
    with pytest.raises(FormatError, match=match) as info:
        read_opencv_storage(p)
    assert info.value.path == str(p)


def test_opencv_camera_wrong_sizes_and_missing_keys(tmp_path: Path) -> None:
    p = write_opencv_storage(tmp_path / "c.yml", {
        "image_width": 640, "image_height": 480, "camera_matrix": np.eye(2), "distortion_coefficients": np.zeros(5)})
    with pytest.raises(FormatError, match=r"key 'camera_matrix': expected a 3x3 matrix, got 2x2"):
        load_calibration(p)
    write_opencv_storage(p, {"image_width": 640, "camera_matrix": np.eye(3), "distortion_coefficients": np.zeros(3)},
                         overwrite=True)
    with pytest.raises(FormatError, match=r"key 'image_height': image size: missing key\(s\) image_height"):
        load_calibration(p)
    write_opencv_storage(p, {"camera_matrix": np.eye(3), "distortion_coefficients": np.zeros(3)}, overwrite=True)
    with pytest.raises(FormatError, match=r"key 'distortion_coefficients': expected 4 or 5 or 8 or 12 or 14 values, got 3"):
        read_opencv_camera(p, image_size=(640, 480))
    write_opencv_storage(p, {"camera_matrix": np.eye(3)}, overwrite=True)
    with pytest.raises(FormatError, match=r"OpenCV camera: missing key\(s\) distortion_coefficients"):
        load_calibration(p)
    write_opencv_storage(p, {"camera_matrix": "text", "distortion_coefficients": np.zeros(5)}, overwrite=True)
    with pytest.raises(FormatError, match=r"key 'camera_matrix': expected a 3x3 matrix, got str"):
        read_opencv_camera(p, image_size=(4, 3))


# ------------------------------------------------------------------------------------------------
# ROS camera_info
# ------------------------------------------------------------------------------------------------

ROS_SAMPLE = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [438.783367, 0.000000, 305.593336, 0.000000, 437.302876, 243.738352, 0.000000, 0.000000, 1.000000]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.361976, 0.110510, 0.001014, 0.000505, 0.000000]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.000000, 0.000000, 0.000000, 0.000000, 1.000000, 0.000000, 0.000000, 0.000000, 1.000000]
projection_matrix:
  rows: 3
  cols: 4
  data: [331.026245, 0.000000, 303.617981, 0.000000, 0.000000, 350.028564, 244.627031, 0.000000, 0.000000, 0.000000, 1.000000, 0.000000]
"""


def test_ros_camera_info_as_camera_calibration_writes_it(tmp_path: Path) -> None:
    cam = parse_ros_camera_info(ROS_SAMPLE)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (438.783367, 437.302876, 305.593336, 243.738352, 640, 480)
    assert cam.dist == (-0.361976, 0.110510, 0.001014, 0.000505, 0.0) and cam.model == "opencv"
    p = tmp_path / "left.yaml"
    p.write_text(ROS_SAMPLE)
    assert read_ros_camera_info(p) == cam == load_calibration(p)


@pytest.mark.parametrize(
    ("dist", "model", "ros_model"),
    [
        ((), "none", "plumb_bob"),
        ((0.1, -0.2, 1e-3, -2e-4), "opencv", "plumb_bob"),
        ((0.1, -0.2, 1e-3, -2e-4, 0.05), "opencv", "plumb_bob"),
        (tuple(np.linspace(-0.3, 0.3, 8)), "opencv", "rational_polynomial"),
        (tuple(np.linspace(-0.3, 0.3, 14)), "opencv", "rational_polynomial"),
        ((0.01, -0.002, 3e-4, -4e-5), "fisheye", "equidistant"),
    ],
)
def test_ros_round_trip_is_exact(tmp_path: Path, asym_intrinsics: Intrinsics, dist: tuple, model: str, ros_model: str) -> None:
    cam = replace(asym_intrinsics, fx=1 / 3 * 1000, cy=260.30000000000001, skew=0.125).with_dist(dist, model)
    p = write_ros_camera_info(tmp_path / "cam.yaml", cam, camera_name="oak/left")
    assert read_ros_camera_info(p) == cam
    doc = yaml.safe_load(p.read_text())  # an independent YAML reader sees the ROS layout
    assert doc["distortion_model"] == ros_model and doc["camera_name"] == "oak/left"
    assert doc["camera_matrix"] == {"rows": 3, "cols": 3, "data": cam.K.ravel().tolist()}
    assert doc["distortion_coefficients"]["data"] == list(dist or (0.0,) * 5)
    assert doc["projection_matrix"]["data"] == np.hstack([cam.K, np.zeros((3, 1))]).ravel().tolist()
    assert (doc["image_width"], doc["image_height"]) == (64, 48)


def test_ros_writer_refuses_existing_and_bad_names(tmp_path: Path, asym_intrinsics: Intrinsics) -> None:
    p = write_ros_camera_info(tmp_path / "c.yaml", asym_intrinsics)
    with pytest.raises(OutputExistsError):
        write_ros_camera_info(p, asym_intrinsics)
    with pytest.raises(InputError, match="camera_name: expected letters"):
        write_ros_camera_info(tmp_path / "d.yaml", asym_intrinsics, camera_name="a b: c")
    with pytest.raises(InputError, match="intrinsics: expected Intrinsics"):
        write_ros_camera_info(tmp_path / "d.yaml", asym_intrinsics.K)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.replace("image_width: 640\n", ""), r"key 'image_width': ROS camera_info: missing key"),
        (lambda s: s + "frame_id: cam\n", r"key 'frame_id': ROS camera_info: unknown key\(s\) frame_id"),
        (lambda s: s.replace("  cols: 5", "  cols: 4"), r"key 'distortion_coefficients.data': rows x cols = 1x4 but data has 5"),
        (lambda s: s.replace("plumb_bob", "kannala"), r"key 'distortion_model': expected one of plumb_bob"),
        (lambda s: s.replace("plumb_bob", "equidistant"), r"equidistant takes 4 coefficients, got 5"),
        (lambda s: s.replace("438.783367", "fast"), r"key 'camera_matrix.data': expected a number, got 'fast'"),
        (lambda s: s.replace("image_height: 480", "image_height: -2"), r"key 'image_height': expected an integer >= 1"),
        (lambda s: s.replace("  rows: 3\n  cols: 4", "  rows: 4\n  cols: 3"), r"key 'projection_matrix': expected a 3x4 matrix, got 4x3"),
        (lambda s: s.replace("data: [438", "data: {438"), r"line 7: not valid YAML"),
        (lambda s: "- a\n- b\n", r"expected a YAML map"),
    ],
)
def test_ros_bad_input(edit, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FormatError, match=match):
        parse_ros_camera_info(edit(ROS_SAMPLE), source="cam.yaml")


# ------------------------------------------------------------------------------------------------
# depthai / OAK
# ------------------------------------------------------------------------------------------------

# oak_depthai/SOURCE.md: file: (left fx, cx, cy, right fx, left→right T (cm), RGB fx or None)
OAK = {
    "calib_oak_d_bw1098obc_14442C10218CCCD200.json": (860.69, 644.09, 398.37, 854.60, (-7.550, -0.117, 0.050), 1490.36),
    "calib_oak_d_people_counting.json": (808.27, 634.17, 407.66, 810.88, (-7.377, 0.231, 0.027), 1568.12),
    "calib_oak_d_pro_af_18443010F116631200.json": (801.53, 647.38, 414.32, 800.32, (-8.446, 0.047, -0.033), 1577.97),
    "recording_test_board/calib.json": (3440.81, 711.51, 455.86, 3457.82, (-13.129, 0.674, -0.050), None),
}


@pytest.mark.parametrize("name", sorted(OAK))
def test_oak_calibrations_match_source_table(data_dir: Path, name: str) -> None:
    fx, cx, cy, fx_r, t_cm, fx_rgb = OAK[name]
    path = need(data_dir, f"oak_depthai/{name}")
    cal = read_depthai_calib(path)
    left = cal.intrinsics(1)
    assert (left.fx, left.cx, left.cy) == pytest.approx((fx, cx, cy), abs=0.006)
    assert left.size == (1280, 800) and left.model == "opencv" and len(left.dist) == 14
    assert cal.intrinsics(2).fx == pytest.approx(fx_r, abs=0.006)
    R, T = cal.extrinsics(1, 2)
    np.testing.assert_allclose(T * 100.0, t_cm, atol=6e-4)
    assert cal.baseline_m(1, 2) == pytest.approx(math.dist((0, 0, 0), t_cm) / 100.0, abs=1e-5)
    rig = load_calibration(path)
    assert isinstance(rig, StereoRig) and rig.baseline_m == cal.baseline_m()
    assert np.array_equal(rig.R, R) and np.array_equal(rig.T, T)
    if fx_rgb is None:
        assert cal.sockets == (1, 2)
    else:
        assert cal.sockets == (0, 1, 2)
        rgb = cal.intrinsics(0)
        assert rgb.fx == pytest.approx(fx_rgb, abs=0.006) and rgb.size == (1920, 1080)
    sr = cal.stereo_rectification
    assert sr is not None and (sr.left_socket, sr.right_socket) == (1, 2)
    assert sr.R1 is not None and np.allclose(sr.R1 @ sr.R1.T, np.eye(3), atol=1e-5)


def _to_protobuf_json(doc: dict, *, snake: bool = False) -> dict:
    """The farm-ng OakCalibration protobuf-JSON form of a depthai EEPROM dump (defaults left out)."""

    def key(camel: str) -> str:
        return "".join("_" + c.lower() if c.isupper() else c for c in camel) if snake else camel

    def vec(t: dict) -> dict:
        return {key(k): val for k, val in t.items() if val != 0}

    cams = []
    for socket, c in doc["cameraData"]:
        e = c["extrinsics"]
        ext = {key("rotationMatrix"): [x for r in e["rotationMatrix"] for x in r],
               key("translation"): vec(e["translation"]), key("specTranslation"): vec(e["specTranslation"])}
        if e["toCameraSocket"] != 0:
            ext[key("toCameraSocket")] = e["toCameraSocket"]
        cam = {key("intrinsicMatrix"): [x for r in c["intrinsicMatrix"] for x in r], key("width"): c["width"],
               key("height"): c["height"], key("distortionCoeff"): c["distortionCoeff"], key("extrinsics"): ext}
        if socket != 0:
            cam[key("cameraNumber")] = socket
        cams.append(cam)
    sr = doc["stereoRectificationData"]
    return {key("boardName"): doc["boardName"], key("cameraData"): cams,
            key("stereoRectificationData"): {key(k): ([x for row in val for x in row] if isinstance(val, list) else val) for k, val in sr.items()}}


@pytest.mark.parametrize("snake", [False, True])
def test_oak_protobuf_json_form_gives_the_same_calibration(data_dir: Path, snake: bool) -> None:
    path = need(data_dir, "oak_depthai/calib_oak_d_people_counting.json")
    eeprom = json.loads(path.read_text())
    ref = parse_depthai(eeprom)
    got = parse_depthai(_to_protobuf_json(eeprom, snake=snake), source="oak.json")
    assert got.sockets == ref.sockets and got.board_name == ref.board_name == "OAK-D"
    for s in ref.sockets:
        assert got.intrinsics(s) == ref.intrinsics(s)
    for a, b in ((1, 2), (2, 0), (1, 0), (0, 1)):
        Rg, Tg = got.extrinsics(a, b)
        Rr, Tr = ref.extrinsics(a, b)
        np.testing.assert_array_equal(Rg, Rr)
        np.testing.assert_allclose(Tg, Tr, atol=1e-15)
    assert got.rig() == ref.rig()


def test_oak_extrinsics_chain_and_invert(data_dir: Path) -> None:
    cal = read_depthai_calib(need(data_dir, "oak_depthai/calib_oak_d_bw1098obc_14442C10218CCCD200.json"))
    R12, T12 = cal.extrinsics(1, 2)
    R21, T21 = cal.extrinsics(2, 1)
    np.testing.assert_allclose(R21, R12.T, atol=1e-15)
    np.testing.assert_allclose(T21, -R12.T @ T12, atol=1e-15)
    # 1 → 0 has no direct entry in the file: it chains 1 → 2 → 0.
    R20, T20 = cal.extrinsics(2, 0)
    R10, T10 = cal.extrinsics(1, 0)
    np.testing.assert_allclose(R10, R20 @ R12, atol=1e-15)
    np.testing.assert_allclose(T10, R20 @ T12 + T20, atol=1e-15)
    R, T = cal.extrinsics(1, 1)
    assert np.array_equal(R, np.eye(3)) and np.array_equal(T, np.zeros(3))


def test_oak_intrinsics_at_other_resolutions(data_dir: Path) -> None:
    cal = read_depthai_calib(need(data_dir, "oak_depthai/calib_oak_d_bw1098obc_14442C10218CCCD200.json"))
    full = cal.intrinsics(1)
    assert cal.intrinsics(1, width=640, height=400) == full.resized(640, 400)
    assert cal.intrinsics(1, width=640) == full.resized(640, 400)
    assert cal.intrinsics(1, height=400) == full.resized(640, 400)
    # 1280x720 from the 1280x800 sensor: same scale, 40 rows cropped off top and bottom.
    crop = cal.intrinsics(1, width=1280, height=720)
    assert (crop.fx, crop.fy, crop.cx) == (full.fx, full.fy, full.cx)
    assert crop.cy == pytest.approx(full.cy - 40.0, abs=1e-12) and crop.size == (1280, 720)
    assert crop.dist == full.dist
    # 640x360: half size and the same crop, in half-size pixels.
    half = cal.intrinsics(1, width=640, height=360)
    assert half.fx == full.fx / 2 and half.cy == pytest.approx((full.cy + 0.5) / 2 - 0.5 - 20.0, abs=1e-12)
    # RGB 1920x1080 → 1280x800 (wider to taller): scale by 800/1080, crop the sides.
    rgb = cal.intrinsics(0)
    s = 800 / 1080
    r = cal.intrinsics(0, width=1280, height=800)
    assert r.fx == pytest.approx(rgb.fx * s) and r.cy == pytest.approx((rgb.cy + 0.5) * s - 0.5)
    assert r.cx == pytest.approx((rgb.cx + 0.5) * s - 0.5 - (1920 * s - 1280) / 2)
    rig = cal.rig(width=640, height=400)
    assert rig.left == full.resized(640, 400) and rig.baseline_m == cal.baseline_m()


def test_oak_rectification_rotations_agree_with_opencv(data_dir: Path) -> None:
    """cv2.stereoRectify on the rig reproduces the stored rectifying rotations (to about a degree)."""
    cal = read_depthai_calib(need(data_dir, "oak_depthai/calib_oak_d_people_counting.json"))
    rig = cal.rig()
    R1, R2, *_ = cv2.stereoRectify(rig.left.K, rig.left.dist_array, rig.right.K, rig.right.dist_array,
                                   rig.left.size, rig.R, rig.T.reshape(3, 1))
    sr = cal.stereo_rectification
    assert sr is not None and sr.R1 is not None and sr.R2 is not None
    for got, stored in ((R1, sr.R1), (R2, sr.R2)):
        angle = math.degrees(math.acos(np.clip((np.trace(got.T @ stored) - 1) / 2, -1, 1)))
        assert angle < 1.0


def test_oak_missing_camera_names_the_sockets(data_dir: Path) -> None:
    cal = read_depthai_calib(need(data_dir, "oak_depthai/recording_test_board/calib.json"))
    with pytest.raises(FormatError, match=r"calib\.json: no camera at socket 0; sockets present: 1, 2"):
        cal.intrinsics(0)
    with pytest.raises(FormatError, match=r"no camera at socket 5; sockets present: 1, 2"):
        cal.extrinsics(1, 5)


def _minimal_oak() -> dict:
    cam = {"intrinsicMatrix": [[800.0, 0, 640], [0, 800, 400], [0, 0, 1]], "distortionCoeff": [0.0] * 14,
           "width": 1280, "height": 800,
           "extrinsics": {"rotationMatrix": [[1.0, 0, 0], [0, 1, 0], [0, 0, 1]],
                          "translation": {"x": -7.5, "y": 0.0, "z": 0.0}, "toCameraSocket": 2}}
    right = json.loads(json.dumps(cam))
    right["extrinsics"] = {"rotationMatrix": [], "translation": {"x": 0, "y": 0, "z": 0}, "toCameraSocket": -1}
    return {"cameraData": [[1, cam], [2, right]]}


def test_oak_minimal_and_unlinked() -> None:
    cal = parse_depthai(_minimal_oak())
    assert cal.baseline_m() == 0.075 and cal.board_name is None and cal.stereo_rectification is None
    assert cal.intrinsics(1).model == "none"  # all-zero coefficients are no distortion
    doc = _minimal_oak()
    doc["cameraData"][0][1]["extrinsics"]["toCameraSocket"] = -1
    with pytest.raises(FormatError, match="no extrinsics link camera 1 to camera 2"):
        parse_depthai(doc).baseline_m()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.pop("cameraData"), r"key 'camera_data': depthai calibration: missing key"),
        (lambda d: d["cameraData"][0][1].pop("width"), r"key 'cameraData\[0\] \(socket 1\)\.width': missing key"),
        (lambda d: d["cameraData"][0][1].update(intrinsicMatrix=[[1, 2], [3, 4]]), r"intrinsicMatrix': expected a 3x3 matrix, got 2x2"),
        (lambda d: d["cameraData"][0][1].update(distortionCoeff=[0.1] * 6), r"distortionCoeff': expected 0 or 4 or 5 or 8 or 12 or 14 values, got 6"),
        (lambda d: d["cameraData"][0][1]["extrinsics"]["translation"].update(x="far"), r"translation\.x': expected a number, got 'far'"),
        (lambda d: d["cameraData"][0][1]["extrinsics"].update(rotationMatrix=[[2.0, 0, 0], [0, 1, 0], [0, 0, 1]]), r"not a rotation matrix"),
        (lambda d: d["cameraData"][0][1]["extrinsics"].update(rotationMatrix=[]), r"rotationMatrix': expected a 3x3 matrix, got 0 values"),
        (lambda d: d["cameraData"].append([1, d["cameraData"][0][1]]), r"socket 1 appears twice"),
        (lambda d: d["cameraData"].append("camera"), r"expected \[socket, \{\.\.\.\}\] or \{cameraNumber"),
        (lambda d: d.update(cameraData={"1": {}}), r"key 'cameraData': expected a list of cameras"),
        (lambda d: d["cameraData"][0][1].update(width=10**400), r"width': expected a finite number"),
    ],
)
def test_oak_bad_input(edit, match: str) -> None:  # type: ignore[no-untyped-def]
    doc = _minimal_oak()
    edit(doc)
    with pytest.raises(FormatError, match=match):
        parse_depthai(doc, source="oak.json")


def test_oak_bad_json_file(tmp_path: Path) -> None:
    p = tmp_path / "oak.json"
    p.write_text('{"cameraData": [\n  [1, {]\n]}')
    with pytest.raises(FormatError, match=r"oak\.json: line 2: not valid JSON"):
        read_depthai_calib(p)
    p.write_text("[1, 2]")
    with pytest.raises(FormatError, match="expected a JSON object, got list"):
        read_depthai_calib(p)


# ------------------------------------------------------------------------------------------------
# depthcloud's own camera and rig files
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dist", "model"),
    [((), "none"), ((0.1, -0.25, 1e-3, -2e-4, 0.07), "opencv"), (tuple(np.linspace(-1, 1, 14) / 3), "opencv"),
     ((0.01, -0.002, 3e-4, -4e-5), "fisheye")],
)
def test_own_camera_round_trip_is_exact_and_opencv_reads_it(
    tmp_path: Path, asym_intrinsics: Intrinsics, dist: tuple, model: str
) -> None:
    cam = replace(asym_intrinsics, fx=2000 / 3, cx=301.7 + 1e-13, skew=1 / 7).with_dist(dist, model)
    meta = {"rms": 0.2345678901234567, "date": "2026-11-22T03:00:00Z", "views": 13}
    p = save_camera(tmp_path / "cam.yml", cam, metadata=meta)
    assert p.read_text().startswith("%YAML:1.0\n")
    assert load_camera(p) == cam
    f = load_camera_file(p)
    assert f.intrinsics == cam and dict(f.metadata) == meta
    assert load_calibration(p) == cam
    fs = cv2.FileStorage(str(p), cv2.FILE_STORAGE_READ)
    assert np.array_equal(fs.getNode("camera_matrix").mat(), cam.K)
    assert (int(fs.getNode("image_width").real()), int(fs.getNode("image_height").real())) == (64, 48)
    assert fs.getNode("distortion_model").string() == model
    D = fs.getNode("distortion_coefficients").mat()
    assert D.shape == (1, len(dist) or 5) and np.array_equal(D.ravel(), dist or np.zeros(5))
    assert fs.getNode("metadata").getNode("rms").real() == meta["rms"]
    # OpenCV's own reader of camera files gives the same camera (minus the model name).
    assert read_opencv_camera(p) == (cam if model != "fisheye" else replace(cam, model="opencv"))


def test_own_rig_round_trip_with_rectification(tmp_path: Path, asym_intrinsics: Intrinsics) -> None:
    left = asym_intrinsics.with_dist((0.1, -0.2, 0.001, 0.002, 0.03))
    right = replace(asym_intrinsics, fx=520.125, cx=310.3).with_dist((0.05, -0.1, 0.0, 0.001, 0.0))
    rvec = np.array([0.01, -0.02, 0.003])
    R = cv2.Rodrigues(rvec)[0]
    T = np.array([-0.0836, 0.0012, -0.0007])
    rig = StereoRig(left, right, R, T)
    R1, R2, P1, P2, Q, roi1, roi2 = cv2.stereoRectify(left.K, left.dist_array, right.K, right.dist_array,
                                                      left.size, R, T.reshape(3, 1), alpha=0.0)
    rect = {"R1": R1, "R2": R2, "P1": P1, "P2": P2, "Q": Q, "roi1": roi1, "roi2": roi2, "alpha": 0.0}
    p = save_rig(tmp_path / "rig.yml", rig, rectification=rect, metadata={"rms": 0.31})
    f = load_rig_file(p)
    assert f.rig == rig and load_rig(p) == rig and load_calibration(p) == rig
    assert set(f.rectification) == set(rect)
    for k in ("R1", "R2", "P1", "P2", "Q"):
        assert np.array_equal(f.rectification[k], rect[k]), k
    assert f.rectification["roi1"] == tuple(roi1) and f.rectification["alpha"] == 0.0
    assert dict(f.metadata) == {"rms": 0.31}
    # OpenCV reads it as its stereo sample's files.
    fs = cv2.FileStorage(str(p), cv2.FILE_STORAGE_READ)
    for k, want in (("M1", left.K), ("M2", right.K), ("R", R), ("T", T.reshape(3, 1)), ("Q", Q)):
        assert np.array_equal(fs.getNode(k).mat(), want), k
    assert np.array_equal(fs.getNode("D1").mat(), left.dist_array.reshape(1, 5))
    assert read_opencv_stereo(p) == rig


def test_own_rig_rectified_and_different_sizes(tmp_path: Path, data_dir: Path) -> None:
    rig = read_middlebury_calib(need(data_dir, "middlebury_eval3_q/Jadeplant/calib.txt")).rig
    p = save_rig(tmp_path / "mb.yml", rig)
    back = load_rig(p)
    assert back == rig and back.rectified and np.array_equal(back.Q, rig.Q)
    odd = StereoRig(rig.left, rig.right.resized(320, 240), rig.R, rig.T)
    assert load_rig(save_rig(tmp_path / "odd.yml", odd)) == odd
    assert load_rig_file(p).rectification == {} and load_rig_file(p).metadata == {}


def test_own_files_refuse_overwrite_and_bad_arguments(tmp_path: Path, asym_intrinsics: Intrinsics) -> None:
    p = save_camera(tmp_path / "cam.yml", asym_intrinsics)
    with pytest.raises(OutputExistsError, match="exists"):
        save_camera(p, asym_intrinsics)
    save_camera(p, asym_intrinsics.scaled(2.0), overwrite=True)
    assert load_camera(p).width == 128
    rig = StereoRig.from_rectified(asym_intrinsics, 0.1)
    with pytest.raises(InputError, match=r"rectification: unknown key\(s\) H1"):
        save_rig(tmp_path / "r.yml", rig, rectification={"H1": np.eye(3)})
    with pytest.raises(InputError, match=r"rectification: expected a 3x4 matrix, got 3x3"):
        save_rig(tmp_path / "r.yml", rig, rectification={"P1": np.eye(3)})
    with pytest.raises(InputError, match=r"rectification: expected 4 values, got 3"):
        save_rig(tmp_path / "r.yml", rig, rectification={"roi1": (0, 0, 5)})
    with pytest.raises(InputError, match=r"metadata: key 'a b' is not an identifier"):
        save_rig(tmp_path / "r.yml", rig, metadata={"a b": 1})
    with pytest.raises(InputError, match="rig: expected StereoRig"):
        save_rig(tmp_path / "r.yml", asym_intrinsics)  # type: ignore[arg-type]
    assert not (tmp_path / "r.yml").exists()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(focal=1.0), r"key 'focal': depthcloud rig: unknown key\(s\) focal"),
        (lambda d: d.pop("T"), r"key 'T': depthcloud rig: missing key\(s\) T"),
        (lambda d: d.update(depthcloud_format=9), r"key 'depthcloud_format': format version 9 is newer"),
        (lambda d: d.update(kind="lens"), r"key 'kind': expected 'camera' or 'rig', got 'lens'"),
        (lambda d: d.update(M1=np.eye(4)), r"key 'M1': expected a 3x3 matrix, got 4x4"),
        (lambda d: d.update(T=np.zeros((3, 1))), r"key 'T': T: the baseline is zero"),
        (lambda d: d.update(R=np.ones((3, 3))), r"key 'R': R: not a rotation matrix"),
        (lambda d: d.update(Q=np.eye(3)), r"key 'Q': expected a 4x4 matrix, got 3x3"),
        (lambda d: d.update(distortion_model1="poly"), r"key 'distortion_model1': expected none, opencv or fisheye"),
        (lambda d: d.update(D2=np.full((1, 3), 0.1)), r"key 'D2': intrinsics.dist: model 'opencv' takes"),
        (lambda d: d.update(image_width="wide"), r"key 'image_width': expected a number, got 'wide'"),
        (lambda d: d.update(rectified=3), r"key 'rectified': expected 0 or 1, got 3"),
    ],
)
def test_own_rig_bad_files(tmp_path: Path, asym_intrinsics: Intrinsics, edit, match: str) -> None:  # type: ignore[no-untyped-def]
    rig = StereoRig.from_rectified(asym_intrinsics.with_dist((0.1, 0, 0, 0, 0)), 0.1)
    p = save_rig(tmp_path / "rig.yml", rig)
    doc = read_opencv_storage(p)
    edit(doc)
    write_opencv_storage(p, doc, overwrite=True)
    with pytest.raises(FormatError, match=match) as info:
        load_rig(p)
    assert info.value.path == str(p)


def test_own_loaders_check_the_kind(tmp_path: Path, asym_intrinsics: Intrinsics) -> None:
    cam = save_camera(tmp_path / "cam.yml", asym_intrinsics)
    with pytest.raises(FormatError, match=r"key 'kind': is a camera file, expected a rig file"):
        load_rig(cam)
    plain = write_opencv_storage(tmp_path / "plain.yml", {"camera_matrix": asym_intrinsics.K})
    with pytest.raises(FormatError, match=r"not a depthcloud calibration file \(no depthcloud_format key\)"):
        load_camera(plain)


# ------------------------------------------------------------------------------------------------
# load_calibration: detection
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"0.1 0.2 0.3\n1 2 3\n", b"ply\nformat ascii 1.0\n", b"%YAML:1.0\nfoo: 1\n", b'{"a": 1}', b"key: value\n"],
)
def test_unknown_content_lists_the_known_formats(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "thing.txt"
    p.write_bytes(content)
    with pytest.raises(FormatError, match="not a calibration file depthcloud knows; known formats: Middlebury") as info:
        load_calibration(p)
    assert all(name in str(info.value) for name in KNOWN_FORMATS)


def test_load_calibration_detects_by_content_not_extension(tmp_path: Path, asym_intrinsics: Intrinsics) -> None:
    mb = tmp_path / "calib.yml"
    mb.write_text(CANONICAL)
    assert isinstance(load_calibration(mb), StereoRig)
    ros = write_ros_camera_info(tmp_path / "ros.txt", asym_intrinsics)
    assert load_calibration(ros) == asym_intrinsics
    own = save_camera(tmp_path / "own.txt", asym_intrinsics)
    assert load_calibration(own) == asym_intrinsics
    xml = save_camera(tmp_path / "own.xml", asym_intrinsics)
    assert xml.read_text().startswith("<?xml") and load_calibration(xml) == asym_intrinsics


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "empty file"), (b" \n\t\n", "empty file"), (b"\x7fELF\x02\x01\x01\x00\x00", "binary content"),
     (b"\xff\xd8\xff\xe0JFIF", "not UTF-8 text")],
)
def test_load_calibration_refuses_empty_and_binary_files(tmp_path: Path, content: bytes, match: str) -> None:
    p = tmp_path / "calib.txt"
    p.write_bytes(content)
    with pytest.raises(FormatError, match=match) as info:
        load_calibration(p)
    assert str(info.value).startswith(str(p))
