"""Size limits before decoding and the seeded fuzz of every reader (issue 14, defect 10).

A few hundred bytes must never make a reader allocate gigabytes or hang: PNG/JPEG/PNM headers and the
.npy headers inside .npz are checked against DEPTHCLOUD_MAX_PIXELS first, a PLY header's property
count is capped (and parsed in linear time), a .bag's record lengths and chunk sizes are checked
before librealsense sees the file, a .dcrec record cannot decompress past the limit. The fuzz runs
300 seeded mutations per format and accepts only FormatError (or a clean decode), with bounded memory.
"""

from __future__ import annotations

import io
import random
import resource
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import need

from depthcloud.cloud import PointCloud
from depthcloud.errors import ConfigError, FormatError
from depthcloud.io.depthimage import read_color, read_depth, write_depth_png
from depthcloud.io.limits import DEFAULT_MAX_PIXELS, check_image_bytes, declared_image_size, max_pixels
from depthcloud.io.npz import decode_npz, encode_npz
from depthcloud.io.pcd import decode_pcd, encode_pcd
from depthcloud.io.pfm import decode_pfm, encode_pfm
from depthcloud.io.ply import MAX_PROPERTIES, decode_ply, encode_ply, parse_ply_header
from depthcloud.io.rosbag import scan_bag

BAG = "realsense_bag/single_depth_color_640x480.bag"


