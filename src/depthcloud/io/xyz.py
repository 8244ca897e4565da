"""Plain-text point lists: ``.xyz``/``.txt`` (whitespace) and ``.csv`` (commas).

One point per line: ``x y z`` or ``x y z r g b``. Reading also accepts commas, semicolons or tabs
in any of these files, ``#`` comment lines, colours as floats in 0..1, and a header line of column
names before the first row (``x,y,z,r,g,b``, or CloudCompare's ``//X,Y,Z,R,G,B,Nx,Ny,Nz``): with a
header, columns are found by name (``r g b`` or ``red green blue``, ``nx ny nz`` or ``normal_x …``)
and other columns are ignored. Writing uses spaces for ``.xyz``/``.txt`` and commas with a header
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
    finite_rows,
    format_table,
    is_number,
    number_table,
    read_input,
    write_atomic,
)

__all__ = ["decode_xyz", "encode_xyz", "read_xyz", "write_xyz"]

_SPLIT = re.compile(r"[,;\s]+")


_COLUMN_SETS = {
    "points": (("x", "y", "z"),),
    "colors": (("r", "g", "b"), ("red", "green", "blue")),
    "normals": (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z")),
}


def _header_columns(names: list[str], path: PathArg | None, line: int) -> dict[str, list[int]]:
    """Column indices of points, colours and normals named by a header line (other columns ignored)."""
    lower = [n.lower() for n in names]
    found: dict[str, list[int]] = {}
    for key, options in _COLUMN_SETS.items():
        for option in options:
            if all(n in lower for n in option):
                found[key] = [lower.index(n) for n in option]
                break
    if "points" not in found:
        raise FormatError(f"the header names no x, y, z columns: {' '.join(names)!r}", path=path, line=line)
    return found


def decode_xyz(data: bytes, *, path: PathArg | None = None) -> PointCloud:
    """A cloud from text lines of ``x y z [r g b]`` (see the module docstring). Points (N, 3) float32,
    colours (N, 3) uint8, normals (N, 3) float32 when a header names them; rows with a non-finite
    coordinate are dropped."""
    text = data.decode("utf-8", errors="replace")
    rows: list[tuple[int, list[str]]] = []
    header: tuple[int, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        title = line.startswith("//")  # CloudCompare writes its column titles as "//X,Y,Z,R,G,B"
        words = [w for w in _SPLIT.split(line.lstrip("/")) if w]
        if not rows and header is None and words and not all(is_number(w) for w in words):
            header = (number, words)
        elif not title and words:
            rows.append((number, words))
    if header is not None:
        columns = _header_columns(header[1], path, header[0])
        ncol = len(header[1])
    elif rows:
        ncol = len(rows[0][1])
        if ncol not in (3, 6):
            raise FormatError(f"expected 3 (x y z) or 6 (x y z r g b) columns, got {ncol}", path=path,
                              line=rows[0][0])
        columns = {"points": [0, 1, 2], **({"colors": [3, 4, 5]} if ncol == 6 else {})}
    if not rows:
        return PointCloud._trusted(np.empty((0, 3), np.float32))
    try:
        table = number_table([" ".join(words) for _, words in rows], ncol)
    except RowError as exc:
        raise FormatError(exc.message, path=path, line=rows[exc.index][0]) from None
    with np.errstate(over="ignore", invalid="ignore"):
        pts = table[:, columns["points"]].astype(np.float32)
        normals = table[:, columns["normals"]].astype(np.float32) if "normals" in columns else None
    colors = None
    if "colors" in columns:
        rgb = table[:, columns["colors"]]
        ok = np.isfinite(rgb) & (rgb >= 0) & (rgb <= 255)
        if not ok.all():
            bad = int(np.flatnonzero(~ok.all(axis=1))[0])
            raise FormatError("colours must be 0..255 (or 0..1 floats)", path=path, line=rows[bad][0])
        if rgb.max() <= 1.0 and np.any(rgb != np.floor(rgb)):
            rgb = rgb * 255.0
        colors = np.rint(rgb).astype(np.uint8)
    pts, (colors, normals) = finite_rows(pts, colors, normals)
    return PointCloud._trusted(pts, colors, normals)


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
