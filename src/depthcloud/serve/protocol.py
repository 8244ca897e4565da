"""The wire formats of the point-cloud server: pure encode/decode, no sockets, no clocks.

Two websocket protocols share one port (see ``docs/protocol.md`` for the full specification):

* **Compatible mode** (path ``/``): the client sends a text message holding an integer 1–8 (the
  decimation magnitude); the reply is the newest cloud as a JSON list of ``[x, y, z]`` metres, written
  by a compiled kernel with a fixed number of decimals (:func:`encode_compat`). An error is a JSON
  object ``{"error": "..."}``, which a client that expects a list cannot mistake for a cloud.
* **Binary mode** (path ``/v1``): JSON text requests (:func:`parse_request`) and binary replies: a
  small header then the arrays (:func:`encode_cloud` / :func:`decode_cloud`); errors and info are JSON
  text messages (:func:`error_message`, :func:`decode_text_reply`). The ``compact`` encoding sends
  the depth image instead of points (uint16 depth + JPEG colour + intrinsics, :func:`encode_compact`
  / :func:`decode_compact`); the browser viewer unprojects it on the GPU.

This module must not do I/O, hold state or import the server, the client or the CLI.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError, MissingDependencyError, ProtocolError
from depthcloud.geometry import HAVE_NUMBA

__all__ = [
    "COMPAT_DECIMALS",
    "ENCODINGS",
    "MAGIC",
    "VERSION",
    "CloudHeader",
    "CompactFrame",
    "Request",
    "compat_error_message",
    "decode_cloud",
    "decode_compact",
    "decode_compat",
    "decode_fields",
    "decode_text_reply",
    "encode_cloud",
    "encode_compact",
    "encode_compat",
    "error_message",
    "parse_compat_request",
    "parse_request",
    "subsample",
]

MAGIC = b"DCPC"
VERSION = 1
# magic (4 bytes), version (uint16 LE), header length in bytes (uint32 LE); then the JSON header.
_PREFIX = struct.Struct("<4sHI")
ENCODINGS = ("f32", "f16", "i16mm", "compact")
COMPRESSIONS = ("none", "zstd", "deflate")
OPS = ("get", "subscribe", "unsubscribe", "info")
# 7 decimals of a metre: a written value differs from the float32 it came from by at most 5e-8 m.
COMPAT_DECIMALS = 7
_I16_LIMIT_M = 32.767


# -- compatible mode: JSON list of [x, y, z] -------------------------------------------------------

def _write_json(points: np.ndarray, decimals: int, out: np.ndarray) -> int:  # pragma: no cover - compiled
    """Write ``[[x,y,z],...]`` into ``out`` (uint8, large enough) and return the byte count.

    Each value is rounded half away from zero to ``decimals`` places and printed in fixed point
    (never exponent form), so every JSON parser reads it the same way.
    """
    scale = 10.0 ** decimals
    pw = np.int64(1)
    for _ in range(decimals):
        pw *= 10
    digits = np.empty(24, dtype=np.uint8)
    pos = 0
    out[pos] = 91  # [
    pos += 1
    for i in range(points.shape[0]):
        if i > 0:
            out[pos] = 44  # ,
            pos += 1
        out[pos] = 91
        pos += 1
        for j in range(3):
            if j > 0:
                out[pos] = 44
                pos += 1
            x = np.float64(points[i, j])
            q = np.int64(math.floor(abs(x) * scale + 0.5))
            if x < 0.0 and q != 0:
                out[pos] = 45  # -
                pos += 1
            ip = q // pw
            fp = q - ip * pw
            k = 0
            while True:
                digits[k] = 48 + ip % 10
                ip //= 10
                k += 1
                if ip == 0:
                    break
            while k > 0:
                k -= 1
                out[pos] = digits[k]
                pos += 1
            out[pos] = 46  # .
            pos += 1
            for d in range(decimals - 1, -1, -1):
                out[pos + d] = 48 + fp % 10
                fp //= 10
            pos += decimals
        out[pos] = 93  # ]
        pos += 1
    out[pos] = 93
    pos += 1
    return pos


_write_json_kernel: Callable[[np.ndarray, int, np.ndarray], int]
if HAVE_NUMBA:
    from numba import njit

    _write_json_kernel = njit(cache=True, nogil=True)(_write_json)
else:  # pragma: no cover - exercised only where numba cannot load
    _write_json_kernel = _write_json


def encode_compat(points: np.ndarray, *, decimals: int = COMPAT_DECIMALS) -> bytes:
    """The compatible-mode reply: ``[[x,y,z],...]`` as UTF-8 JSON bytes, no spaces.

    points: (N, 3) float32 (or any real dtype), metres, finite; N may be 0 (→ ``[]``).
    decimals: fixed decimals per value, 1..9; with the default 7 every parsed value is within
    5e-8 m of the float32 it was written from.
    """
    pts = v.points("points", points)
    d = v.integer("decimals", decimals, low=1, high=9)
    n = pts.shape[0]
    if n == 0:
        return b"[]"
    biggest = float(np.abs(pts).max())
    if biggest * 10.0**d >= 2.0**62:
        raise InputError(f"points: values up to {biggest:g} m cannot be written with {d} decimals")
    int_digits = len(str(int(biggest) + 1))
    per_value = 1 + int_digits + 1 + d
    out = np.empty(2 + n * (3 * per_value + 5), dtype=np.uint8)
    used = _write_json_kernel(pts, d, out)
    return out[:used].tobytes()


def decode_compat(data: str | bytes) -> np.ndarray:
    """Parse a compatible-mode reply into (N, 3) float64 metres; an error reply raises ProtocolError."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"compatible reply: not JSON ({exc})") from exc
    if isinstance(doc, dict) and "error" in doc:
        raise ProtocolError(f"server: {doc['error']}")
    if not isinstance(doc, list):
        raise ProtocolError(f"compatible reply: expected a JSON list of [x, y, z], got {type(doc).__name__}")
    if not doc:
        return np.empty((0, 3), dtype=np.float64)
    try:
        arr = np.asarray(doc, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"compatible reply: expected a JSON list of [x, y, z] numbers ({exc})") from exc
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ProtocolError(f"compatible reply: expected a list of [x, y, z], got shape {arr.shape}")
    return arr


