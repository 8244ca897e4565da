"""Fuzzing the PLY, PCD and PFM decoders: arbitrary and mutated bytes raise FormatError or decode.

Mutations start from valid files of every variant, so the fuzzer reaches body decoding and not only
the magic check. Each test is capped at 200 examples to stay fast.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError
from depthcloud.io.pcd import decode_pcd, encode_pcd
from depthcloud.io.pfm import decode_pfm, encode_pfm
from depthcloud.io.ply import decode_ply, encode_ply
from depthcloud.io.xyz import decode_xyz

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_rng = np.random.default_rng(99)
_CLOUD = PointCloud((_rng.standard_normal((6, 3))).astype(np.float32),
                    _rng.integers(0, 256, (6, 3), dtype=np.uint8),
                    _rng.standard_normal((6, 3)).astype(np.float32))

PLY_SEEDS = [
    encode_ply(_CLOUD),
    encode_ply(_CLOUD, byte_order=">"),
    encode_ply(_CLOUD, binary=False, comments=["seed"]),
    (b"ply\nformat binary_little_endian 1.0\nelement face 2\nproperty list uchar int vertex_indices\n"
     b"element vertex 1\nproperty double x\nproperty double y\nproperty double z\nend_header\n"
     + bytes([3]) + b"\x00" * 12 + bytes([1]) + b"\x00" * 4 + b"\x00" * 24),
    (b"ply\r\nformat ascii 1.0\r\nelement vertex 2\r\nproperty float x\r\nproperty list uchar int l\r\n"
     b"property float y\r\nproperty float z\r\nelement face 1\r\nproperty list uchar int v\r\nend_header\r\n"
     b"1 2 0 0 2 3\r\n4 0 5 6\r\n3 0 1 2\r\n"),
]
PCD_SEEDS = [encode_pcd(_CLOUD, data=d) for d in ("ascii", "binary", "binary_compressed")]
PFM_SEEDS = [encode_pfm(_rng.random((3, 4)).astype(np.float32)),
             encode_pfm(_rng.random((2, 3, 3)).astype(np.float32)),
             b"Pf\n2 1\n1.0\n" + np.array([1, 2], ">f4").tobytes()]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few byte flips, cuts, splices of random bytes, or changed header numbers."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "digit", "number"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 8))]
        elif op == "digit":
            digits = [k for k, b in enumerate(data[:400]) if chr(b).isdigit()]
            if digits:
                data[draw(st.sampled_from(digits))] = ord(draw(st.sampled_from("0123456789-")))
        else:
            # Replace a whole header number (a count, a size, a width) with any integer, huge ones included.
            runs = [m.span() for m in re.finditer(rb"\d+", bytes(data[:400]))]
            if runs:
                a, b = draw(st.sampled_from(runs))
                data[a:b] = str(draw(st.integers(0, 10**25))).encode()
    return bytes(data)


def only_format_errors(decode, data: bytes) -> None:
    with contextlib.suppress(FormatError):
        decode(data)


@FUZZ
@given(st.binary(max_size=300))
def test_ply_arbitrary_bytes(data):
    only_format_errors(decode_ply, data)


@FUZZ
@given(st.binary(max_size=200).map(lambda b: b"ply\nformat binary_little_endian 1.0\n" + b))
def test_ply_arbitrary_bytes_after_the_magic(data):
    only_format_errors(decode_ply, data)


@FUZZ
@given(mutated(PLY_SEEDS))
def test_ply_mutated_files(data):
    only_format_errors(decode_ply, data)


@FUZZ
@given(st.binary(max_size=300))
def test_pcd_arbitrary_bytes(data):
    only_format_errors(decode_pcd, data)


@FUZZ
@given(mutated(PCD_SEEDS))
def test_pcd_mutated_files(data):
    only_format_errors(decode_pcd, data)


@FUZZ
@given(st.binary(max_size=100).map(lambda b: b"Pf\n" + b))
def test_pfm_arbitrary_bytes_after_the_magic(data):
    only_format_errors(decode_pfm, data)


@FUZZ
@given(mutated(PFM_SEEDS))
def test_pfm_mutated_files(data):
    only_format_errors(decode_pfm, data)


@FUZZ
@given(st.text(alphabet="0123456789.,;eE+-naif \t\n#xyz", max_size=200).map(str.encode))
def test_xyz_arbitrary_text(data):
    only_format_errors(decode_xyz, data)


@pytest.mark.parametrize("seed", range(len(PLY_SEEDS)))
def test_ply_seeds_decode(seed):
    assert len(decode_ply(PLY_SEEDS[seed])) >= 1


@pytest.mark.parametrize("seed", range(len(PCD_SEEDS)))
def test_pcd_seeds_decode(seed):
    assert decode_pcd(PCD_SEEDS[seed]) == _CLOUD


# -- property-based round trips: any finite cloud comes back bit for bit ----------------------------

@st.composite
def clouds(draw: st.DrawFn, *, normals: bool = True) -> PointCloud:
    from hypothesis.extra import numpy as hnp

    n = draw(st.integers(0, 12))
    f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
    pts = draw(hnp.arrays(np.float32, (n, 3), elements=f32))
    cols = draw(st.none() | hnp.arrays(np.uint8, (n, 3)))
    nrm = draw(st.none() | hnp.arrays(np.float32, (n, 3), elements=f32)) if normals else None
    return PointCloud(pts, cols, nrm, frame=draw(st.sampled_from(["optical", "zup", "opengl"])))


def same_bits(a: PointCloud, b: PointCloud) -> bool:
    def bits(x: np.ndarray | None) -> bytes | None:
        return None if x is None else x.tobytes()
    return (bits(a.points), bits(a.colors), bits(a.normals), a.frame) == (
        bits(b.points), bits(b.colors), bits(b.normals), b.frame)


@settings(max_examples=100, deadline=None)
@given(clouds(), st.sampled_from([{"binary": True}, {"byte_order": ">"}, {"binary": False}]))
def test_ply_round_trip_any_cloud(cloud, kw):
    assert same_bits(decode_ply(encode_ply(cloud, **kw)), cloud)  # -0.0 and subnormals included


@settings(max_examples=100, deadline=None)
@given(clouds(), st.sampled_from(["ascii", "binary", "binary_compressed"]))
def test_pcd_round_trip_any_cloud(cloud, data):
    assert same_bits(decode_pcd(encode_pcd(cloud, data=data)), cloud)


@settings(max_examples=100, deadline=None)
@given(clouds(normals=False))
def test_xyz_round_trip_any_cloud(cloud):
    from depthcloud.io.xyz import encode_xyz

    back = decode_xyz(encode_xyz(cloud))
    assert back.points.tobytes() == cloud.points.tobytes()
    if len(cloud):
        assert (back.colors is None) == (cloud.colors is None)
        assert back.colors is None or back.colors.tobytes() == cloud.colors.tobytes()
