"""PFM: byte order from the scale sign, bottom-up rows, inf kept, short bodies refused."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from tests.conftest import need

from depthcloud.errors import FormatError, InputError, OutputExistsError
from depthcloud.io import read_pfm, write_pfm
from depthcloud.io.pfm import decode_pfm, encode_pfm


def test_rows_are_bottom_up_in_the_file_and_top_down_in_the_array():
    # Written by hand: 2 wide, 3 high, little-endian; the file's first row is the image's last.
    data = b"Pf\n2 3\n-1.0\n" + struct.pack("<6f", 5, 6, 3, 4, 1, 2)
    img = decode_pfm(data)
    assert img.dtype == np.float32 and img.shape == (3, 2)
    np.testing.assert_array_equal(img, [[1, 2], [3, 4], [5, 6]])


def test_positive_scale_means_big_endian():
    data = b"Pf\n2 1\n1.0\n" + struct.pack(">2f", 1.5, -2.0)
    np.testing.assert_array_equal(decode_pfm(data), [[1.5, -2.0]])


def test_colour_pf_keeps_channel_order():
    data = b"PF\n1 2\n-1\n" + struct.pack("<6f", 4, 5, 6, 1, 2, 3)
    img = decode_pfm(data)
    assert img.shape == (2, 1, 3)
    np.testing.assert_array_equal(img[:, 0], [[1, 2, 3], [4, 5, 6]])


def test_inf_is_kept_as_stored():
    data = b"Pf\n3 1\n-1\n" + struct.pack("<3f", 1.0, float("inf"), 2.0)
    img = decode_pfm(data)
    assert np.isinf(img[0, 1]) and img[0, 0] == 1.0 and img[0, 2] == 2.0


def test_scale_magnitude_does_not_scale_values():
    # Middlebury writes scale -0.003922 and means disparity in pixels as stored.
    data = b"Pf\n1 1\n-0.003922\n" + struct.pack("<f", 42.5)
    assert decode_pfm(data)[0, 0] == 42.5


def test_windows_line_ends_in_the_header():
    # Regression: after "-1\r\n" the body was read one byte late (the "\n" taken as data).
    data = b"Pf\r\n2 1\r\n-1\r\n" + struct.pack("<2f", 1.5, 2.5)
    np.testing.assert_array_equal(decode_pfm(data), [[1.5, 2.5]])


def test_header_whitespace_variants():
    data = b"Pf 2  1\t-1\n" + struct.pack("<2f", 1, 2)
    np.testing.assert_array_equal(decode_pfm(data), [[1, 2]])


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 9), (4, 6, 3)])
def test_round_trip_exact(tmp_path, rng, shape):
    img = rng.standard_normal(shape).astype(np.float32)
    img.flat[0] = np.inf
    path = write_pfm(tmp_path / "x.pfm", img)
    back = read_pfm(path)
    assert back.dtype == np.float32 and back.shape == shape
    np.testing.assert_array_equal(back, img)


def test_writer_header_and_integer_input():
    data = encode_pfm(np.array([[1, 2, 3]], dtype=np.int16))
    assert data == b"Pf\n3 1\n-1\n" + struct.pack("<3f", 1, 2, 3)


def test_opencv_reads_what_we_write(rng):
    img = rng.random((5, 7)).astype(np.float32)
    got = cv2.imdecode(np.frombuffer(encode_pfm(img), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(got, img)


def test_middlebury_disparity_matches_opencv(data_dir):
    path = need(data_dir, "middlebury_eval3_q/Adirondack/disp0GT.pfm")
    ours = read_pfm(path)
    ref = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    scale = abs(float(path.read_bytes().split(maxsplit=4)[3]))
    assert ours.shape == ref.shape == (496, 718)
    finite = np.isfinite(ours)
    np.testing.assert_array_equal(finite, np.isfinite(ref))
    assert 0.5 < finite.mean() < 1.0
    # OpenCV divides by the scale's magnitude; Middlebury's values are pixels as stored.
    np.testing.assert_allclose(ref[finite] * scale, ours[finite], rtol=1e-5)
    assert ours[finite].min() > 0 and ours[finite].max() < 300


@pytest.mark.parametrize("data,match", [
    (b"P5\n2 2\n255\n", r"d\.pfm: line 1: not a PFM file: expected 'Pf' or 'PF'"),
    (b"Pf\n2 2\n", r"expected a header 'Pf\|PF', 'W H', 'scale'"),
    (b"Pf\ntwo 2\n-1\n" + b"\0" * 16, r"line 2: expected 'W H' as two integers"),
    (b"Pf\n0 2\n-1\n", r"line 2: expected a positive size, got 0x2"),
    (b"Pf\n2 2\nabc\n", r"line 3: expected the scale as a number"),
    (b"Pf\n2 2\n0\n" + b"\0" * 16, r"line 3: expected a non-zero finite scale"),
    (b"Pf\n2 2\n-1\n" + b"\0" * 15, r"d\.pfm: expected 16 bytes of float data, got 15"),
    (b"PF\n2 2\n-1\n" + b"\0" * 16, r"expected 48 bytes of float data, got 16"),
    (b"Pf\n100000 100000\n-1\n" + b"\0" * 8, r"expected 40000000000 bytes of float data, got 8"),
])
def test_bad_input(data, match):
    with pytest.raises(FormatError, match=match):
        decode_pfm(data, path="d.pfm")


def test_short_file_on_disk_names_the_file(tmp_path):
    path = write_pfm(tmp_path / "short.pfm", np.ones((4, 4), np.float32))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(FormatError, match=r"^short\.pfm: expected 64 bytes of float data, got 61$"):
        read_pfm(path)


@pytest.mark.parametrize("arr,match", [
    (np.zeros((2, 2, 2), np.float32), r"array: expected shape \(H, W\) or \(H, W, 3\)"),
    (np.zeros(4, np.float32), r"array: expected shape \(H, W\) or \(H, W, 3\), got \(4,\)"),
    (np.zeros((0, 3), np.float32), r"array: expected a non-empty array"),
    (np.array([["a"]]), r"array: expected a float or integer or unsigned integer array, got dtype <U1"),
])
def test_writer_rejects_bad_arrays(arr, match):
    with pytest.raises(InputError, match=match):
        encode_pfm(arr)


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = write_pfm(tmp_path / "x.pfm", np.ones((2, 2), np.float32))
    with pytest.raises(OutputExistsError, match=r"x\.pfm: exists"):
        write_pfm(path, np.zeros((2, 2), np.float32))
    assert read_pfm(path)[0, 0] == 1
    write_pfm(path, np.zeros((2, 2), np.float32), overwrite=True)
    assert read_pfm(path)[0, 0] == 0
