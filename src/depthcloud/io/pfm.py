"""PFM (portable float map) images: Middlebury's disparity format.

A header of three whitespace-separated tokens — ``Pf`` (one channel) or ``PF`` (three), ``W H``, and
a scale whose sign is the byte order (negative = little-endian) — then one whitespace byte (or
``\r\n``), then
W·H·C float32 values, rows **bottom to top**. Arrays here are rows top to bottom; values are kept as
stored (Middlebury marks unknown disparity with inf: callers treat non-finite as invalid).

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import PathArg, read_input, write_atomic

__all__ = ["decode_pfm", "encode_pfm", "read_pfm", "write_pfm"]

# One whitespace byte ends the header; a Windows writer's "\r\n" counts as one.
_HEADER = re.compile(rb"\A(P[Ff])\s+(\S+)\s+(\S+)\s+(\S+)(?:\r\n|\s)")


def decode_pfm(data: bytes, *, path: PathArg | None = None) -> np.ndarray:
    """The image in PFM bytes: float32 (H, W) for ``Pf`` or (H, W, 3) for ``PF``, rows top to bottom."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"data: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:2] not in (b"Pf", b"PF"):
        raise FormatError(f"not a PFM file: expected 'Pf' or 'PF', got {data[:2]!r}", path=path, line=1)
    m = _HEADER.match(data[:256])
    if m is None:
        raise FormatError("expected a header 'Pf|PF', 'W H', 'scale'", path=path)
    channels = 3 if m.group(1) == b"PF" else 1
    try:
        width, height = int(m.group(2)), int(m.group(3))
    except ValueError:
        raise FormatError(f"expected 'W H' as two integers, got {m.group(2)!r} {m.group(3)!r}", path=path,
                          line=2) from None
    if width <= 0 or height <= 0:
        raise FormatError(f"expected a positive size, got {width}x{height}", path=path, line=2)
    try:
        scale = float(m.group(4))
    except ValueError:
        raise FormatError(f"expected the scale as a number, got {m.group(4)!r}", path=path, line=3) from None
    if scale == 0 or not np.isfinite(scale):
        raise FormatError(f"expected a non-zero finite scale, got {m.group(4).decode('latin-1')}", path=path,
                          line=3)
    order = "<" if scale < 0 else ">"
    need = width * height * channels * 4
    body = len(data) - m.end()
    if body < need:
        raise FormatError(f"expected {need} bytes of float data, got {body}", path=path)
    arr = np.frombuffer(data, dtype=order + "f4", count=width * height * channels, offset=m.end())
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(arr.reshape(shape)[::-1], dtype=np.float32)


def read_pfm(path: PathArg) -> np.ndarray:
    """Read a PFM image: float32 (H, W) or (H, W, 3), rows top to bottom, values as stored (inf kept)."""
    return decode_pfm(read_input(path), path=Path(path).name)


def encode_pfm(array: np.ndarray) -> bytes:
    """PFM bytes for a float (H, W) or (H, W, 3) array: little-endian (scale -1), rows bottom-up."""
    arr = v.array("array", array, ndim=(2, 3), kinds="fiu", expected="(H, W) or (H, W, 3)")
    if arr.ndim == 3 and arr.shape[2] != 3:
        raise InputError(f"array: expected shape (H, W) or (H, W, 3), got {arr.shape}")
    kind = "PF" if arr.ndim == 3 else "Pf"
    h, w = arr.shape[:2]
    body = np.ascontiguousarray(arr[::-1], dtype="<f4").tobytes()
    return f"{kind}\n{w} {h}\n-1\n".encode("ascii") + body


def write_pfm(path: PathArg, array: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write ``array`` as PFM (see :func:`encode_pfm`); refuses an existing file unless ``overwrite``."""
    return write_atomic(path, encode_pfm(array), overwrite=overwrite)