def parse_compat_request(message: str | bytes) -> int:
    """The decimation magnitude 1..8 of a compatible-mode request (a text message like ``"2"``)."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        raise ProtocolError("expected a text message with a decimation magnitude 1..8, got a binary message")
    text = message.strip()
    # Length first: int() of thousands of digits raises ValueError (Python's int-digit limit).
    if len(text) > 3 or not text.isdigit() or not 1 <= int(text) <= 8:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ProtocolError(f"expected a decimation magnitude 1..8 as text, got {shown!r}")
    return int(text)


# -- binary mode: requests -------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One binary-mode request. ``decimation`` None = the server's configured magnitude;
    ``max_points`` None = all points; ``max_fps`` None = as fast as clouds arrive (subscribe only)."""

    op: str
    encoding: str = "f32"
    colors: bool = False
    compress: str = "none"
    max_points: int | None = None
    decimation: int | None = None
    max_fps: float | None = None

    def cache_key(self) -> tuple[Any, ...]:
        """What the encoded reply depends on besides the cloud itself."""
        return (self.encoding, self.colors, self.compress, self.max_points)


_REQUEST_KEYS = {"op", "encoding", "colors", "compress", "max_points", "decimation", "max_fps"}


def parse_request(message: str | bytes) -> Request:
    """Parse and validate one binary-mode JSON request; ProtocolError says what is wrong."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        raise ProtocolError("expected a JSON text request, got a binary message")
    try:
        doc = json.loads(message)
    except ValueError as exc:
        raise ProtocolError(f"request is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ProtocolError(f"request: expected a JSON object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - _REQUEST_KEYS)
    if unknown:
        raise ProtocolError(f"request: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_REQUEST_KEYS))}")
    op = doc.get("op")
    if op not in OPS:
        raise ProtocolError(f"request: unknown op {op!r}; expected one of {', '.join(OPS)}")

    def choice(key: str, allowed: tuple[str, ...], default: str) -> str:
        value = doc.get(key, default)
        if value not in allowed:
            raise ProtocolError(f"request: {key} must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    def optional_int(key: str, low: int, high: int) -> int | None:
        value = doc.get(key)
        if value is None:
            return None
        try:
            return v.integer(key, value, low=low, high=high)
        except InputError as exc:
            raise ProtocolError(f"request: {exc}") from exc

    colors = doc.get("colors", False)
    if not isinstance(colors, bool):
        raise ProtocolError(f"request: colors must be true or false, got {colors!r}")
    max_fps = doc.get("max_fps")
    if max_fps is not None:
        if isinstance(max_fps, bool) or not isinstance(max_fps, (int, float)) or not 0 < max_fps <= 1000:
            raise ProtocolError(f"request: max_fps must be a number in (0, 1000], got {max_fps!r}")
        max_fps = float(max_fps)
    encoding = choice("encoding", ENCODINGS, "f32")
    if encoding == "compact" and doc.get("max_points") is not None:
        raise ProtocolError("request: max_points does not apply to the compact encoding (it sends the depth "
                            "image); ask for a higher decimation instead")
    return Request(
        op=op,
        encoding=encoding,
        colors=colors,
        compress=choice("compress", COMPRESSIONS, "none"),
        max_points=optional_int("max_points", 1, 2**31 - 1),
        decimation=optional_int("decimation", 1, 8),
        max_fps=max_fps,
    )


def error_message(code: str, message: str) -> str:
    """A JSON error reply (binary mode). ``code`` is a stable word a program can test."""
    return json.dumps({"type": "error", "code": code, "error": message})


def compat_error_message(message: str) -> str:
    """A compatible-mode error reply: a JSON object where a list was expected."""
    return json.dumps({"error": message})


def decode_text_reply(text: str | bytes) -> dict[str, Any]:
    """Parse a JSON text reply; a ``{"type": "error"}`` reply raises ProtocolError with its message."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"reply is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or "type" not in doc:
        raise ProtocolError("reply: expected a JSON object with a 'type'")
    if doc["type"] == "error":
        raise ProtocolError(f"server ({doc.get('code', 'error')}): {doc.get('error', '')}")
    return doc


