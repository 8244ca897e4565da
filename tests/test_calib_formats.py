"""Calibration formats added for `--camera`: Open3D PinholeCameraIntrinsic JSON, COLMAP cameras.txt, the
rectified rig of a `calibrate stereo` rig file, and OpenCV matrix sizes checked before OpenCV sees them
(with a seeded mutation fuzz over every calibration reader: the only error is a clean FormatError)."""

from __future__ import annotations

import json
import random
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import need
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError
from depthcloud.io.calibfiles import (
    KNOWN_FORMATS,
    calibration_format,
    load_calibration,
    parse_colmap_cameras,
    parse_open3d_intrinsic,
    read_colmap_camera,
    read_opencv_storage,
    save_rig,
)

# -- Open3D ----------------------------------------------------------------------------------------


@pytest.mark.data
def test_open3d_primesense_json_is_read_column_major(data_dir: Path) -> None:
    path = need(data_dir, "rgbd_open3d_testdata/camera_primesense.json")
    assert calibration_format(path) == "open3d"
    intr = load_calibration(path)
    assert intr == Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)


def test_open3d_json_agrees_with_open3d_itself(tmp_path: Path) -> None:
    """An asymmetric camera written by Open3D (fx ≠ fy, cx off-centre, W ≠ H) reads back as the same K."""
    o3d = pytest.importorskip("open3d")
    cam = o3d.camera.PinholeCameraIntrinsic(320, 200, 301.5, 287.25, 171.125, 93.5)
    path = tmp_path / "o3d.json"
    assert o3d.io.write_pinhole_camera_intrinsic(str(path), cam)
    intr = load_calibration(path)
    assert isinstance(intr, Intrinsics)
    np.testing.assert_array_equal(intr.K, np.asarray(cam.intrinsic_matrix))
    assert intr.size == (320, 200)