def png_header(width: int, height: int, bit_depth: int = 16, color_type: int = 0) -> bytes:
    """A PNG whose IHDR declares ``width`` × ``height`` and whose one IDAT holds a few zero rows."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
            + chunk(b"IEND", b""))


# -- the limits ------------------------------------------------------------------------------------

def test_a_png_declaring_gigapixels_is_refused_before_decoding(tmp_path):
    """A 777 KB PNG decoded to 5.6 GB: now its IHDR is read first."""
    p = tmp_path / "bomb.png"
    p.write_bytes(png_header(40000, 35000))
    with pytest.raises(FormatError, match=r"bomb\.png: the image declares 40000x35000 = 1400000000 pixels, over "
                                          r"the limit of 67108864 pixels; .*DEPTHCLOUD_MAX_PIXELS"):
        read_depth(p)
    with pytest.raises(FormatError, match="declares 40000x35000"):
        read_color(p)
    with pytest.raises(FormatError, match="over the limit of 1000 pixels"):
        check_image_bytes(png_header(40, 30), limit=1000)


def test_the_limit_is_adjustable(tmp_path, monkeypatch):
    depth = np.ones((30, 40), np.float32)
    p = write_depth_png(tmp_path / "d.png", depth)
    assert read_depth(p).shape == (30, 40)
    with pytest.raises(FormatError, match="40x30 = 1200 pixels, over the limit of 1000"):
        read_depth(p, max_pixels=1000)
    monkeypatch.setenv("DEPTHCLOUD_MAX_PIXELS", "1000")
    assert max_pixels() == 1000
    with pytest.raises(FormatError, match="over the limit of 1000"):
        read_depth(p)
    assert read_depth(p, max_pixels=2000).shape == (30, 40)  # the argument wins over the environment
    monkeypatch.setenv("DEPTHCLOUD_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="DEPTHCLOUD_MAX_PIXELS: expected a positive number of pixels, got 'lots'"):
        max_pixels()
    monkeypatch.delenv("DEPTHCLOUD_MAX_PIXELS")
    assert max_pixels() == DEFAULT_MAX_PIXELS == 2**26


def test_declared_sizes_of_jpeg_and_pnm():
    import cv2

    ok, jpg = cv2.imencode(".jpg", np.zeros((23, 41, 3), np.uint8))
    assert ok and declared_image_size(jpg.tobytes()) == (41, 23)
    assert declared_image_size(b"P5\n# comment\n41 23\n255\n" + b"\x00" * 943) == (41, 23)
    assert declared_image_size(b"GIF89a") is None


def test_an_npz_declaring_gigabytes_is_refused_before_reading():
    """A 1.4 MB .npz decoded to 2 GB: the .npy headers inside are read first."""
    buf = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": (200_000_000, 3)}
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("points.npy", npy.getvalue() + b"\x00" * 1024)
    with pytest.raises(FormatError, match=r"c\.npz: array 'points' declares shape \(200000000, 3\) of float32 "
                                          r"\(2400000000 bytes\), over the limit of 536870912 bytes"):
        decode_npz(buf.getvalue(), path="c.npz")
    small = encode_npz(PointCloud(np.ones((5, 3), np.float32)))
    assert len(decode_npz(small)) == 5
    with pytest.raises(FormatError, match="over the limit of 40 bytes"):
        decode_npz(small, max_pixels=5)


def test_an_npy_depth_declaring_gigabytes_is_refused(tmp_path):
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<u2", "fortran_order": False, "shape": (60000, 60000)})
    (tmp_path / "d.npy").write_bytes(npy.getvalue() + b"\x00" * 64)
    with pytest.raises(FormatError, match=r"d\.npy: the array declares shape \(60000, 60000\) of uint16"):
        read_depth(tmp_path / "d.npy")


def test_ply_header_with_100k_properties_is_refused_in_linear_time():
    props = b"".join(b"property float p%d\n" % i for i in range(100_000))
    data = b"ply\nformat ascii 1.0\nelement vertex 1\n" + props + b"end_header\n"
    with pytest.raises(FormatError, match=rf"line {MAX_PROPERTIES + 4}: element 'vertex' has more than "
                                          rf"{MAX_PROPERTIES} properties"):
        parse_ply_header(data)
    # Duplicates are still found (a set now, not a scan of the list per property).
    dup = b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float x\nend_header\n"
    with pytest.raises(FormatError, match="property 'x' appears twice"):
        parse_ply_header(dup)


def test_real_bag_scans_and_summarises(data_dir):
    s = scan_bag(need(data_dir, BAG))
    assert s.streams() == {"/device_0/sensor_0/Depth_0": 2, "/device_0/sensor_1/Color_0": 1}
    assert s.chunks == 2 and s.compressions == {"lz4"} and 0.1 < s.duration_s < 0.3


def test_corrupt_bag_lengths_are_refused_before_librealsense(data_dir, tmp_path):
    data = bytearray(need(data_dir, BAG).read_bytes())
    at = len(b"#ROSBAG V2.0\n")
    bad = bytearray(data)
    bad[at:at + 4] = struct.pack("<I", 0x7FFFFFF0)  # the first record's header length
    (tmp_path / "a.bag").write_bytes(bad)
    with pytest.raises(FormatError, match=r"a\.bag: byte 13: record header length 2147483632 is absurd"):
        scan_bag(tmp_path / "a.bag")
    # A chunk whose declared decompressed size is 1.9 GB.
    i = data.find(b"size=", 4096)
    bad = bytearray(data)
    bad[i + 5:i + 9] = struct.pack("<I", 1_900_000_000)
    (tmp_path / "b.bag").write_bytes(bad)
    with pytest.raises(FormatError, match=r"a chunk declares 1900000000 bytes once decompressed, over the limit"):
        scan_bag(tmp_path / "b.bag")
    (tmp_path / "c.bag").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="past the end"):
        scan_bag(tmp_path / "c.bag")
    optional_rs = pytest.importorskip("depthcloud.sources.realsense")
    with pytest.raises(FormatError, match="absurd"):
        optional_rs.open_bag(str(tmp_path / "a.bag"))


# -- the seeded fuzz ---------------------------------------------------------------------------------

N_MUTATIONS = 300
_rng = np.random.default_rng(14)
_CLOUD = PointCloud(_rng.standard_normal((8, 3)).astype(np.float32), _rng.integers(0, 256, (8, 3), dtype=np.uint8))


def mutate(data: bytes, rnd: random.Random) -> bytes:
    """A few byte flips, cuts, inserts, deletes, or a header number replaced by a huge one."""
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        if not b:
            break
        head = min(len(b), 512)
        i = rnd.randrange(head) if rnd.random() < 0.8 else rnd.randrange(len(b))
        op = rnd.randrange(6)
        if op == 0:
            b[i] = rnd.randrange(256)
        elif op == 1:
            del b[i:]
        elif op == 2:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
        elif op == 3:
            del b[i:i + rnd.randint(1, 8)]
        elif op == 4:
            b[i:i + 4] = struct.pack("<I", rnd.choice([0, 1, 2**16, 2**31 - 1, 2**32 - 1, rnd.randrange(2**32)]))
        else:
            digits = [k for k in range(head) if chr(b[k]).isdigit()]
            if digits:
                k = rnd.choice(digits)
                b[k:k + 1] = str(rnd.choice([0, 9, 10**6, 10**9, 10**12, 4294967295])).encode()
    return bytes(b)


def _png_depth() -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", (_rng.random((24, 32)) * 5000).astype(np.uint16))
    assert ok
    return buf.tobytes()


def _dcrec(tmp: Path) -> bytes:
    from depthcloud.frame import Frame
    from depthcloud.sources.replay import RecordingWriter
    from depthcloud.sources.synthetic import default_intrinsics

    intr = default_intrinsics(16, 12)
    with RecordingWriter(tmp / "seed.dcrec", compression="zlib", overwrite=True) as w:
        for k in range(2):
            w.write(Frame(np.full((12, 16), 1.5, np.float32), intr, np.zeros((12, 16, 3), np.uint8), seq=k, stamp=k))
    return (tmp / "seed.dcrec").read_bytes()


def _read_file(suffix: str, reader: Callable[[Path], object]) -> Callable[[bytes, Path], object]:
    def run(data: bytes, tmp: Path) -> object:
        p = tmp / f"fuzz{suffix}"
        p.write_bytes(data)
        return reader(p)
    return run


def _read_dcrec(path: Path) -> object:
    from depthcloud.sources.replay import RecordingReader

    with RecordingReader(path) as r:
        return list(r)


FORMATS: dict[str, tuple[Callable[[Path], bytes], Callable[[bytes, Path], object]]] = {
    "ply": (lambda t: encode_ply(_CLOUD), lambda d, t: decode_ply(d)),
    "ply-ascii": (lambda t: encode_ply(_CLOUD, binary=False), lambda d, t: decode_ply(d)),
    "pcd": (lambda t: encode_pcd(_CLOUD, data="binary_compressed"), lambda d, t: decode_pcd(d)),
    "pfm": (lambda t: encode_pfm(_rng.random((6, 5)).astype(np.float32)), lambda d, t: decode_pfm(d)),
    "png-depth": (lambda t: _png_depth(), _read_file(".png", read_depth)),
    "npz": (lambda t: encode_npz(_CLOUD), lambda d, t: decode_npz(d)),
    "dcrec": (_dcrec, _read_file(".dcrec", _read_dcrec)),
}


def _fuzz(seed: bytes, run: Callable[[bytes, Path], object], tmp: Path, salt: int) -> int:
    """Run the mutations; return how many decoded cleanly. Anything but FormatError fails the test."""
    rnd = random.Random(1400 + salt)
    clean = 0
    for k in range(N_MUTATIONS):
        data = mutate(seed, rnd)
        try:
            run(data, tmp)
            clean += 1
        except FormatError:
            pass
        except Exception as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"mutation {k}: {type(exc).__name__}: {exc}") from exc
    return clean


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_fuzz_gives_only_format_errors_in_bounded_memory(fmt, tmp_path):
    make, run = FORMATS[fmt]
    seed = make(tmp_path)
    run(seed, tmp_path)  # the seed itself decodes
    rss0 = _peak_rss_mib()
    tracemalloc.start()
    try:
        _fuzz(seed, run, tmp_path, salt=list(FORMATS).index(fmt))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{fmt}: a mutation allocated {peak / 2**20:.0f} MiB"
    assert _peak_rss_mib() - rss0 < 256, f"{fmt}: peak RSS grew by {_peak_rss_mib() - rss0:.0f} MiB"


def test_fuzz_bag_headers_give_only_format_errors(data_dir, tmp_path):
    seed = need(data_dir, BAG).read_bytes()
    rnd = random.Random(1499)
    refused = 0
    for k in range(N_MUTATIONS):
        data = mutate(seed[:8192], rnd) + seed[8192:]  # the record headers live at the front
        (tmp_path / "f.bag").write_bytes(data)
        try:
            s = scan_bag(tmp_path / "f.bag")
        except FormatError:
            refused += 1
            continue
        except Exception as exc:  # pragma: no cover
            raise AssertionError(f"mutation {k}: {type(exc).__name__}: {exc}") from exc
        assert s.size == len(data)
    assert refused > N_MUTATIONS // 4  # the checks do refuse; the rest passed every length check


def test_cli_info_and_disparity_check_sizes_first(tmp_path, capsys):
    from depthcloud.cli import main

    (tmp_path / "bomb.png").write_bytes(png_header(40000, 35000))
    assert main(["info", str(tmp_path / "bomb.png")]) == 2
    assert "bomb.png: the image declares 40000x35000" in capsys.readouterr().err
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": (90000, 90000)})
    (tmp_path / "d.npy").write_bytes(npy.getvalue() + b"\x00" * 64)
    assert main(["info", str(tmp_path / "d.npy")]) == 2
    assert "d.npy: the array declares shape (90000, 90000) of float32" in capsys.readouterr().err
