"""Helpers every calibration reader shares: text decoding, strict numbers, matrices and vectors, and
Intrinsics built with the file's name and key in every error. No format lives here.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import numpy as np

from depthcloud.camera import Intrinsics
from depthcloud.errors import FormatError, InputError

PathArg = str | PathLike[str]

# A strict decimal number: Python's float() would also take "nan", "infinity" and "1_000".
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")




def _text(data: bytes, path: PathArg) -> str:
    """File bytes as text; binary content or an empty file is a FormatError."""
    if not data.strip():
        raise FormatError("empty file", path=path)
    if b"\x00" in data:
        raise FormatError("binary content (NUL bytes), expected a text calibration file", path=path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text (byte {exc.start}); expected a text calibration file", path=path) from exc


def _number(text: str, *, path: PathArg, key: str | None = None, line: int | None = None) -> float:
    s = text.strip()
    if not _NUMBER.fullmatch(s):
        raise FormatError(f"expected a number, got {_clip(s)!r}", path=path, key=key, line=line)
    x = float(s)
    if not math.isfinite(x):
        raise FormatError(f"number out of range: {_clip(s)!r}", path=path, key=key, line=line)
    return x


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


def _as_float(value: Any, *, path: PathArg, key: str) -> float:
    """A finite number from a parsed document (JSON/YAML/FileStorage); numeric strings are accepted."""
    if isinstance(value, bool):
        raise FormatError(f"expected a number, got {value!r}", path=path, key=key)
    if isinstance(value, (int, float, np.integer, np.floating)):
        try:
            x = float(value)
        except OverflowError:  # a Python int beyond float range
            x = math.inf
        if not math.isfinite(x):
            raise FormatError(f"expected a finite number, got {value!r}", path=path, key=key)
        return x
    if isinstance(value, str):
        return _number(value, path=path, key=key)
    raise FormatError(f"expected a number, got {type(value).__name__}", path=path, key=key)


def _as_int(value: Any, *, path: PathArg, key: str, low: int | None = None) -> int:
    x = _as_float(value, path=path, key=key)
    if not x.is_integer():
        raise FormatError(f"expected an integer, got {value!r}", path=path, key=key)
    n = int(x)
    if low is not None and n < low:
        raise FormatError(f"expected an integer >= {low}, got {n}", path=path, key=key)
    return n


def _as_matrix(value: Any, shape: tuple[int, int], *, path: PathArg, key: str) -> np.ndarray:
    """A finite float64 matrix of ``shape`` from a nested list, a flat row-major list or an array."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise FormatError(f"expected a numeric matrix, got dtype {value.dtype}", path=path, key=key)
        arr = value.astype(np.float64)
    elif isinstance(value, (list, tuple)):
        if value and all(isinstance(r, (list, tuple)) for r in value):
            if len({len(r) for r in value}) != 1:
                raise FormatError("rows of different lengths", path=path, key=key)
            flat = [x for r in value for x in r]
            arr_shape: tuple[int, ...] = (len(value), len(value[0]))
        else:
            flat = list(value)
            arr_shape = (len(flat),)
        arr = np.array([_as_float(x, path=path, key=key) for x in flat], dtype=np.float64).reshape(arr_shape)
    else:
        raise FormatError(f"expected a {shape[0]}x{shape[1]} matrix, got {type(value).__name__}", path=path, key=key)
    if not (arr.shape == shape or (arr.ndim == 1 and arr.size == shape[0] * shape[1])):
        got = "x".join(map(str, arr.shape)) if arr.ndim > 1 else f"{arr.size} values"
        raise FormatError(f"expected a {shape[0]}x{shape[1]} matrix, got {got}", path=path, key=key)
    if not np.isfinite(arr).all():
        raise FormatError("contains NaN or inf", path=path, key=key)
    return arr.reshape(shape)


def _rotation(value: Any, *, path: PathArg, key: str) -> np.ndarray:
    R = _as_matrix(value, (3, 3), path=path, key=key)
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
        raise FormatError("not a rotation matrix (R·Rᵀ ≠ I or det < 0)", path=path, key=key)
    return R


def _as_vector(value: Any, *, path: PathArg, key: str, sizes: Sequence[int] | None = None) -> tuple[float, ...]:
    if isinstance(value, np.ndarray):
        if value.ndim == 2 and 1 not in value.shape:
            raise FormatError(f"expected a row or column vector, got shape {value.shape}", path=path, key=key)
        items: list[Any] = value.ravel().tolist()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise FormatError(f"expected a list of numbers, got {type(value).__name__}", path=path, key=key)
    out = tuple(_as_float(x, path=path, key=key) for x in items)
    if sizes is not None and len(out) not in sizes:
        raise FormatError(f"expected {' or '.join(map(str, sizes))} values, got {len(out)}", path=path, key=key)
    return out


def _intrinsics(
    K: np.ndarray, width: int, height: int, dist: Sequence[float], model: str, *, path: PathArg, key: str
) -> Intrinsics:
    """Build Intrinsics; its own validation errors become FormatErrors of this file and key."""
    try:
        return Intrinsics.from_K(K, width, height, dist=tuple(dist), model=model)
    except InputError as exc:
        raise FormatError(exc.message, path=path, key=key) from exc


def _require(doc: Mapping[str, Any], keys: Sequence[str], *, path: PathArg, what: str) -> None:
    missing = [k for k in keys if k not in doc]
    if missing:
        raise FormatError(f"{what}: missing key(s) {', '.join(missing)}", path=path, key=missing[0])


def _refuse_unknown(doc: Mapping[str, Any], known: Sequence[str], *, path: PathArg, what: str) -> None:
    unknown = sorted(str(k) for k in doc if k not in known)
    if unknown:
        raise FormatError(
            f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}", path=path, key=unknown[0]
        )


def _json_doc(text: str, path: PathArg) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"not valid JSON: {getattr(exc, 'msg', exc)}", path=path,
                          line=getattr(exc, "lineno", None)) from exc
