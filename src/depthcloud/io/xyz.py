"""Plain-text point lists: ``.xyz``/``.txt`` (whitespace) and ``.csv`` (commas).

One point per line: ``x y z`` or ``x y z r g b``. Reading also accepts commas, semicolons or tabs
in any of these files, a header line of names (``x,y,z,r,g,b``) on the first line, ``#`` comment lines,
and colours as floats in 0..1. Writing uses spaces for ``.xyz``/``.txt`` and commas with a header
line for ``.csv``; floats are written with the shortest text that reads back bit for bit.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import (
    PathArg,
    RowError,
    format_table,
    is_number,
    number_table,
    read_input,
    write_atomic,
)

__all__ = ["decode_xyz", "encode_xyz", "read_xyz", "write_xyz"]

_SPLIT = re.compile(r"[,;\s]+")


def decode_xyz(data: bytes, *, path: PathArg | None = None) -> PointCloud:
    """A cloud from text lines of ``x y z [r g b]`` (see the module docstring). Points (N, 3) float32,
    colours (N, 3) uint8; rows with a non-finite coordinate are dropped."""
    text = data.decode("utf-8", errors="replace")
    rows: list[tuple[int, list[str]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        rows.append((number, [w for w in _SPLIT.split(line) if w]))
    if rows and not all(is_number(w) for w in rows[0][1]):
        rows = rows[1:]  # a header line of column names
    if not rows:
        return PointCloud._trusted(np.empty((0, 3), np.float32))
    ncol = len(rows[0][1])
    if ncol not in (3, 6):
        raise FormatError(f"expected 3 (x y z) or 6 (x y z r g b) columns, got {ncol}", path=path, line=rows[0][0])
    try:
        table = number_table([" ".join(words) for _, words in rows], ncol)
    except RowError as exc:
        raise FormatError(exc.message, path=path, line=rows[exc.index][0]) from None
    with np.errstate(over="ignore", invalid="ignore"):
        pts = table[:, :3].astype(np.float32)
    keep = np.isfinite(pts).all(axis=1)
    colors = None
    if ncol == 6:
        rgb = table[:, 3:6]
        if not np.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 255:
            bad = int(np.flatnonzero(~(np.isfinite(rgb) & (rgb >= 0) & (rgb <= 255)).all(axis=1))[0])
            raise FormatError("colours must be 0..255 (or 0..1 floats)", path=path, line=rows[bad][0])
        if rgb.max() <= 1.0 and np.any(rgb != np.floor(rgb)):
            rgb = rgb * 255.0
        colors = np.ascontiguousarray(np.rint(rgb).astype(np.uint8)[keep])
    return PointCloud._trusted(np.ascontiguousarray(pts[keep]), colors)


def read_xyz(path: PathArg) -> PointCloud:
    """Read a ``.xyz``/``.txt``/``.csv`` point list (see :func:`decode_xyz`)."""
    return decode_xyz(read_input(path), path=Path(path).name)


def encode_xyz(cloud: PointCloud, *, csv: bool = False) -> bytes:
    """Text lines ``x y z [r g b]`` for ``cloud``; ``csv`` uses commas and a header line.

    Normals, frame and stamp are not stored (the format has no place for them).
    """
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    columns = list(cloud.points.T)
    names = ["x", "y", "z"]
    if cloud.colors is not None:
        columns += list(cloud.colors.T)
        names += ["r", "g", "b"]
    sep = "," if csv else " "
    head = sep.join(names) + "\n" if csv else ""
    return (head + format_table(columns, sep=sep)).encode("ascii")


def write_xyz(path: PathArg, cloud: PointCloud, *, csv: bool | None = None, overwrite: bool = False) -> Path:
    """Write ``cloud`` as a text point list; ``csv`` defaults to whether the suffix is ``.csv``.

    Refuses an existing file unless ``overwrite``; the file appears whole or not at all.
    """
    as_csv = Path(path).suffix.lower() == ".csv" if csv is None else csv
    return write_atomic(path, encode_xyz(cloud, csv=as_csv), overwrite=overwrite)
