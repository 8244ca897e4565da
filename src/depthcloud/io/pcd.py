"""PCD (Point Cloud Library) point clouds: ascii, binary and binary_compressed, as PCL reads them.

Reading accepts PCD v0.5–0.7 headers (``VERSION`` … ``DATA``; ``#`` comment lines), any ``F``/``I``/``U``
field types and ``COUNT`` > 1 (extra fields are ignored), ``rgb``/``rgba`` packed as float or uint
(0x00RRGGBB, as PCL packs them), ``normal_x normal_y normal_z``, and organized clouds
(``HEIGHT`` > 1): points whose x, y or z is NaN are dropped.

Writing produces ``x y z`` float, then ``rgb`` (packed float, as PCL writes ``PointXYZRGB``; in
``ascii`` files the packed uint32, TYPE U, as PCL writes text colours), then
``normal_x normal_y normal_z`` float, as an unorganized cloud (``HEIGHT 1``), with
``# frame NAME`` when the cloud is not in the ``optical`` frame. ``binary_compressed`` stores the
fields one after another (structure of arrays) and compresses them with LZF, which is implemented
here (compiled with numba; plain Python where numba cannot load) so no extra package is needed.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthcloud._jit import HAVE_NUMBA
from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import (
    PathArg,
    RowError,
    finite_rows,
    format_table,
    gather,
    number_table,
    read_input,
    records,
    write_atomic,
)

__all__ = ["PcdHeader", "decode_pcd", "encode_pcd", "lzf_compress", "lzf_decompress", "parse_pcd_header", "read_pcd",
           "write_pcd"]

DATA_KINDS = ("ascii", "binary", "binary_compressed")
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
_TYPE_SIZES = {"F": (4, 8), "I": (1, 2, 4, 8), "U": (1, 2, 4, 8)}
# LZF can expand at most 264 bytes from one 2-byte back reference; a larger claim is a lie.
_LZF_MAX_RATIO = 133
# The largest PCL descriptors hold a few thousand values per point; far more is a corrupt header.
_MAX_COUNT = 1 << 20


@dataclass(frozen=True)
class PcdHeader:
    """A parsed PCD header. ``fields``/``sizes``/``types``/``counts`` are parallel tuples."""

    fields: tuple[str, ...]
    sizes: tuple[int, ...]
    types: tuple[str, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    points: int
    viewpoint: tuple[float, ...]
    data: str
    body_offset: int
    comments: tuple[str, ...] = ()

    def dtype(self) -> np.dtype:
        """The little-endian structured dtype of one point (a field with COUNT > 1 is a sub-array)."""
        parts = []
        for i, (name, size, kind, count) in enumerate(
                zip(self.fields, self.sizes, self.types, self.counts, strict=True)):
            # PCL may name several padding fields "_"; numpy needs unique names.
            name = f"_pad{i}" if name == "_" else name
            code = {"F": "f", "I": "i", "U": "u"}[kind] + str(size)
            parts.append((name, "<" + code, (count,)) if count > 1 else (name, "<" + code))
        return np.dtype(parts)


def _fail(msg: str, path: PathArg | None, line: int | None = None) -> FormatError:
    return FormatError(msg, path=path, line=line)


def _ints(words: list[str], key: str, path: PathArg | None, number: int) -> list[int]:
    try:
        values = [int(w) for w in words]
    except ValueError:
        raise _fail(f"{key}: expected integers, got {' '.join(words)!r}", path, number) from None
    if any(x < 0 for x in values):
        raise _fail(f"{key}: expected non-negative integers, got {' '.join(words)!r}", path, number)
    return values


def parse_pcd_header(data: bytes, *, path: PathArg | None = None) -> PcdHeader:
    """Parse the header of a PCD file held in ``data``; ``path`` only names the file in errors."""
    values: dict[str, tuple[list[str], int]] = {}
    comments: list[str] = []
    pos = 0
    number = 0
    n = len(data)
    while True:
        if pos >= n:
            raise _fail("the header has no DATA line (not a PCD file, or truncated)", path)
        end = data.find(b"\n", pos)
        end = n if end < 0 else end
        raw = data[pos:end]
        pos = min(end + 1, n)
        number += 1
        line = raw.decode("latin-1").strip()
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        words = line.split()
        key = words[0].upper()
        if key not in _KEYS:
            if number == 1:
                raise _fail("not a PCD file: expected a header key such as VERSION or FIELDS", path, 1)
            raise _fail(f"unknown header key {words[0]!r}", path, number)
        if key in values:
            raise _fail(f"{key} appears twice", path, number)
        values[key] = (words[1:], number)
        if key == "DATA":
            break

    def need(key: str) -> tuple[list[str], int]:
        if key not in values:
            raise _fail(f"the header has no {key} line", path)
        return values[key]

    fields, fline = need("FIELDS")
    if not fields:
        raise _fail("FIELDS: expected at least one field name", path, fline)
    named = [f for f in fields if f != "_"]
    if len(set(named)) != len(named):
        raise _fail(f"FIELDS: a field name appears twice in {' '.join(fields)!r}", path, fline)
    k = len(fields)
    sizes_w, sline = need("SIZE")
    types_w, tline = need("TYPE")
    sizes = _ints(sizes_w, "SIZE", path, sline)
    types = [t.upper() for t in types_w]
    if "COUNT" in values:
        counts_w, cline = values["COUNT"]
        counts = _ints(counts_w, "COUNT", path, cline)
    else:
        counts, cline = [1] * k, fline
    for key, got, ln in (("SIZE", len(sizes), sline), ("TYPE", len(types), tline), ("COUNT", len(counts), cline)):
        if got != k:
            raise _fail(f"{key}: expected {k} values (one per field), got {got}", path, ln)
    for name, size, kind, count in zip(fields, sizes, types, counts, strict=True):
        if kind not in _TYPE_SIZES:
            raise _fail(f"TYPE: unknown type {kind!r} for field {name!r} (expected F, I or U)", path, tline)
        if size not in _TYPE_SIZES[kind]:
            raise _fail(f"SIZE: {size} bytes is not valid for type {kind} of field {name!r}", path, sline)
        if not 1 <= count <= _MAX_COUNT:
            raise _fail(f"COUNT: expected 1..{_MAX_COUNT} for field {name!r}, got {count}", path, cline)
    (width_w, wline), (height_w, hline) = need("WIDTH"), values.get("HEIGHT", (["1"], 0))
    width = _ints(width_w, "WIDTH", path, wline)
    height = _ints(height_w, "HEIGHT", path, hline)
    if len(width) != 1 or len(height) != 1:
        raise _fail("WIDTH and HEIGHT take one integer each", path, wline)
    if "POINTS" in values:
        pts_w, pline = values["POINTS"]
        pts = _ints(pts_w, "POINTS", path, pline)
        if len(pts) != 1:
            raise _fail("POINTS: expected one integer", path, pline)
        if pts[0] != width[0] * height[0]:
            raise _fail(f"POINTS {pts[0]} disagrees with WIDTH*HEIGHT = {width[0]}*{height[0]}", path, pline)
    viewpoint: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    if "VIEWPOINT" in values:
        vp_w, vline = values["VIEWPOINT"]
        try:
            viewpoint = tuple(float(x) for x in vp_w)
        except ValueError:
            raise _fail(f"VIEWPOINT: expected 7 numbers, got {' '.join(vp_w)!r}", path, vline) from None
        if len(viewpoint) != 7:
            raise _fail(f"VIEWPOINT: expected 7 numbers, got {len(viewpoint)}", path, vline)
    data_w, dline = values["DATA"]
    kind = data_w[0].lower() if len(data_w) == 1 else ""
    if kind not in DATA_KINDS:
        raise _fail(f"DATA: expected ascii, binary or binary_compressed, got {' '.join(data_w)!r}", path, dline)
    return PcdHeader(tuple(fields), tuple(sizes), tuple(types), tuple(counts), width[0], height[0],
                     width[0] * height[0], viewpoint, kind, pos, tuple(comments))


# -- LZF ----------------------------------------------------------------------------------------

# Without numba (or with DEPTHCLOUD_NO_NUMBA) the same kernels run as Python.
if HAVE_NUMBA:
    from numba import njit
else:  # pragma: no cover - exercised by the DEPTHCLOUD_NO_NUMBA test

    def njit(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[no-redef]
        return lambda fn: fn


@njit(cache=True, nogil=True)
def _lzf_decompress(src: np.ndarray, dst: np.ndarray) -> int:  # pragma: no cover - compiled
    """Decode LZF ``src`` into ``dst``; returns bytes written, or -1 on corrupt or overlong input."""
    ip = 0
    op = 0
    n_in = src.shape[0]
    n_out = dst.shape[0]
    while ip < n_in:
        ctrl = int(src[ip])
        ip += 1
        if ctrl < 32:
            length = ctrl + 1
            if op + length > n_out or ip + length > n_in:
                return -1
            for i in range(length):
                dst[op + i] = src[ip + i]
            op += length
            ip += length
        else:
            length = ctrl >> 5
            if length == 7:
                if ip >= n_in:
                    return -1
                length += int(src[ip])
                ip += 1
            if ip >= n_in:
                return -1
            ref = op - ((ctrl & 0x1F) << 8) - int(src[ip]) - 1
            ip += 1
            length += 2
            if ref < 0 or op + length > n_out:
                return -1
            for i in range(length):  # byte by byte: the reference may overlap what it writes
                dst[op + i] = dst[ref + i]
            op += length
    return op


@njit(cache=True, nogil=True)
def _lzf_literals(src: np.ndarray, start: int, end: int, dst: np.ndarray, op: int) -> int:  # pragma: no cover - compiled
    """Copy src[start:end] to dst at ``op`` as LZF literal runs of at most 32 bytes; returns the new op."""
    while start < end:
        run = min(end - start, 32)
        dst[op] = run - 1
        op += 1
        for i in range(run):
            dst[op + i] = src[start + i]
        op += run
        start += run
    return op


@njit(cache=True, nogil=True)
def _lzf_compress(src: np.ndarray, dst: np.ndarray) -> int:  # pragma: no cover - compiled
    """Encode ``src`` with LZF into ``dst`` (sized n + n/32 + 2); returns bytes written."""
    n = src.shape[0]
    hlog = 16
    htab = np.full(1 << hlog, -1, dtype=np.int64)
    ip = 0
    op = 0
    lit_start = 0
    while ip + 2 < n:
        h = ((int(src[ip]) << 16) | (int(src[ip + 1]) << 8) | int(src[ip + 2]))
        h = ((h * 2654435761) >> 8) & ((1 << hlog) - 1)
        ref = htab[h]
        htab[h] = ip
        off = ip - ref - 1
        if (ref >= 0 and off < 8192 and src[ref] == src[ip] and src[ref + 1] == src[ip + 1]
                and src[ref + 2] == src[ip + 2]):
            maxlen = min(n - ip, 264)
            length = 3
            while length < maxlen and src[ref + length] == src[ip + length]:
                length += 1
            op = _lzf_literals(src, lit_start, ip, dst, op)
            code = length - 2
            if code < 7:
                dst[op] = (code << 5) | (off >> 8)
                op += 1
            else:
                dst[op] = (7 << 5) | (off >> 8)
                dst[op + 1] = code - 7
                op += 2
            dst[op] = off & 0xFF
            op += 1
            ip += length
            lit_start = ip
        else:
            ip += 1
    return _lzf_literals(src, lit_start, n, dst, op)


def lzf_compress(data: bytes) -> bytes:
    """LZF-compress ``data`` (the format of liblzf, which PCL's binary_compressed uses)."""
    src = np.frombuffer(data, dtype=np.uint8)
    dst = np.empty(len(src) + len(src) // 32 + 2, dtype=np.uint8)
    n = _lzf_compress(src, dst)
    return dst[:n].tobytes()


def lzf_decompress(data: bytes, size: int) -> bytes:
    """Decompress LZF ``data`` that must expand to exactly ``size`` bytes; FormatError otherwise."""
    if size < 0 or size > max(len(data), 1) * _LZF_MAX_RATIO:
        raise FormatError(f"LZF: {len(data)} compressed bytes cannot expand to {size} bytes")
    dst = np.empty(size, dtype=np.uint8)
    got = _lzf_decompress(np.frombuffer(data, dtype=np.uint8), dst)
    if got != size:
        raise FormatError(f"LZF: corrupt compressed data (expected {size} bytes, decoded "
                          f"{'an invalid stream' if got < 0 else got})")
    return dst.tobytes()


# -- body decoding ------------------------------------------------------------------------------

def _decode_body(data: bytes, h: PcdHeader, path: PathArg | None) -> np.ndarray:
    dt = h.dtype()
    n = h.points
    body = data[h.body_offset:]
    if h.data == "binary":
        if len(body) < n * dt.itemsize:
            raise _fail(f"POINTS {n} needs {n * dt.itemsize} bytes of binary data, got {len(body)} "
                        "(truncated file or lying header)", path)
        return np.frombuffer(body, dtype=dt, count=n)
    if h.data == "binary_compressed":
        if len(body) < 8:
            raise _fail("binary_compressed: the 8-byte size prefix is missing", path)
        csize, usize = struct.unpack("<II", body[:8])
        if usize != n * dt.itemsize:
            raise _fail(f"binary_compressed: uncompressed size {usize} does not match POINTS {n} × "
                        f"{dt.itemsize} bytes", path)
        if 8 + csize > len(body):
            raise _fail(f"binary_compressed: expected {csize} compressed bytes, got {len(body) - 8}", path)
        try:
            raw = lzf_decompress(body[8:8 + csize], usize)
        except FormatError as exc:
            raise _fail(exc.message, path) from exc
        # Fields are stored one after another (structure of arrays); regroup them into records.
        out = np.empty(n, dtype=dt)
        offset = 0
        for name in dt.names or ():
            fdt = dt.fields[name][0]  # type: ignore[index]
            size = fdt.itemsize * n
            out[name] = np.frombuffer(raw, dtype=fdt.base, count=size // fdt.base.itemsize,
                                      offset=offset).reshape(out[name].shape)
            offset += size
        return out
    return _decode_ascii(body, h, dt, path)


def _decode_ascii(body: bytes, h: PcdHeader, dt: np.dtype, path: PathArg | None) -> np.ndarray:
    ncol = sum(h.counts)
    lines = [ln for ln in body.decode("latin-1").splitlines() if ln.strip()]
    if len(lines) < h.points:
        raise _fail(f"POINTS {h.points} but only {len(lines)} data lines (truncated file or lying header)", path)
    try:
        table = number_table(lines[:h.points], ncol)
    except RowError as exc:
        raise _fail(f"data line {exc.index + 1}: {exc.message}", path) from None
    out = np.empty(h.points, dtype=dt)
    col = 0
    for name, count, kind, size in zip(dt.names or (), h.counts, h.types, h.sizes, strict=True):
        part = table[:, col:col + count]
        col += count
        target = out[name]
        if name in ("rgb", "rgba") and kind == "F" and size == 4 and count == 1:
            # New PCL prints the packed colour as the uint32 it holds, old PCL as a float: an integral
            # value in uint32 range is the former (a packed float is never integral except 0).
            v = part[:, 0]
            with np.errstate(invalid="ignore", over="ignore"):
                as_int = np.isfinite(v) & (v == np.floor(v)) & (v >= 0) & (v < 2.0**32)
                bits = np.where(as_int, np.nan_to_num(v), 0).astype(np.uint32)
                bits = np.where(as_int, bits, v.astype(np.float32).view(np.uint32))
            out[name] = bits.view(np.float32)
            continue
        if kind == "F":
            target[...] = part.reshape(target.shape)
        else:
            info = np.iinfo(target.dtype)
            target[...] = np.clip(np.nan_to_num(part), info.min, info.max).reshape(target.shape)
    return out


def _unpack_rgb(column: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB from a packed 0x??RRGGBB column (float or uint bits)."""
    if column.dtype.itemsize == 4:
        # Little-endian bytes of 0xAARRGGBB are B, G, R, A: reverse the first three.
        quads = np.ascontiguousarray(column).view("<u4").view(np.uint8).reshape(-1, 4)
        return np.ascontiguousarray(quads[:, 2::-1])
    raw = column.astype(np.uint64)
    return np.stack([(raw >> 16) & 0xFF, (raw >> 8) & 0xFF, raw & 0xFF], axis=1).astype(np.uint8)


def decode_pcd(data: bytes, *, path: PathArg | None = None) -> PointCloud:
    """A :class:`PointCloud` from the bytes of a PCD file (``path`` only names the source in errors).

    Points (N, 3) float32 with NaN points dropped; colours (N, 3) uint8 from ``rgb``/``rgba``;
    normals (N, 3) float32 from ``normal_x normal_y normal_z``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"data: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    h = parse_pcd_header(data, path=path)
    for axis in ("x", "y", "z"):
        if axis not in h.fields:
            raise _fail(f"FIELDS has no {axis!r}: not a point cloud this reader understands", path)
        i = h.fields.index(axis)
        if h.counts[i] != 1:
            raise _fail(f"field {axis!r} has COUNT {h.counts[i]}, expected 1", path)
    rec = _decode_body(data, h, path)
    single = {f for f, c in zip(h.fields, h.counts, strict=True) if c == 1}
    colour = next((name for name in ("rgb", "rgba") if name in single), None)
    has_normals = {"normal_x", "normal_y", "normal_z"} <= single
    pts, (colors, normals) = finite_rows(
        gather(rec, ("x", "y", "z"), np.float32),
        None if colour is None else _unpack_rgb(rec[colour]),
        gather(rec, ("normal_x", "normal_y", "normal_z"), np.float32) if has_normals else None,
    )
    frame = "optical"
    for c in h.comments:
        words = c.split()
        if len(words) == 2 and words[0] == "frame":
            frame = words[1]
    return PointCloud._trusted(pts, colors, normals, frame)


def read_pcd(path: PathArg) -> PointCloud:
    """Read a PCD point cloud (see the module docstring for what is accepted)."""
    return decode_pcd(read_input(path), path=Path(path).name)


# -- writing ------------------------------------------------------------------------------------

def _encode_parts(cloud: PointCloud, data: str) -> tuple[bytes, bytes | np.ndarray]:
    """The header and the body of a PCD file; a binary body is a packed record array."""
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    if data not in DATA_KINDS:
        raise InputError(f"data: expected one of {', '.join(DATA_KINDS)}, got {data!r}")
    n = len(cloud)
    # Blocks of whole columns: (names, (N, k) or (N,) little-endian 4-byte values).
    blocks: list[tuple[tuple[str, ...], np.ndarray]] = [(("x", "y", "z"), cloud.points.astype("<f4", copy=False))]
    if cloud.colors is not None:
        c = cloud.colors.astype(np.uint32)
        blocks.append((("rgb",), ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).astype("<u4")))
    if cloud.normals is not None:
        blocks.append((("normal_x", "normal_y", "normal_z"), cloud.normals.astype("<f4", copy=False)))
    names = [name for block_names, _ in blocks for name in block_names]
    k = len(names)
    # In text, a packed float colour is a denormal or NaN that does not survive printing; PCL itself
    # stores text colours as the uint32 they hold (TYPE U), and reads them back exactly that way.
    types = ["U" if (name == "rgb" and data == "ascii") else "F" for name in names]
    head = ["# .PCD v0.7 - Point Cloud Data file format"]
    if cloud.frame != "optical":
        if not cloud.frame.isascii() or any(ch.isspace() for ch in cloud.frame):
            raise InputError(f"cloud.frame: cannot store frame name {cloud.frame!r} in a PCD comment")
        head.append(f"# frame {cloud.frame}")
    head += [
        "VERSION 0.7",
        "FIELDS " + " ".join(names),
        "SIZE " + " ".join(["4"] * k),
        "TYPE " + " ".join(types),
        "COUNT " + " ".join(["1"] * k),
        f"WIDTH {n}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {n}",
        f"DATA {data}",
    ]
    header = ("\n".join(head) + "\n").encode("ascii")
    if data == "ascii":
        columns = [col for _, arr in blocks for col in (arr.T if arr.ndim == 2 else [arr])]
        return header, format_table(columns).encode("ascii")
    if data == "binary":
        # PCL's binary rgb is the packed uint32's bytes read as a float: the same bytes.
        return header, records([arr for _, arr in blocks], n)
    # binary_compressed: each field's values one after another (structure of arrays), then LZF.
    soa = b"".join(np.ascontiguousarray(col).tobytes() for _, arr in blocks
                   for col in (arr.T if arr.ndim == 2 else [arr]))
    packed_bytes = lzf_compress(soa)
    return header, struct.pack("<II", len(packed_bytes), len(soa)) + packed_bytes


def encode_pcd(cloud: PointCloud, *, data: str = "binary") -> bytes:
    """The bytes of a PCD v0.7 file holding ``cloud``; ``data`` is ascii, binary or binary_compressed.

    Fields: ``x y z`` float32, ``rgb`` packed float32 (0x00RRGGBB bits) if colours, ``normal_x
    normal_y normal_z`` float32 if normals.
    """
    header, body = _encode_parts(cloud, data)
    return header + (body.tobytes() if isinstance(body, np.ndarray) else body)


def write_pcd(path: PathArg, cloud: PointCloud, *, data: str = "binary", overwrite: bool = False) -> Path:
    """Write ``cloud`` as PCD (see :func:`encode_pcd`); refuses an existing file unless ``overwrite``.

    The file appears whole or not at all (temporary file + rename). Returns the path.
    """
    return write_atomic(path, _encode_parts(cloud, data), overwrite=overwrite)