# -- binary mode: clouds ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CloudHeader:
    """The decoded header of a binary cloud message (see docs/protocol.md)."""

    seq: int
    stamp: float | None
    frame: str
    units: str
    count: int
    encoding: str
    scale: float
    fields: tuple[dict[str, Any], ...]
    compress: str
    body_bytes: int
    #: header keys beyond the ones above (``compact``: width, height, intrinsics, rotation)
    extra: dict[str, Any] = field(default_factory=dict)


_HEADER_KEYS = {"seq", "stamp", "frame", "units", "count", "encoding", "scale", "fields", "compress", "body_bytes"}


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise MissingDependencyError.for_extra("zstandard", "serve") from exc
    return zstandard


def _compress(kind: str, body: bytes | memoryview) -> bytes:
    """The body as sent: ``zstd`` (one zstd frame), ``deflate`` (zlib format, RFC 1950 — what a
    browser's ``DecompressionStream("deflate")`` reads, no library needed) or as it is."""
    if kind == "zstd":
        return bytes(_zstd().ZstdCompressor(level=1).compress(body))
    if kind == "deflate":
        return zlib.compress(body, 1)
    return bytes(body)


def subsample(count: int, max_points: int | None) -> np.ndarray | None:
    """Indices of an even, deterministic subsample of ``count`` points (None = keep all)."""
    if max_points is None or count <= max_points:
        return None
    return (np.arange(max_points, dtype=np.int64) * count) // max_points


_DTYPES = {"f32": ("<f4", 1.0), "f16": ("<f2", 1.0), "i16mm": ("<i2", 0.001)}


