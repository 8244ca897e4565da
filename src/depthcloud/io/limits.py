"""Size limits checked before anything is decoded: a few hundred bytes must not make us allocate gigabytes.

Compressed formats say in their headers how large they will be once decoded: a 777 KB PNG can declare
5.6 GB of pixels, a 1.4 MB ``.npz`` 2 GB of array. The readers look at those declarations first
(PNG's IHDR, JPEG's frame header, PNM's size line, the ``.npy`` header inside an ``.npz``) and refuse
what is over the limit with a :class:`~depthcloud.errors.FormatError` that names the file, the
declared size and the limit, and says how to raise it.

The limit: at most ``max_pixels`` pixels per image (default :data:`DEFAULT_MAX_PIXELS`, 2**26 =
67 million, e.g. 8192 × 8192), and at most ``8 × max_pixels`` bytes per decoded array (what the
largest image would take with 4 channels of 16 bits: 512 MiB by default). Raise it with the
environment variable ``DEPTHCLOUD_MAX_PIXELS`` or the ``max_pixels=`` argument of the readers.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import numpy as np

from depthcloud.errors import ConfigError, FormatError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "check_array",
    "check_image_bytes",
    "check_npy_header",
    "declared_image_size",
    "max_array_bytes",
    "max_pixels",
]

DEFAULT_MAX_PIXELS = 2**26
_ENV = "DEPTHCLOUD_MAX_PIXELS"


def max_pixels(given: int | None = None) -> int:
    """The pixel limit in force: ``given``, else ``$DEPTHCLOUD_MAX_PIXELS``, else the default."""
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or given < 1:
            raise ConfigError(f"max_pixels: expected a positive integer, got {given!r}")
        return int(given)
    text = os.environ.get(_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{_ENV}: expected a positive number of pixels, got {text!r}")
    return value


def max_array_bytes(given: int | None = None) -> int:
    """Bytes one decoded array may take: 8 × :func:`max_pixels` (4 channels of 16 bits)."""
    return 8 * max_pixels(given)


def _too_large(what: str, amount: str, limit: str, path: str | None) -> FormatError:
    return FormatError(f"{what} declares {amount}, over the limit of {limit}; if the file is genuine, raise the "
                       f"limit with {_ENV} (or max_pixels=)", path=path)


def declared_image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that a PNG, JPEG or PNM header declares, or None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None  # let the decoder say what is wrong
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:1] == b"P" and data[1:2] in b"123456" and len(data) > 2:
        words = []
        for line in data[2:4096].split(b"\n"):
            words += line.split(b"#", 1)[0].split()
            if len(words) >= 2:
                break
        if len(words) >= 2 and words[0].isdigit() and words[1].isdigit():
            return int(words[0]), int(words[1])
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return int(w), int(h)
        if length < 2:
            return None
        i += 2 + length
    return None


def check_image_bytes(data: bytes, *, path: str | None = None, limit: int | None = None) -> None:
    """Refuse an encoded image whose header declares more than ``max_pixels`` pixels."""
    size = declared_image_size(data)
    if size is None:
        return
    w, h = size
    most = max_pixels(limit)
    if w * h > most:
        raise _too_large("the image", f"{w}x{h} = {w * h} pixels", f"{most} pixels", path)


def check_array(shape: Sequence[int], dtype: np.dtype, *, path: str | None = None, key: str | None = None,
                limit: int | None = None) -> None:
    """Refuse an array (from its header: shape and dtype) that would take more than
    :func:`max_array_bytes`; ``key`` names the array inside an archive."""
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * np.dtype(dtype).itemsize
    most = max_array_bytes(limit)
    if nbytes > most:
        what = f"array {key!r}" if key else "the array"
        raise _too_large(what, f"shape {tuple(int(d) for d in shape)} of {np.dtype(dtype)} ({nbytes} bytes)",
                         f"{most} bytes", path)


def check_npy_header(fileobj: object, *, path: str | None = None, key: str | None = None,
                     limit: int | None = None) -> None:
    """Read the header of the ``.npy`` stream ``fileobj`` (positioned at its start) and
    :func:`check_array` it. A header numpy cannot parse is a FormatError."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fileobj)  # type: ignore[arg-type]
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fileobj)  # type: ignore[arg-type]
        else:
            shape, _, dtype = fmt.read_array_header_2_0(fileobj)  # type: ignore[arg-type]
    except Exception as exc:  # numpy raises ValueError, SyntaxError, … for a broken header
        what = f"array {key!r}" if key else "the array"
        raise FormatError(f"{what}: not a readable .npy header ({exc})", path=path) from exc
    check_array(shape, dtype, path=path, key=key, limit=limit)
