"""The wire formats: compat JSON, binary requests and cloud messages (pure functions, no sockets)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from depthcloud import PointCloud
from depthcloud.errors import InputError, ProtocolError
from depthcloud.serve import protocol as p


def _pts(rng: np.random.Generator, n: int, scale: float = 3.0) -> np.ndarray:
    return (rng.standard_normal((n, 3)) * scale).astype(np.float32)


# -- compat JSON -------------------------------------------------------------------------------

def test_compat_parses_to_the_cloud_within_1e_6(rng):
    pts = _pts(rng, 5000)
    parsed = np.asarray(json.loads(p.encode_compat(pts)), dtype=np.float64)
    assert parsed.shape == (5000, 3)
    assert np.abs(parsed - pts.astype(np.float64)).max() <= 5.1e-8


def test_compat_matches_python_fixed_point_formatting(rng):
    # An independent reference: Python's own fixed-point formatting of the same float32 values.
    # (Values away from exact .5 ties so both rounding rules agree.)
    pts = _pts(rng, 300)
    ref = "[" + ",".join("[" + ",".join(f"{float(x):.7f}" for x in row) + "]" for row in pts) + "]"
    ref = ref.replace("-0.0000000", "0.0000000")
    assert p.encode_compat(pts).decode() == ref


def test_compat_pins_the_text_form():
    pts = np.array([[1.0, -2.5, 0.125], [-0.00000001, 1234.5, 0.0]], dtype=np.float32)
    assert p.encode_compat(pts) == b"[[1.0000000,-2.5000000,0.1250000],[0.0000000,1234.5000000,0.0000000]]"
    assert p.encode_compat(pts, decimals=2) == b"[[1.00,-2.50,0.13],[0.00,1234.50,0.00]]"


def test_compat_degenerate_sizes_and_dtypes():
    assert p.encode_compat(np.empty((0, 3), np.float32)) == b"[]"
    assert json.loads(p.encode_compat(np.array([[1, 2, 3]], dtype=np.int32))) == [[1.0, 2.0, 3.0]]
    f64 = np.array([[0.1, 0.2, 0.3]])
    assert json.loads(p.encode_compat(f64)) == [[0.1, 0.2, 0.3]]


def test_compat_pure_python_kernel_agrees_with_compiled(rng):
    # The same function runs uncompiled where numba cannot load; both must write the same bytes.
    pts = _pts(rng, 50, scale=50.0)
    out = np.empty(10_000, dtype=np.uint8)
    used = p._write_json(pts, 7, out)
    assert out[:used].tobytes() == p.encode_compat(pts)


def test_compat_refuses_bad_input():
    with pytest.raises(InputError, match=r"points: expected shape \(N, 3\), got \(4, 2\)"):
        p.encode_compat(np.zeros((4, 2), np.float32))
    with pytest.raises(InputError, match="NaN or inf"):
        p.encode_compat(np.array([[np.nan, 0, 0]], np.float32))
    with pytest.raises(InputError, match=r"decimals: expected an integer in 1..9, got 0"):
        p.encode_compat(np.zeros((1, 3), np.float32), decimals=0)
    with pytest.raises(InputError, match="cannot be written with 9 decimals"):
        p.encode_compat(np.array([[3e10, 0, 0]], np.float32), decimals=9)


def test_decode_compat_round_trip_and_errors(rng):
    pts = _pts(rng, 10)
    np.testing.assert_allclose(p.decode_compat(p.encode_compat(pts)), pts, atol=1e-7)
    assert p.decode_compat(b"[]").shape == (0, 3)
    with pytest.raises(ProtocolError, match="server: the source is failed"):
        p.decode_compat(p.compat_error_message("the source is failed"))
    with pytest.raises(ProtocolError, match="not JSON"):
        p.decode_compat(b"[[1,2")
    with pytest.raises(ProtocolError, match=r"got shape \(1, 2\)"):
        p.decode_compat(b"[[1,2]]")
    with pytest.raises(ProtocolError, match="got str"):
        p.decode_compat(b'"hello"')


@pytest.mark.parametrize("text, magnitude", [("1", 1), ("2", 2), (" 8\n", 8)])
def test_parse_compat_request(text, magnitude):
    assert p.parse_compat_request(text) == magnitude


@pytest.mark.parametrize("message, match", [
    ("0", "magnitude 1..8 as text, got '0'"), ("9", "got '9'"), ("two", "got 'two'"), ("-1", "got '-1'"),
    ("", "got ''"), (b"2", "got a binary message"), ("x" * 100, "…"),
])
def test_parse_compat_request_refuses(message, match):
    with pytest.raises(ProtocolError, match=match):
        p.parse_compat_request(message)


# -- binary requests ---------------------------------------------------------------------------

def test_parse_request_defaults_and_fields():
    r = p.parse_request('{"op": "get"}')
    assert (r.op, r.encoding, r.colors, r.compress, r.max_points, r.decimation) == ("get", "f32", False, "none", None, None)
    r = p.parse_request(json.dumps({"op": "subscribe", "encoding": "i16mm", "colors": True, "compress": "zstd",
                                    "max_points": 10, "decimation": 4, "max_fps": 5}))
    assert (r.encoding, r.colors, r.compress, r.max_points, r.decimation, r.max_fps) == ("i16mm", True, "zstd", 10, 4, 5.0)


@pytest.mark.parametrize("message, match", [
    ("{bad json", "request is not valid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('{"op": "fly"}', "unknown op 'fly'; expected one of get, subscribe, unsubscribe, info"),
    ('{"op": "get", "encodin": "f32"}', "unknown key 'encodin'"),
    ('{"op": "get", "encoding": "f64"}', "encoding must be one of f32, f16, i16mm, compact, got 'f64'"),
    ('{"op": "get", "compress": "gzip"}', "compress must be one of none, zstd, deflate"),
    ('{"op": "get", "colors": "yes"}', "colors must be true or false"),
    ('{"op": "get", "max_points": 0}', "max_points: expected an integer in 1"),
    ('{"op": "get", "max_points": 1.5}', "max_points: expected an integer, got 1.5"),
    ('{"op": "get", "decimation": 9}', "decimation: expected an integer in 1..8, got 9"),
    ('{"op": "subscribe", "max_fps": 0}', r"max_fps must be a number in \(0, 1000\]"),
    (b'{"op": "get"}', "expected a JSON text request, got a binary message"),
])
def test_parse_request_refuses(message, match):
    with pytest.raises(ProtocolError, match=match):
        p.parse_request(message)


def test_text_replies():
    with pytest.raises(ProtocolError, match=r"server \(no_frame\): not yet"):
        p.decode_text_reply(p.error_message("no_frame", "not yet"))
    assert p.decode_text_reply('{"type": "info", "seq": 3}')["seq"] == 3
    with pytest.raises(ProtocolError, match="with a 'type'"):
        p.decode_text_reply("[]")


# -- binary clouds -----------------------------------------------------------------------------

@pytest.fixture
def cloud(rng) -> PointCloud:
    pts = _pts(rng, 1000, scale=2.0)
    cols = rng.integers(0, 256, (1000, 3), dtype=np.uint8)
    return PointCloud(pts, cols, frame="zup", stamp=12.5)


def test_cloud_header_pins_the_layout(cloud):
    data = p.encode_cloud(cloud, seq=7, colors=True)
    magic, version, head_len = struct.unpack_from("<4sHI", data)
    assert (magic, version) == (b"DCPC", 1)
    head = json.loads(data[10:10 + head_len])
    assert head["seq"] == 7 and head["stamp"] == 12.5 and head["frame"] == "zup" and head["units"] == "m"
    assert head["count"] == 1000 and head["encoding"] == "f32" and head["compress"] == "none"
    assert [f["name"] for f in head["fields"]] == ["xyz", "rgb"]
    body = data[10 + head_len:]
    assert len(body) == 1000 * 12 + 1000 * 3 == head["body_bytes"]
    np.testing.assert_array_equal(np.frombuffer(body[:12000], "<f4").reshape(-1, 3), cloud.points)
    np.testing.assert_array_equal(np.frombuffer(body[12000:], np.uint8).reshape(-1, 3), cloud.colors)


@pytest.mark.parametrize("encoding, tol", [("f32", 0.0), ("f16", 2.0**-11 * 8), ("i16mm", 0.0005 + 1e-6)])
@pytest.mark.parametrize("compress", ["none", "zstd", "deflate"])
def test_cloud_round_trip(cloud, encoding, tol, compress):
    header, back = p.decode_cloud(p.encode_cloud(cloud, seq=3, encoding=encoding, colors=True, compress=compress))
    assert header.encoding == encoding and header.count == len(cloud) and header.seq == 3
    assert back.frame == "zup" and back.stamp == 12.5 and back.points.dtype == np.float32
    assert np.abs(back.points - cloud.points).max() <= tol
    np.testing.assert_array_equal(back.colors, cloud.colors)


def test_cloud_without_colors_and_subsampled(cloud):
    header, back = p.decode_cloud(p.encode_cloud(cloud, seq=1, colors=False, max_points=100))
    assert back.colors is None and len(back) == 100 and header.count == 100
    np.testing.assert_array_equal(back.points, cloud.points[np.arange(100) * 10])
    bare = PointCloud(cloud.points)
    assert p.decode_cloud(p.encode_cloud(bare, seq=1, colors=True))[1].colors is None


def test_cloud_empty_and_single():
    for n in (0, 1):
        c = PointCloud(np.ones((n, 3), np.float32))
        header, back = p.decode_cloud(p.encode_cloud(c, seq=0))
        assert header.count == n and back == c


def test_subsample_is_even_and_deterministic():
    assert p.subsample(10, None) is None and p.subsample(10, 10) is None
    np.testing.assert_array_equal(p.subsample(10, 4), [0, 2, 5, 7])


def test_i16mm_refuses_far_points():
    c = PointCloud(np.array([[0.0, 0.0, 40.0]], np.float32))
    with pytest.raises(InputError, match=r"i16mm holds coordinates up to 32.767 m"):
        p.encode_cloud(c, seq=0, encoding="i16mm")
    with pytest.raises(InputError, match="encoding: expected one of f32, f16, i16mm, got 'f8'"):
        p.encode_cloud(c, seq=0, encoding="f8")


def test_decode_cloud_refuses_broken_messages(cloud):
    good = p.encode_cloud(cloud, seq=1, compress="zstd")
    with pytest.raises(ProtocolError, match="shorter than the 10-byte prefix"):
        p.decode_cloud(good[:5])
    with pytest.raises(ProtocolError, match="bad magic"):
        p.decode_cloud(b"XXXX" + good[4:])
    with pytest.raises(ProtocolError, match="version 2 is not supported"):
        p.decode_cloud(good[:4] + struct.pack("<H", 2) + good[6:])
    with pytest.raises(ProtocolError, match=r"header of .* bytes is cut"):
        p.decode_cloud(good[:20])
    with pytest.raises(ProtocolError, match="does not decompress"):
        p.decode_cloud(good[:-10])
    plain = p.encode_cloud(cloud, seq=1)
    with pytest.raises(ProtocolError, match=r"body is .* bytes, header says 12000"):
        p.decode_cloud(plain[:-4])


def test_zstd_without_the_extra_names_it(cloud, monkeypatch):
    from depthcloud.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "zstandard", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'depthcloud\[serve\]'"):
        p.encode_cloud(cloud, seq=0, compress="zstd")
    assert p.decode_cloud(p.encode_cloud(cloud, seq=0))[0].count == len(cloud)  # plain still works