def encode_cloud(
    cloud: PointCloud,
    *,
    seq: int,
    encoding: str = "f32",
    colors: bool = False,
    compress: str = "none",
    max_points: int | None = None,
    faces: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """One binary cloud message: prefix, JSON header, then ``xyz`` (N, 3) and, if asked and
    present, ``rgb`` (N, 3) uint8, row-major, little-endian, no padding.

    faces: (M, 3) vertex indices of a triangle mesh whose vertices the cloud holds, sent as a
    ``faces`` field of ``<u4`` after the others (``depthcloud view``; not with max_points).
    extra: more header keys (``item``, ``items``, ``name`` for the viewer's several files).

    encoding: ``f32`` (float32 metres), ``f16`` (float16 metres: ~0.5 mm steps below 1 m, 4 mm at
    4–8 m), ``i16mm`` (int16 millimetres, |coordinate| ≤ 32.767 m, else InputError).
    compress: ``zstd`` compresses everything after the header as one zstd frame, ``deflate`` as one
    zlib stream (stdlib; browsers inflate it natively).
    """
    if encoding not in _DTYPES:
        if encoding == "compact":
            raise InputError("encoding compact sends a depth image, not points: use encode_compact")
        raise InputError(f"encoding: expected one of {', '.join(_DTYPES)}, got {encoding!r}")
    if compress not in COMPRESSIONS:
        raise InputError(f"compress: expected one of {', '.join(COMPRESSIONS)}, got {compress!r}")
    tri = None
    if faces is not None:
        if max_points is not None:
            raise InputError("max_points: a mesh's faces need all its vertices; leave max_points unset")
        tri = v.array("faces", faces, shape=(None, 3), kinds="iu", nonempty=False, expected="(M, 3)")
        if tri.size and (int(tri.min()) < 0 or int(tri.max()) >= len(cloud)):
            raise InputError(f"faces: expected vertex indices in 0..{len(cloud) - 1}")
        tri = np.ascontiguousarray(tri, dtype="<u4")
    idx = subsample(len(cloud), max_points)
    n = len(cloud) if idx is None else len(idx)
    dtype, scale = _DTYPES[encoding]
    with_rgb = bool(colors) and cloud.colors is not None
    fields: list[dict[str, Any]] = [{"name": "xyz", "dtype": dtype, "shape": [n, 3]}]
    if with_rgb:
        fields.append({"name": "rgb", "dtype": "u1", "shape": [n, 3]})
    xyz_bytes = n * 3 * np.dtype(dtype).itemsize
    raw_bytes = xyz_bytes + (n * 3 if with_rgb else 0)
    if tri is not None:
        fields.append({"name": "faces", "dtype": "<u4", "shape": [len(tri), 3]})
        raw_bytes += tri.nbytes
    header = {
        **(extra or {}),
        "seq": int(seq), "stamp": cloud.stamp, "frame": cloud.frame, "units": "m", "count": n,
        "encoding": encoding, "scale": scale, "fields": fields, "compress": compress, "body_bytes": raw_bytes,
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    start = _PREFIX.size + len(head)
    # One buffer, arrays written straight into it: the points are copied once, not three times.
    message = bytearray(start + raw_bytes)
    _PREFIX.pack_into(message, 0, MAGIC, VERSION, len(head))
    message[_PREFIX.size:start] = head
    xyz = np.frombuffer(message, dtype=dtype, count=n * 3, offset=start).reshape(n, 3)
    if encoding == "i16mm":
        pts = cloud.points if idx is None else cloud.points[idx]
        reach = float(np.abs(pts).max()) if n else 0.0
        if reach > _I16_LIMIT_M:
            raise InputError(f"encoding i16mm holds coordinates up to {_I16_LIMIT_M} m; this cloud reaches "
                             f"{reach:.3f} m (use f32 or f16)")
        xyz[...] = np.rint(pts * np.float32(1000.0))
    elif idx is None:
        xyz[...] = cloud.points
    elif encoding == "f32":
        np.take(cloud.points, idx, axis=0, out=xyz)
    else:
        xyz[...] = cloud.points[idx]
    if with_rgb:
        assert cloud.colors is not None
        rgb = np.frombuffer(message, dtype=np.uint8, count=n * 3, offset=start + xyz_bytes).reshape(n, 3)
        if idx is None:
            rgb[...] = cloud.colors
        else:
            np.take(cloud.colors, idx, axis=0, out=rgb)
    if tri is not None:
        message[start + raw_bytes - tri.nbytes:] = tri.tobytes()
    if compress != "none":
        return bytes(message[:start]) + _compress(compress, memoryview(message)[start:])
    return bytes(message)


def decode_cloud(data: bytes) -> tuple[CloudHeader, PointCloud]:
    """Parse a binary cloud message into its header and a PointCloud (points float32 metres).

    A ``compact`` message is unprojected here (:func:`decode_compact`) with the same pinhole rays
    the viewer's vertex shader uses; its header's ``scale`` is then metres per depth unit.
    """
    header, body = _split(data)
    if header.encoding == "compact":
        return header, _compact_of(header, body).cloud()
    arrays = _fields(header, body)
    if "xyz" not in arrays:
        raise ProtocolError("cloud message: no xyz field")
    pts = arrays["xyz"].astype(np.float32)
    if header.scale != 1.0:
        pts *= np.float32(header.scale)
    rgb = arrays.get("rgb")
    cloud = PointCloud(pts, None if rgb is None else rgb.copy(), frame=header.frame, stamp=header.stamp)
    return header, cloud


def _split(data: bytes) -> tuple[CloudHeader, bytes | memoryview]:
    """The header of a binary message and its body, decompressed and length-checked."""
    buf = memoryview(data)
    if len(buf) < _PREFIX.size:
        raise ProtocolError(f"cloud message: {len(buf)} bytes is shorter than the {_PREFIX.size}-byte prefix")
    magic, version, head_len = _PREFIX.unpack_from(buf)
    if magic != MAGIC:
        raise ProtocolError(f"cloud message: bad magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise ProtocolError(f"cloud message: version {version} is not supported (this client speaks {VERSION})")
    end = _PREFIX.size + head_len
    if len(buf) < end:
        raise ProtocolError(f"cloud message: header of {head_len} bytes is cut at {len(buf) - _PREFIX.size}")
    try:
        h = json.loads(bytes(buf[_PREFIX.size:end]))
        header = CloudHeader(
            seq=int(h["seq"]), stamp=h["stamp"], frame=str(h["frame"]), units=str(h["units"]),
            count=int(h["count"]), encoding=str(h["encoding"]), scale=float(h["scale"]),
            fields=tuple(h["fields"]), compress=str(h["compress"]), body_bytes=int(h["body_bytes"]),
            extra={k: val for k, val in h.items() if k not in _HEADER_KEYS},
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"cloud message: bad header ({exc})") from exc
    body: bytes | memoryview = buf[end:]
    if header.compress == "zstd":
        zstandard = _zstd()
        try:
            body = zstandard.ZstdDecompressor().decompress(bytes(body), max_output_size=header.body_bytes)
        except zstandard.ZstdError as exc:
            raise ProtocolError(f"cloud message: zstd body does not decompress ({exc})") from exc
    elif header.compress == "deflate":
        inflate = zlib.decompressobj()
        try:
            body = inflate.decompress(bytes(body), header.body_bytes)
        except zlib.error as exc:
            raise ProtocolError(f"cloud message: deflate body does not decompress ({exc})") from exc
        if inflate.unconsumed_tail:
            raise ProtocolError(f"cloud message: the deflate body holds more than the {header.body_bytes} bytes "
                                "the header says")
    elif header.compress != "none":
        raise ProtocolError(f"cloud message: unknown compression {header.compress!r}")
    if len(body) != header.body_bytes:
        raise ProtocolError(f"cloud message: body is {len(body)} bytes, header says {header.body_bytes}")
    return header, body


def decode_fields(data: bytes) -> tuple[CloudHeader, dict[str, np.ndarray]]:
    """The header and the raw fields of a binary message by name (``xyz``, ``rgb``, ``faces``,
    ``depth``; a ``jpeg`` field as its bytes), without building a cloud."""
    header, body = _split(data)
    return header, _fields(header, body)


def _fields(header: CloudHeader, body: bytes | memoryview) -> dict[str, np.ndarray]:
    """The body's fields by name; a ``jpeg`` field is returned as its raw bytes (uint8)."""
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for spec in header.fields:
        try:
            dt = np.dtype("u1" if spec["dtype"] == "jpeg" else spec["dtype"])
            shape = tuple(int(s) for s in spec["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"cloud message: bad field {spec!r} ({exc})") from exc
        size = dt.itemsize * math.prod(shape)
        if offset + size > len(body):
            raise ProtocolError(f"cloud message: field {spec.get('name')!r} runs past the end of the body")
        arrays[str(spec.get("name"))] = np.frombuffer(body, dtype=dt, count=math.prod(shape),
                                                       offset=offset).reshape(shape)
        offset += size
    return arrays


# -- binary mode: the compact encoding (depth image + JPEG colour + intrinsics) --------------------

#: JPEG quality of the compact encoding's colour image (OpenCV's 0..100 scale)
COMPACT_JPEG_QUALITY = 85
_U16_MAX = 65535
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class CompactFrame:
    """A decoded ``compact`` message: what the viewer's vertex shader unprojects.

    depth: (H, W) uint16, metres = value × ``scale``; 0 = no point. color: (H, W, 3) uint8 RGB
    decoded from the JPEG, or None. intrinsics: the undistorted pinhole of the depth image.
    rotation: (3, 3) float64 taking optical-frame coordinates to the served ``frame``.
    """

    seq: int
    stamp: float | None
    frame: str
    scale: float
    depth: np.ndarray
    color: np.ndarray | None
    intrinsics: Any
    rotation: np.ndarray

    def cloud(self) -> PointCloud:
        """The points the viewer draws: x = (u − cx)/fx·z, y = (v − cy)/fy·z, z, in float32 like the
        shader, in row-major pixel order (as :class:`~depthcloud.geometry.Unprojector` emits them)."""
        from depthcloud.geometry import Unprojector

        z = self.depth.astype(np.float32) * np.float32(self.scale)
        cloud = Unprojector(self.intrinsics)(z, color=self.color, stamp=self.stamp)
        if np.array_equal(self.rotation, np.eye(3)):
            return PointCloud._trusted(cloud.points, cloud.colors, None, self.frame, self.stamp)
        T = np.eye(4)
        T[:3, :3] = self.rotation
        return cloud.transform(T, frame=self.frame)


def compact_scale(max_depth_m: float) -> float:
    """Metres per uint16 unit for depths up to ``max_depth_m``: the smallest float32 that fits it
    in 65535 units (0 or no depth → 1 mm)."""
    if not max_depth_m > 0:
        return float(np.float32(0.001))
    s = np.float32(max_depth_m / _U16_MAX)
    while float(s) * _U16_MAX < max_depth_m:
        s = np.nextafter(s, np.float32(np.inf))
    return float(s)


def encode_compact(
    depth: np.ndarray,
    intrinsics: Any,
    *,
    seq: int,
    color: np.ndarray | None = None,
    stamp: float | None = None,
    frame: str = "optical",
    min_depth_m: float = 0.0,
    max_depth_m: float = math.inf,
    jpeg_quality: int = COMPACT_JPEG_QUALITY,
    compress: str = "none",
) -> bytes:
    """One ``compact`` message: the depth image as uint16 plus its scale, the colour image as JPEG
    and the pinhole intrinsics, for a client that unprojects on its own (the viewer's shader).

    depth: (H, W) float32 metres (0/NaN/inf or outside [min_depth_m, max_depth_m] = no point, the
    same test as :class:`~depthcloud.geometry.Unprojector`); intrinsics: of ``depth``, an ideal
    pinhole (distortion or skew raise InputError: the shader has no undistortion, ask for ``f32``).
    color: (H, W, 3) uint8 RGB aligned with depth, or None. frame: the named frame the client
    rotates the optical points into (``rotation`` in the header).
    Quantisation: ``scale`` = :func:`compact_scale` of the largest valid depth; a depth is stored as
    round(z / scale) (at least 1), so it comes back within scale/2 (scale ≈ 15 µm per metre of range).
    """
    from depthcloud.camera import Intrinsics
    from depthcloud.cloud import frame_rotation

    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    if intrinsics.is_distorted or intrinsics.skew != 0.0:
        what = f"lens distortion ({intrinsics.model})" if intrinsics.is_distorted else "skew"
        raise InputError(f"encoding compact: the camera has {what}, and the compact encoding carries pinhole "
                         "intrinsics only; ask for f32 (or f16/i16mm) points instead")
    if compress not in COMPRESSIONS:
        raise InputError(f"compress: expected one of {', '.join(COMPRESSIONS)}, got {compress!r}")
    d = v.image("depth", depth, kinds="f")
    if d.shape != intrinsics.shape:
        raise InputError(f"depth: its size {d.shape[1]}x{d.shape[0]} does not match the intrinsics "
                         f"{intrinsics.width}x{intrinsics.height}")
    c = None if color is None else v.color_image("color", color, d.shape)
    quality = v.integer("jpeg_quality", jpeg_quality, low=1, high=100)
    rotation = frame_rotation("optical", frame)
    zmin = np.float32(v.number("min_depth_m", min_depth_m, nonnegative=True))
    zmax = np.float32(min(v.number("max_depth_m", max_depth_m, positive=True, allow_inf=True), _F32_MAX))
    d32 = np.asarray(d, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        valid = (d32 > 0) & (d32 >= zmin) & (d32 <= zmax)
    count = int(np.count_nonzero(valid))
    scale = compact_scale(float(d32[valid].max()) if count else 0.0)
    q = np.zeros(d.shape, dtype=np.uint16)
    z = d32[valid].astype(np.float64)
    q[valid] = np.clip(np.rint(z / scale), 1, _U16_MAX).astype(np.uint16)
    h, w = d.shape
    fields: list[dict[str, Any]] = [{"name": "depth", "dtype": "<u2", "shape": [h, w]}]
    jpeg = b""
    if c is not None:
        import cv2

        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(c[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
            raise InputError("color: OpenCV could not encode it as JPEG")
        jpeg = buf.tobytes()
        fields.append({"name": "color", "dtype": "jpeg", "shape": [len(jpeg)]})
    body = q.astype("<u2", copy=False).tobytes() + jpeg
    header = {
        "seq": int(seq), "stamp": stamp, "frame": frame, "units": "m", "count": count, "encoding": "compact",
        "scale": scale, "fields": fields, "compress": compress, "body_bytes": len(body),
        "width": w, "height": h,
        "intrinsics": {"fx": intrinsics.fx, "fy": intrinsics.fy, "cx": intrinsics.cx, "cy": intrinsics.cy},
        "rotation": [float(x) for x in rotation.ravel()],
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    return _PREFIX.pack(MAGIC, VERSION, len(head)) + head + _compress(compress, body)


def _compact_of(header: CloudHeader, body: bytes | memoryview) -> CompactFrame:
    from depthcloud.camera import Intrinsics
    from depthcloud.cloud import FRAMES

    try:
        w, h = int(header.extra["width"]), int(header.extra["height"])
        k = header.extra["intrinsics"]
        intr = Intrinsics(float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"]), w, h)
    except (KeyError, TypeError, ValueError, InputError) as exc:
        raise ProtocolError(f"compact message: bad width/height/intrinsics in the header ({exc})") from exc
    if header.frame not in FRAMES:
        raise ProtocolError(f"compact message: unknown frame {header.frame!r}")
    if not header.scale > 0:
        raise ProtocolError(f"compact message: scale must be positive, got {header.scale}")
    arrays = _fields(header, body)
    depth = arrays.get("depth")
    if depth is None or depth.shape != (h, w) or depth.dtype != np.dtype("<u2"):
        raise ProtocolError(f"compact message: expected a depth field of shape ({h}, {w}) <u2")
    color = None
    if "color" in arrays:
        import cv2

        bgr = cv2.imdecode(arrays["color"], cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape[:2] != (h, w):
            raise ProtocolError(f"compact message: the colour field is not a {w}x{h} JPEG")
        color = np.ascontiguousarray(bgr[..., ::-1])
    rotation = np.asarray(header.extra.get("rotation", np.eye(3).ravel()), dtype=np.float64).reshape(3, 3)
    return CompactFrame(header.seq, header.stamp, header.frame, header.scale, depth.copy(), color, intr, rotation)


def decode_compact(data: bytes) -> CompactFrame:
    """Parse a ``compact`` message into its depth image, colour image and intrinsics."""
    header, body = _split(data)
    if header.encoding != "compact":
        raise ProtocolError(f"expected a compact message, got encoding {header.encoding!r}")
    return _compact_of(header, body)