@pytest.mark.parametrize(("doc", "needle"), [
    ({"width": 640, "height": 480}, "missing key"),
    ({"width": 640, "height": 480, "intrinsic_matrix": [1, 2, 3]}, "expected 9 values"),
    ({"width": 0, "height": 480, "intrinsic_matrix": [525, 0, 0, 0, 525, 0, 319.5, 239.5, 1]}, "width"),
    ({"width": 640, "height": 480, "intrinsic_matrix": [525, 0, 319.5, 0, 525, 239.5, 0, 0, 1]}, "K"),  # row-major
])
def test_open3d_json_errors_name_the_key(doc: dict, needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        parse_open3d_intrinsic(doc, source="o3d.json")


# -- COLMAP ----------------------------------------------------------------------------------------

COLMAP = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
# Number of cameras: 9
1 SIMPLE_PINHOLE 640 480 500 320 240
2 PINHOLE 640 480 500 510 321.25 239.75
3 SIMPLE_RADIAL 640 480 500 320 240 0.01
4 RADIAL 640 480 500 320 240 0.01 -0.002
5 OPENCV 640 480 500 510 320 240 0.01 -0.002 0.0003 0.0004
6 FULL_OPENCV 640 480 500 510 320 240 0.01 -0.002 0.0003 0.0004 0.005 0.006 0.007 0.008
7 OPENCV_FISHEYE 640 480 300 301 320 240 0.1 0.01 0.001 0.0001
8 SIMPLE_RADIAL_FISHEYE 640 480 300 320 240 0.1
9 RADIAL_FISHEYE 640 480 300 320 240 0.1 0.02
"""


def test_colmap_models_become_depthcloud_cameras() -> None:
    cams = parse_colmap_cameras(COLMAP)
    assert list(cams) == list(range(1, 10))
    # Principal points move by -0.5 px (COLMAP's first pixel centre is (0.5, 0.5)).
    assert cams[1] == Intrinsics(500, 500, 319.5, 239.5, 640, 480)
    assert cams[2] == Intrinsics(500, 510, 320.75, 239.25, 640, 480)
    assert (cams[3].model, cams[3].dist) == ("opencv", (0.01, 0.0, 0.0, 0.0))
    assert (cams[4].model, cams[4].dist) == ("opencv", (0.01, -0.002, 0.0, 0.0))
    assert (cams[5].model, cams[5].dist) == ("opencv", (0.01, -0.002, 0.0003, 0.0004))
    assert (cams[6].model, cams[6].dist) == ("opencv", (0.01, -0.002, 0.0003, 0.0004, 0.005, 0.006, 0.007, 0.008))
    assert (cams[7].model, cams[7].dist, cams[7].fy) == ("fisheye", (0.1, 0.01, 0.001, 0.0001), 301)
    assert (cams[8].model, cams[8].dist) == ("fisheye", (0.1, 0.0, 0.0, 0.0))
    assert (cams[9].model, cams[9].dist) == ("fisheye", (0.1, 0.02, 0.0, 0.0))


def test_colmap_pixel_convention_is_converted() -> None:
    """Pin: a ray COLMAP projects to x = 10.5 (the centre of pixel column 10, corner origin) lands on
    depthcloud/OpenCV u = 10 (centre origin); COLMAP's image-centre principal point W/2 is (W-1)/2 here."""
    fx, fy, cx_colmap, cy_colmap, w, h = 200.0, 150.0, 50.0, 30.0, 100, 60
    cam = parse_colmap_cameras(f"1 PINHOLE {w} {h} {fx} {fy} {cx_colmap} {cy_colmap}\n")[1]
    assert (cam.cx, cam.cy) == ((w - 1) / 2, (h - 1) / 2)
    X = np.array([[(10.5 - cx_colmap) / fx, (7.5 - cy_colmap) / fy, 1.0]])  # COLMAP: x = fx·X/Z + cx
    uv, _ = cv2.projectPoints(X, np.zeros(3), np.zeros(3), cam.K, None)
    np.testing.assert_allclose(uv.ravel(), [10.0, 7.0], atol=1e-9)


def test_colmap_first_camera_or_chosen_id(tmp_path: Path) -> None:
    p = tmp_path / "cameras.txt"
    p.write_text(COLMAP)
    assert calibration_format(p) == "colmap"
    assert load_calibration(p) == parse_colmap_cameras(COLMAP)[1]
    assert load_calibration(p, camera_id=7) == parse_colmap_cameras(COLMAP)[7]
    assert read_colmap_camera(p, camera_id=2).fy == 510
    with pytest.raises(FormatError, match="no camera with id 42; ids present: 1, 2"):
        load_calibration(p, camera_id=42)


@pytest.mark.parametrize(("text", "needle"), [
    ("1 PINHOLE 640 480 500 510 320\n", r"line 1: PINHOLE takes 4 parameters \(fx, fy, cx, cy\), got 3"),
    ("1 THIN_PRISM_FISHEYE 640 480 1 2 3 4 5 6 7 8 9 10 11 12\n", "camera model 'THIN_PRISM_FISHEYE' is not read"),
    ("1 PINHOLE 640.5 480 500 510 320 240\n", "WIDTH: expected an integer"),
    ("1 PINHOLE 640 480 500 510 320 240\n1 PINHOLE 640 480 500 510 320 240\n", "line 2: camera id 1 appears twice"),
    ("# only comments\n", "no camera lines"),
    ("1 PINHOLE 640 480 nan 510 320 240\n", "expected a number"),
])
def test_colmap_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(FormatError, match=needle):
        parse_colmap_cameras(text, source="cameras.txt")


def test_known_formats_name_the_new_ones() -> None:
    assert "Open3D PinholeCameraIntrinsic JSON" in KNOWN_FORMATS
    assert "COLMAP cameras.txt" in KNOWN_FORMATS


# -- the rectified rig of a calibrate-stereo rig file (defect 3) ---------------------------------------


def test_rig_file_gives_its_rectified_rig_on_request(tmp_path: Path) -> None:
    from depthcloud.calibrate import rectify

    left = Intrinsics(700.0, 702.0, 330.0, 241.0, 640, 480, dist=(0.01, -0.02, 0.0, 0.0, 0.0))
    right = Intrinsics(705.0, 703.0, 315.0, 238.0, 640, 480, dist=(0.02, -0.01, 0.0, 0.0, 0.0))
    angle = np.deg2rad(1.5)
    R = cv2.Rodrigues(np.array([0.0, angle, 0.01]))[0]
    rig = StereoRig(left, right, R, np.array([-0.12, 0.002, 0.001]))
    rect = rectify(rig, alpha=0.0)
    path = save_rig(tmp_path / "rig.yaml", rig, rectification=rect.to_dict())
    raw = load_calibration(path)
    assert isinstance(raw, StereoRig) and not raw.rectified
    got = load_calibration(path, rectified=True)
    want = rect.rectified_rig(rig)
    assert isinstance(got, StereoRig) and got.rectified
    assert got.left == want.left and got.right == want.right
    assert got.baseline_m == pytest.approx(want.baseline_m, rel=1e-12)
    # Without a stored rectification the file cannot give one: said with the path.
    bare = save_rig(tmp_path / "bare.yaml", rig)
    with pytest.raises(FormatError, match=r"bare\.yaml: key 'P1': an unrectified rig without its rectification"):
        load_calibration(bare, rectified=True)


# -- OpenCV matrix sizes (defect 10, OpenCV YAML part) ----------------------------------------------------

CAMERA_YAML = (
    "%YAML:1.0\n---\nimage_width: 64\nimage_height: 48\n"
    "camera_matrix: !!opencv-matrix\n   rows: 3\n   cols: 3\n   dt: d\n"
    "   data: [ 500.5, 0., 31.5, 0., 480.25, 23.5, 0., 0., 1. ]\n"
    "distortion_coefficients: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n"
    "   data: [ 0.1, -0.2, 1.0e-03, 2.0e-03, 0. ]\n"
)
CAMERA_XML = (
    '<?xml version="1.0"?>\n<opencv_storage>\n<image_width>64</image_width><image_height>48</image_height>\n'
    '<camera_matrix type_id="opencv-matrix"><rows>3</rows><cols>3</cols><dt>d</dt>\n'
    "<data>500.5 0. 31.5 0. 480.25 23.5 0. 0. 1.</data></camera_matrix>\n"
    '<distortion_coefficients type_id="opencv-matrix"><rows>1</rows><cols>5</cols><dt>d</dt>\n'
    "<data>0.1 -0.2 1e-3 2e-3 0.</data></distortion_coefficients>\n</opencv_storage>\n"
)
CAMERA_JSON = json.dumps({
    "image_width": 64, "image_height": 48,
    "camera_matrix": {"type_id": "opencv-matrix", "rows": 3, "cols": 3, "dt": "d",
                      "data": [500.5, 0.0, 31.5, 0.0, 480.25, 23.5, 0.0, 0.0, 1.0]},
    "distortion_coefficients": {"type_id": "opencv-matrix", "rows": 1, "cols": 5, "dt": "d",
                                "data": [0.1, -0.2, 1e-3, 2e-3, 0.0]},
})


@pytest.mark.parametrize("text", [CAMERA_YAML, CAMERA_XML, CAMERA_JSON], ids=["yaml", "xml", "json"])
def test_the_three_flavours_still_read(tmp_path: Path, text: str) -> None:
    p = tmp_path / "cam.txt"
    p.write_text(text)
    assert load_calibration(p) == Intrinsics(500.5, 480.25, 31.5, 23.5, 64, 48, dist=(0.1, -0.2, 1e-3, 2e-3, 0.0))


@pytest.mark.parametrize(("old", "new", "needle"), [
    ("cols: 3", "cols: 4294967295", r"matrix dimension '4294967295' is not an integer in 0..65536"),
    ("rows: 3", "rows: -1", "matrix dimension '-1'"),
    ("rows: 3", "rows: 1", r"matrix says 1x3 with 1 channel\(s\) = 3 values but its data has 9"),
    ("dt: d", "dt: 3d", "27 values but its data has 9"),
    ("dt: d", "dt: 9d", "expected 1 to 4 channels"),
    ("dt: d", "dt: q", "not an OpenCV element type"),
    ("cols: 3", "cols: 65536\n   rows: 65536", "not valid YAML|larger than the limit"),
])
def test_lying_matrix_sizes_never_reach_opencv(tmp_path: Path, old: str, new: str, needle: str) -> None:
    """Regression (issue 14, defect 10): cols: 4294967295 corrupted the heap inside cv2.FileStorage."""
    p = tmp_path / "lie.yml"
    p.write_text(CAMERA_YAML.replace(old, new, 1))
    with pytest.raises(FormatError, match=needle) as info:
        read_opencv_storage(p)
    assert "lie.yml" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "old", "new"), [
    (CAMERA_XML, "<cols>3</cols>", "<cols>4294967295</cols>"),
    (CAMERA_XML, "<rows>1</rows>", "<rows>2</rows>"),
    (CAMERA_JSON, '"cols": 3', '"cols": 4294967295'),
    (CAMERA_JSON, '"rows": 1', '"rows": 7'),
], ids=["xml-huge", "xml-short", "json-huge", "json-short"])
def test_lying_sizes_in_xml_and_json_are_refused(tmp_path: Path, text: str, old: str, new: str) -> None:
    p = tmp_path / "lie.txt"
    p.write_text(text.replace(old, new, 1))
    with pytest.raises(FormatError, match="matrix"):
        read_opencv_storage(p)


