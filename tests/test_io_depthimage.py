"""Depth, disparity and colour images: units converted once, RGB order pinned, bad files named."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from tests.conftest import need, optional_import

from depthcloud.errors import FormatError, InputError, OutputExistsError
from depthcloud.io import read_color, read_depth, read_disparity_png, write_depth_png, write_pfm, write_png


def write_raw(path, img):
    assert cv2.imwrite(str(path), img)
    return path


# -- read_depth ---------------------------------------------------------------------------------

def test_png_default_scale_is_millimetres(tmp_path):
    raw = np.array([[0, 1, 1000], [2500, 65535, 7]], np.uint16)
    depth = read_depth(write_raw(tmp_path / "d.png", raw))
    assert depth.dtype == np.float32 and depth.shape == (2, 3)
    np.testing.assert_allclose(depth, raw.astype(np.float64) * 0.001, rtol=1e-6)
    assert depth[0, 0] == 0


def test_units_convert_to_the_nearest_float32_metre(tmp_path):
    # Regression: float32(0.001) * 3000 is the float above 3.0, which a max-depth of 3 m then dropped.
    raw = np.arange(0, 65536, 7, dtype=np.uint16).reshape(1, -1)
    depth = read_depth(write_raw(tmp_path / "d.png", raw))
    np.testing.assert_array_equal(depth, (raw.astype(np.float64) / 1000).astype(np.float32))
    assert read_depth(write_raw(tmp_path / "e.png", np.array([[3000]], np.uint16)))[0, 0] == np.float32(3.0)
    tum = read_depth(write_raw(tmp_path / "t.png", raw), kind="tum")
    np.testing.assert_array_equal(tum, (raw.astype(np.float64) / 5000).astype(np.float32))


def test_png_custom_depth_scale(tmp_path):
    raw = np.array([[4, 8]], np.uint16)
    np.testing.assert_allclose(read_depth(write_raw(tmp_path / "d.png", raw), depth_scale=0.25), [[1.0, 2.0]])


def test_tum_kind_divides_by_5000(tmp_path):
    raw = np.array([[5000, 12345, 0]], np.uint16)
    np.testing.assert_allclose(read_depth(write_raw(tmp_path / "t.png", raw), kind="tum"),
                               [[1.0, 12345 / 5000, 0]], rtol=1e-6)


def test_real_tum_frame_matches_its_source_notes_and_open3d(data_dir):
    path = need(data_dir, "rgbd_open3d_testdata/RGBD/other_formats/TUM_depth.png")
    depth = read_depth(path, kind="tum")
    valid = depth > 0
    assert depth.shape == (480, 640)
    assert abs(depth[valid].min() - 1.46) < 0.01 and abs(depth[valid].max() - 9.33) < 0.01
    assert abs(np.median(depth[valid]) - 2.42) < 0.01 and abs((~valid).mean() - 0.19) < 0.01
    o3d = optional_import("open3d")
    ref = np.asarray(o3d.io.read_image(str(path))).astype(np.float32) / 5000.0
    np.testing.assert_allclose(depth, ref, rtol=1e-6)


def test_real_redwood_frame_in_millimetres(data_dir):
    depth = read_depth(need(data_dir, "rgbd_open3d_testdata/RGBD/depth/00000.png"))
    valid = depth[depth > 0]
    assert 0.9 < valid.min() < 1.0 and 2.6 < valid.max() < 2.75


def test_float_depth_from_pfm_and_npy_invalid_to_zero(tmp_path):
    d = np.array([[1.5, np.inf, -2.0], [np.nan, 0.0, 3.25]], np.float32)
    expected = np.array([[1.5, 0, 0], [0, 0, 3.25]], np.float32)
    np.testing.assert_array_equal(read_depth(write_pfm(tmp_path / "d.pfm", d)), expected)
    np.save(tmp_path / "d.npy", d)
    np.testing.assert_array_equal(read_depth(tmp_path / "d.npy"), expected)
    np.save(tmp_path / "i.npy", np.array([[1, 2]], np.int32))
    assert read_depth(tmp_path / "i.npy").dtype == np.float32


def test_exr_needs_opencv_with_openexr(tmp_path):
    path = tmp_path / "d.exr"
    path.write_bytes(b"not an exr")
    with pytest.raises(FormatError, match=r"d\.exr: cannot decode the image.*OpenEXR"):
        read_depth(path)


@pytest.mark.parametrize("kwargs,match", [
    ({"kind": "tum", "depth_scale": 0.001}, r"depth_scale: TUM depth is fixed"),
    ({"kind": "jpeg"}, r"kind: expected one of auto, png, tum, pfm, npy, exr, got 'jpeg'"),
    ({"depth_scale": -1.0}, r"depth_scale: expected a positive number"),
    ({"kind": "pfm", "depth_scale": 0.01}, r"pfm depth is already in metres"),
])
def test_read_depth_bad_options(tmp_path, kwargs, match):
    path = write_raw(tmp_path / "d.png", np.ones((2, 2), np.uint16))
    with pytest.raises(InputError, match=match):
        read_depth(path, **kwargs)


def test_read_depth_unknown_suffix(tmp_path):
    (tmp_path / "d.tif").write_bytes(b"x")
    with pytest.raises(InputError, match=r"d\.tif: unknown depth image suffix '\.tif'; expected one of \.png"):
        read_depth(tmp_path / "d.tif")


def test_read_depth_refuses_8_bit_png(tmp_path):
    path = write_raw(tmp_path / "d8.png", np.ones((2, 2), np.uint8))
    with pytest.raises(FormatError, match=r"d8\.png: expected a 16-bit one-channel depth PNG, got uint8"):
        read_depth(path)


def test_read_depth_refuses_garbage_and_missing(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(FormatError, match=r"bad\.png: cannot decode the image"):
        read_depth(tmp_path / "bad.png")
    with pytest.raises(InputError, match=r"gone\.png: no such file"):
        read_depth(tmp_path / "gone.png")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(FormatError, match=r"cube\.npy: expected a numeric \(H, W\) array"):
        read_depth(tmp_path / "cube.npy")


# -- write_depth_png ----------------------------------------------------------------------------

def test_write_depth_png_round_trip_and_invalid_as_zero(tmp_path):
    d = np.array([[0.5, 1.2344, np.nan], [-1.0, 0.0, 65.535]], np.float32)
    path = write_depth_png(tmp_path / "d.png", d)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, [[500, 1234, 0], [0, 0, 65535]])  # rounded to the nearest unit
    np.testing.assert_allclose(read_depth(path), [[0.5, 1.234, 0], [0, 0, 65.535]], rtol=1e-6)


def test_write_depth_png_with_tum_scale_reads_back_with_kind_tum(tmp_path):
    d = np.array([[1.0, 2.5]], np.float32)
    path = write_depth_png(tmp_path / "t.png", d, depth_scale=1 / 5000)
    np.testing.assert_allclose(read_depth(path, kind="tum"), d, rtol=1e-6)


def test_tiny_valid_depth_is_not_lost(tmp_path):
    path = write_depth_png(tmp_path / "d.png", np.array([[0.0001]], np.float32))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[0, 0] == 1


def test_write_depth_png_refuses_values_beyond_16_bits(tmp_path):
    with pytest.raises(InputError, match=r"max depth 70 m does not fit in 16 bits at depth_scale 0.001 m "
                                         r"\(limit 65.535 m\)"):
        write_depth_png(tmp_path / "d.png", np.array([[1.0, 70.0]]))
    assert not (tmp_path / "d.png").exists()


@pytest.mark.parametrize("depth,match", [
    (np.zeros((2, 2, 1)), r"depth_m: expected shape \(H, W\), got \(2, 2, 1\)"),
    (np.zeros((0, 4)), r"depth_m: expected a non-empty array"),
])
def test_write_depth_png_bad_arrays(tmp_path, depth, match):
    with pytest.raises(InputError, match=match):
        write_depth_png(tmp_path / "d.png", depth)


def test_write_depth_png_refuses_to_overwrite(tmp_path):
    path = write_depth_png(tmp_path / "d.png", np.ones((1, 1)))
    with pytest.raises(OutputExistsError, match=r"d\.png: exists"):
        write_depth_png(path, np.ones((1, 1)) * 2)
    write_depth_png(path, np.ones((1, 1)) * 2, overwrite=True)
    assert read_depth(path)[0, 0] == 2


# -- read_disparity_png -------------------------------------------------------------------------

def test_disparity_scale_and_unknown_zero(tmp_path):
    raw = np.array([[0, 4, 255]], np.uint8)
    disp = read_disparity_png(write_raw(tmp_path / "disp.png", raw), scale=4)
    assert disp.dtype == np.float32
    np.testing.assert_array_equal(disp, [[0, 1, 63.75]])


def test_disparity_accepts_grey_stored_as_rgb(tmp_path):
    raw = np.dstack([np.array([[8, 16]], np.uint8)] * 3)
    np.testing.assert_array_equal(read_disparity_png(write_raw(tmp_path / "g.png", raw), scale=8), [[1, 2]])


def test_real_cones_and_tsukuba_disparities(data_dir):
    cones = need(data_dir, "middlebury_legacy/Cones/disp2.png")
    disp = read_disparity_png(cones, scale=4)
    ref = np.asarray(Image.open(cones)).astype(np.float32) / 4
    assert disp.shape == (375, 450)
    np.testing.assert_array_equal(disp, ref)
    tsukuba = read_disparity_png(need(data_dir, "middlebury_legacy/Tsukuba/truedisp.pgm"), scale=16)
    assert tsukuba.shape == (288, 384) and tsukuba[tsukuba > 0].min() > 0 and tsukuba.max() <= 16


def test_disparity_refuses_colour_and_16_bit(tmp_path):
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (1, 2, 3)
    with pytest.raises(FormatError, match=r"c\.png: expected a grey disparity image"):
        read_disparity_png(write_raw(tmp_path / "c.png", colour), scale=1)
    with pytest.raises(FormatError, match=r"w\.png: expected an 8-bit disparity image, got uint16"):
        read_disparity_png(write_raw(tmp_path / "w.png", np.ones((2, 2), np.uint16)), scale=1)
    with pytest.raises(InputError, match=r"scale: expected a positive number"):
        read_disparity_png(tmp_path / "w.png", scale=0)


# -- colour -------------------------------------------------------------------------------------

def test_read_color_returns_rgb(tmp_path):
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[0, 0] = (0, 0, 255)  # red, as OpenCV stores it
    rgb = read_color(write_raw(tmp_path / "red.png", bgr))
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (255, 0, 0)


def test_read_color_grey_becomes_three_channels(tmp_path):
    rgb = read_color(write_raw(tmp_path / "g.png", np.array([[7, 200]], np.uint8)))
    assert rgb.shape == (1, 2, 3)
    np.testing.assert_array_equal(rgb[0, 1], [200, 200, 200])


def test_read_color_matches_pillow_on_real_image(data_dir):
    path = need(data_dir, "rgbd_open3d_testdata/RGBD/other_formats/TUM_color.png")
    np.testing.assert_array_equal(read_color(path), np.asarray(Image.open(path).convert("RGB")))


def test_write_png_rgb_lands_as_rgb(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[1, 0] = (10, 20, 30)
    path = write_png(tmp_path / "c.png", rgb)
    assert tuple(np.asarray(Image.open(path))[1, 0]) == (10, 20, 30)
    np.testing.assert_array_equal(read_color(path), rgb)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_write_png_grey(tmp_path, dtype):
    grey = np.array([[0, 1, 255]], dtype)
    path = write_png(tmp_path / "g.png", grey)
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, grey)


@pytest.mark.parametrize("img,match", [
    (np.zeros((2, 2, 3), np.float32), r"rgb_or_gray: expected a unsigned integer array, got dtype float32"),
    (np.zeros((2, 2, 3), np.uint16), r"rgb_or_gray: expected \(H, W, 3\) uint8 RGB"),
    (np.zeros((2, 2, 2), np.uint8), r"rgb_or_gray: expected \(H, W, 3\) uint8 RGB"),
    (np.zeros((2, 2), np.uint32), r"rgb_or_gray: expected a uint8 or uint16 grey image"),
    (np.zeros(3, np.uint8), r"rgb_or_gray: expected shape \(H, W\) or \(H, W, 3\)"),
])
def test_write_png_bad_input(tmp_path, img, match):
    with pytest.raises(InputError, match=match):
        write_png(tmp_path / "x.png", img)


def test_write_png_refuses_to_overwrite(tmp_path):
    path = write_png(tmp_path / "x.png", np.zeros((1, 1), np.uint8))
    with pytest.raises(OutputExistsError, match=r"x\.png: exists"):
        write_png(path, np.ones((1, 1), np.uint8))


def test_read_color_garbage_names_the_file(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(FormatError, match=r"^x\.jpg: cannot decode the image"):
        read_color(tmp_path / "x.jpg")


def test_integer_npy_is_millimetres_like_a_png(tmp_path):
    """Issue 14: a uint16 .npy in millimetres was read as metres (1500 m), and --depth-scale was refused."""
    mm = np.array([[1500, 0], [65535, 3000]], np.uint16)
    np.save(tmp_path / "mm.npy", mm)
    np.testing.assert_array_equal(read_depth(tmp_path / "mm.npy"),
                                  np.array([[1.5, 0.0], [65.535, 3.0]], np.float32))
    np.testing.assert_allclose(read_depth(tmp_path / "mm.npy", depth_scale=0.0002)[0, 0], 0.3)
    # A float array is metres already; depth_scale converts one stored in other units.
    np.save(tmp_path / "f.npy", np.array([[1500.0]], np.float32))
    assert read_depth(tmp_path / "f.npy")[0, 0] == 1500.0
    assert read_depth(tmp_path / "f.npy", depth_scale=0.001)[0, 0] == pytest.approx(1.5)
