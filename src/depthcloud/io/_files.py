"""What every format module shares: reading a whole input, writing atomically, text numbers.

Writers build the whole file in memory and hand it here; it lands in a temporary file in the
destination folder and is renamed into place, so an error never leaves half a file behind.
This module must not know any format.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from numpy.lib import recfunctions as rf

from depthcloud.errors import InputError, OutputExistsError

__all__ = ["RowError", "finite_rows", "format_table", "gather", "is_number", "number_table", "read_input", "records",
           "write_atomic"]

PathArg = str | PathLike[str]


class RowError(ValueError):
    """A text row that is not what the table wants; ``index`` is its 0-based position in the rows."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        self.message = message
        super().__init__(f"row {index}: {message}")


def read_input(path: PathArg) -> bytes:
    """The bytes of an existing file; a missing path or a folder is an :class:`InputError`."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=p)
    if p.is_dir():
        raise InputError("is a folder, expected a file", path=p)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=p) from exc


Buffer = bytes | bytearray | memoryview | np.ndarray


def _create_temporary(p: Path) -> tuple[int, str]:
    """A new hidden file beside ``p``, opened for writing. Unlike ``tempfile.mkstemp`` (mode 0600)
    its mode is 0666 less the umask, the mode the renamed file should have."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = str(p.parent / f".{p.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(path: PathArg, data: Buffer | Sequence[Buffer], *, overwrite: bool) -> Path:
    """Write ``data`` (one buffer, or several written one after another) to ``path`` through a
    temporary file in the same folder and a rename.

    Refuses an existing ``path`` unless ``overwrite`` (:class:`OutputExistsError`); creates the parent
    folder. Returns the path written.
    """
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview, np.ndarray)) else list(data)
    p = Path(path)
    if p.is_dir():
        raise InputError("is a folder, expected a file path", path=p)
    if p.exists() and not overwrite:
        raise OutputExistsError("exists; pass --overwrite to replace it", path=p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(p)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", path=p) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            for part in parts:
                # An ndarray goes out as its raw bytes without an intermediate copy.
                fh.write(np.ascontiguousarray(part).data if isinstance(part, np.ndarray) else part)
        os.replace(tmp, p)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write: {exc.strerror or exc}", path=p) from exc
        raise
    return p


def _column_text(values: np.ndarray) -> list[str]:
    """Each value of a 1-D column as text: shortest round-trip repr for floats, plain for integers."""
    if values.dtype.kind == "f":
        # str() of a numpy float32/float64 scalar is the shortest text that reads back to the same value.
        return [str(x) for x in values]
    return [str(x) for x in values.tolist()]


def format_table(columns: Sequence[np.ndarray], *, sep: str = " ") -> str:
    """Rows of text, one per element, from equal-length 1-D columns; each line ends with ``\\n``.

    Floats keep their dtype's shortest exact text (a float32 column reads back bit for bit).
    """
    if not columns or len(columns[0]) == 0:
        return ""
    texts = [_column_text(np.asarray(c)) for c in columns]
    return "".join(sep.join(row) + "\n" for row in zip(*texts, strict=True))


def records(blocks: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Interleave per-point blocks into one packed record array of ``n`` rows (its bytes are the body).

    Each block is (n,) or (n, k) already in the dtype and byte order the file wants; every column
    becomes one scalar field. Field-by-field copies of scalars are numpy's fast path (faster than
    copying 12-byte sub-rows into a byte table).
    """
    columns = [b[:, k] if b.ndim == 2 else b for b in blocks for k in range(b.shape[1] if b.ndim == 2 else 1)]
    rec = np.empty(n, dtype=np.dtype([(f"f{i}", c.dtype) for i, c in enumerate(columns)]))
    for i, c in enumerate(columns):
        rec[f"f{i}"] = c
    return rec


def number_table(lines: Sequence[str], ncol: int) -> np.ndarray:
    """A (len(lines), ncol) float64 table from text lines of ``ncol`` whitespace-separated numbers.

    Raises :class:`RowError` for the first line with another count or a word that is not a number.
    """
    if not lines:
        return np.empty((0, ncol), dtype=np.float64)
    try:
        table = np.loadtxt(lines, dtype=np.float64, comments=None, ndmin=2)  # numpy's C parser
    except ValueError:
        table = None
    if table is not None and table.shape == (len(lines), ncol):
        return table
    rows = []
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) != ncol:
            raise RowError(i, f"expected {ncol} values, got {len(words)}")
        try:
            rows.append([float(w) for w in words])
        except ValueError:
            bad = next(w for w in words if not is_number(w))
            raise RowError(i, f"expected a number, got {bad!r}") from None
    # Every word is a number to Python (e.g. "1_000") though not to numpy's parser.
    return np.array(rows, dtype=np.float64).reshape(len(lines), ncol)


def is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def gather(rec: np.ndarray, names: Sequence[str], dtype: type | None = None) -> np.ndarray:
    """The named fields of a record array as an (N, len(names)) array that owns its memory.

    One strided copy (and cast to ``dtype``, overflow → inf), three times faster than stacking columns.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = rf.structured_to_unstructured(rec[list(names)], dtype=dtype)
    return np.require(out, requirements=["C", "O"])


def finite_rows(points: np.ndarray, *others: np.ndarray | None) -> tuple[np.ndarray, tuple[np.ndarray | None, ...]]:
    """``points`` (N, 3) and the per-point arrays in ``others``, without the rows whose point is not finite."""
    finite = np.isfinite(points)
    if finite.all():  # the whole-array test is cheap; the per-row one is only needed when it fails
        return points, others
    valid = finite[:, 0] & finite[:, 1] & finite[:, 2]
    return points[valid], tuple(None if o is None else o[valid] for o in others)