# -- seeded mutation fuzz: ~300 per format, every reader, only FormatError ------------------------------

def _seeds(tmp: Path) -> dict[str, str]:
    left = Intrinsics(700.0, 702.0, 330.0, 241.0, 64, 48, dist=(0.01, -0.02, 0.0, 0.0, 0.0))
    rig = StereoRig(left, left, np.eye(3), np.array([-0.1, 0.0, 0.0]))
    own = save_rig(tmp / "seed_rig.yaml", rig).read_text()
    return {
        "opencv-yaml": CAMERA_YAML, "opencv-xml": CAMERA_XML, "opencv-json": CAMERA_JSON, "depthcloud-rig": own,
        "open3d": json.dumps({"width": 640, "height": 480, "intrinsic_matrix": [525, 0, 0, 0, 525, 0, 319.5, 239.5, 1]}),
        "colmap": COLMAP,
        "middlebury": "cam0=[1038.018 0 322.037; 0 1038.018 243.393; 0 0 1]\ncam1=[1038.018 0 375.308; 0 1038.018 243.393; 0 0 1]\n"
                      "doffs=53.271\nbaseline=176.252\nwidth=718\nheight=496\nndisp=73\n",
        "ros": "image_width: 64\nimage_height: 48\ncamera_name: cam\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
               "  data: [500.5, 0.0, 31.5, 0.0, 480.25, 23.5, 0.0, 0.0, 1.0]\ndistortion_model: plumb_bob\n"
               "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [0.1, -0.2, 0.001, 0.002, 0.0]\n",
    }


