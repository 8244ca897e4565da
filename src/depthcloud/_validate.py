"""Validation at the public boundary: one place that names the argument and says what was expected.

Kernels behind the boundary trust their input; nothing here is used on hot paths per pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from depthcloud.errors import InputError

_KIND_NAMES = {"f": "float", "u": "unsigned integer", "i": "integer", "b": "bool"}


def _shape_str(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def array(
    name: str,
    value: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    shape: Sequence[int | None] | None = None,
    kinds: str | None = None,
    nonempty: bool = True,
    expected: str | None = None,
) -> np.ndarray:
    """Return ``value`` as an ndarray or raise :class:`InputError` naming ``name``.

    shape: expected shape with ``None`` for free axes; kinds: allowed dtype kinds (e.g. ``"fui"``).
    ``expected`` overrides the shape text in the message, e.g. ``"(H, W)"``.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # numpy raises many types for ragged input
        raise InputError(f"{name}: expected an array, got {type(value).__name__} ({exc})") from exc
    if arr.dtype == object:
        raise InputError(f"{name}: expected a numeric array, got dtype object")
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in dims:
            want = expected or " or ".join(f"{d}-D" for d in dims)
            raise InputError(f"{name}: expected shape {want}, got {_shape_str(arr.shape)}")
    if shape is not None:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape, strict=False))
        if not ok:
            want = expected or _shape_str(["*" if s is None else s for s in shape])
            raise InputError(f"{name}: expected shape {want}, got {_shape_str(arr.shape)}")
    if kinds is not None and arr.dtype.kind not in kinds:
        allowed = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
        raise InputError(f"{name}: expected a {allowed} array, got dtype {arr.dtype}")
    if nonempty and arr.size == 0:
        raise InputError(f"{name}: expected a non-empty array, got shape {_shape_str(arr.shape)}")
    return arr


def image(name: str, value: Any, *, kinds: str = "fui") -> np.ndarray:
    """A single-channel (H, W) image."""
    return array(name, value, ndim=2, kinds=kinds, expected="(H, W)")


def color_image(name: str, value: Any, hw: tuple[int, int] | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image, or (H, W) grey broadcast to RGB; shape checked against ``hw``."""
    arr = array(name, value, ndim=(2, 3), kinds="u", expected="(H, W, 3)")
    if arr.dtype != np.uint8:
        raise InputError(f"{name}: expected dtype uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim == 3 and arr.shape[2] != 3:
        raise InputError(f"{name}: expected shape (H, W, 3), got {_shape_str(arr.shape)}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if hw is not None and arr.shape[:2] != tuple(hw):
        raise InputError(
            f"{name}: expected the size of the depth image {hw[1]}x{hw[0]} (WxH), got {arr.shape[1]}x{arr.shape[0]}"
        )
    return arr


def points(name: str, value: Any, *, allow_empty: bool = True) -> np.ndarray:
    """(N, 3) finite points as float32."""
    arr = array(name, value, shape=(None, 3), kinds="fiu", nonempty=not allow_empty, expected="(N, 3)")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size and not np.isfinite(out).all():
        raise InputError(f"{name}: contains NaN or inf; clouds hold finite points only")
    return out


def colors(name: str, value: Any, n: int) -> np.ndarray:
    """(N, 3) uint8 colours matching ``n`` points."""
    arr = array(name, value, shape=(n, 3), nonempty=False, expected=f"({n}, 3)")
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and arr.size and np.nanmax(arr) <= 1.0 and np.nanmin(arr) >= 0.0:
            return np.ascontiguousarray(np.round(arr * 255.0), dtype=np.uint8)
        if arr.dtype.kind in "ui" and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= 255)):
            return np.ascontiguousarray(arr, dtype=np.uint8)
        raise InputError(f"{name}: expected uint8 colours 0..255 (or floats 0..1), got dtype {arr.dtype}")
    return np.ascontiguousarray(arr)


def number(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    low: float | None = None,
    high: float | None = None,
    allow_inf: bool = False,
) -> float:
    """A finite real number with optional bounds (inclusive)."""
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected a number, got {value!r}") from exc
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    if positive and not x > 0:
        raise InputError(f"{name}: expected a positive number, got {value!r}")
    if nonnegative and x < 0:
        raise InputError(f"{name}: expected a number >= 0, got {value!r}")
    if low is not None and x < low:
        raise InputError(f"{name}: expected a number >= {low}, got {value!r}")
    if high is not None and x > high:
        raise InputError(f"{name}: expected a number <= {high}, got {value!r}")
    return x


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (bools refused) within optional inclusive bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name}: expected an integer, got {value!r}")
    x = int(value)
    if (low is not None and x < low) or (high is not None and x > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise InputError(f"{name}: expected an integer in {lo}..{hi}, got {x}")
    return x