# Numbers and tokens that break sizes and grammar, plus the raw bytes that break decoders.
_NASTY = ["4294967295", "-1", "0", "65537", "2147483648", "1e308", "nan", "3d", "[", "]", "{", "}", ":", ",", "\n",
          "!!opencv-matrix", "<rows>", "</data>", '"', "'", "#", "=", ";", "\x00", "é", "*a", "&a", "    "]


def _mutate(rng: random.Random, s: str) -> str:
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        numbers = [m.span() for m in re.finditer(r"\d+(?:\.\d+)?", s)]
        if kind < 0.45 and numbers:  # replace a number: where the sizes live
            a, b = rng.choice(numbers)
            s = s[:a] + rng.choice(_NASTY[:8]) + s[b:]
        else:
            i = rng.randrange(len(s) + 1)
            j = min(len(s), i + rng.randint(0, 6))
            s = s[:i] + (rng.choice(_NASTY) if rng.random() < 0.7 else "") + s[j:]
    return s


@pytest.mark.parametrize("fmt", ["opencv-yaml", "opencv-xml", "opencv-json", "depthcloud-rig", "open3d", "colmap",
                                 "middlebury", "ros"])
def test_seeded_mutations_give_only_format_errors(tmp_path: Path, fmt: str) -> None:
    """300 mutations per format through load_calibration (and read_opencv_storage for the OpenCV ones)."""
    seed_text = _seeds(tmp_path)[fmt]
    rng = random.Random(f"issue14-{fmt}")
    p = tmp_path / "m.calib"
    for _ in range(300):
        text = _mutate(rng, seed_text)
        p.write_bytes(text.encode("utf-8", "surrogatepass"))
        for fn in (load_calibration, read_opencv_storage) if fmt.startswith(("opencv", "depthcloud")) else (load_calibration,):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    fn(p)
                except FormatError as exc:
                    assert "\n" not in str(exc).strip(), (text, exc)
