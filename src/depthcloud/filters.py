"""Depth-image filters with librealsense's post-processing semantics, and a chain that runs them per frame.

Every filter reproduces what librealsense 2.x does to a z16 frame (``rs.threshold_filter``,
``rs.decimation_filter``, ``rs.temporal_filter``, ``rs.spatial_filter``, ``rs.hole_filling_filter``,
``rs.disparity_transform``), checked bit for bit against pyrealsense2 in
``tests/test_filters_librealsense.py``. Depth is float32 metres with 0 = invalid (NaN is read as
invalid too); where librealsense's arithmetic is integer arithmetic on z16 units, depth is quantised
to ``depth_scale`` units (default 1 mm), filtered as librealsense does, and returned as
``float32(z16) · float32(depth_scale)`` — the value librealsense's point cloud would use.

Domains, as librealsense applies them:

* threshold, decimation, hole filling: the depth domain. Threshold, median decimation (magnitude 2–3)
  and hole filling only select or copy values, so they run on the float metres directly; mean
  decimation (magnitude ≥ 4) quantises to z16 units (integer mean, rounded down).
* spatial and temporal: either domain. librealsense's usual chain wraps them in a disparity
  transform (depth → disparity → spatial → temporal → depth), where ``delta`` is in disparity units
  (1/32 pixel); applied to depth directly, ``delta`` is in z16 depth units. ``domain="disparity"``
  takes the float32 disparity that :func:`depth_to_disparity` makes.
* disparity transform: disparity = F / z16 with F = baseline_m · fx · 32 / depth_scale computed in
  float32 exactly as librealsense does (:func:`disparity_factor`); back, z16 = ⌊F / disparity + 0.5⌋.

Decimation pads its output to a multiple of 4 pixels on each side (zeros), like librealsense, and
returns intrinsics by depthcloud's pixel-centre rule (cx' = (cx + 0.5)/s − 0.5); librealsense writes
ppx/s instead, (s − 1)/(2s) pixel to the left.

This module must not import sources, the server or the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics
from depthcloud.errors import ConfigError, InputError
from depthcloud.frame import Frame
from depthcloud.geometry import HAVE_NUMBA

__all__ = [
    "HOLE_FILL_MODES",
    "Decimation",
    "DisparityTransform",
    "FilterChain",
    "HoleFilling",
    "Spatial",
    "Temporal",
    "TemporalFilter",
    "Threshold",
    "decimate",
    "depth_to_disparity",
    "disparity_factor",
    "disparity_to_depth",
    "fill_holes",
    "spatial",
    "threshold",
]

#: librealsense's hole-filling modes, by name, with the number its ``holes_fill`` option takes.
HOLE_FILL_MODES = {"fill_from_left": 0, "farthest": 1, "nearest": 2}
_DOMAINS = ("depth", "disparity")
_COL_BLOCK = 64  # columns per task in the vertical passes
_Z16_MAX = 65535

if HAVE_NUMBA:
    from numba import njit, prange
else:  # pragma: no cover - the same loops run as plain Python, slowly
    def njit(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        if args and callable(args[0]):
            return args[0]
        return lambda fn: fn

    prange = range  # type: ignore[misc]

# One pass over a frame of these sizes is memory-bound and well under a millisecond: threads do not
# pay for the light per-pixel kernels (and a descheduled worker on a busy 2-core machine stalls the
# whole parallel region), so only the heavy ones (spatial, 3×3 median, mean decimation) use prange.
_jit = njit(cache=True, nogil=True)
_pjit = njit(parallel=True, cache=True, nogil=True)


# --------------------------------------------------------------------------------------------
# kernels (trust their input; float32 arithmetic in the order librealsense's C++ uses)
# --------------------------------------------------------------------------------------------


@_jit
def _k_quantize(depth, inv_scale, out):  # type: ignore[no-untyped-def]
    h, w = depth.shape
    for r in range(h):
        for c in range(w):
            d = depth[r, c]
            if d > 0.0 and d < np.inf:
                q = math.floor(d * inv_scale + 0.5)
                out[r, c] = _Z16_MAX if q > _Z16_MAX else np.uint16(q)
            else:
                out[r, c] = 0


@_jit
def _k_dequantize(z16, scale, out):  # type: ignore[no-untyped-def]
    h, w = z16.shape
    for r in range(h):
        for c in range(w):
            out[r, c] = np.float32(z16[r, c]) * scale


@_jit
def _k_threshold(depth, lo, hi, out):  # type: ignore[no-untyped-def]
    h, w = depth.shape
    for r in range(h):
        for c in range(w):
            d = depth[r, c]
            out[r, c] = d if (d > 0.0 and d >= lo and d <= hi) else np.float32(0.0)


@_pjit
def _k_decimate_median(depth, s, out):  # type: ignore[no-untyped-def]
    # The lower median of the valid (> 0) samples of each s×s block; 0 when none is valid.
    # Invalid samples sort last as +inf; the fixed compare-exchange network has no data-dependent
    # branches, which matters on noisy depth.
    ho, wo = depth.shape[0] // s, depth.shape[1] // s
    k = s * s
    for j in prange(ho):
        buf = np.empty(k, dtype=np.float32)
        for i in range(wo):
            n = 0
            for a in range(s):
                for b in range(s):
                    x = depth[j * s + a, i * s + b]
                    valid = x > 0.0
                    n += int(valid)
                    buf[a * s + b] = x if valid else np.inf
            for p in range(k - 1):
                for q in range(k - 1 - p):
                    lo = buf[q]
                    hi = buf[q + 1]
                    buf[q] = lo if lo < hi else hi
                    buf[q + 1] = hi if lo < hi else lo
            out[j, i] = buf[(n - 1) // 2] if n > 0 else np.float32(0.0)


@_jit
def _cx(a, b):  # type: ignore[no-untyped-def]
    return (a, b) if a < b else (b, a)


@_jit
def _k_decimate_median2(depth, out):  # type: ignore[no-untyped-def]
    # magnitude 2: the same lower median with a 5-exchange network on four registers.
    ho, wo = depth.shape[0] // 2, depth.shape[1] // 2
    inf = np.float32(np.inf)
    for j in range(ho):
        for i in range(wo):
            a = depth[2 * j, 2 * i]
            b = depth[2 * j, 2 * i + 1]
            c = depth[2 * j + 1, 2 * i]
            d = depth[2 * j + 1, 2 * i + 1]
            n = int(a > 0.0) + int(b > 0.0) + int(c > 0.0) + int(d > 0.0)
            a = a if a > 0.0 else inf
            b = b if b > 0.0 else inf
            c = c if c > 0.0 else inf
            d = d if d > 0.0 else inf
            a, b = _cx(a, b)
            c, d = _cx(c, d)
            a, c = _cx(a, c)
            b, d = _cx(b, d)
            b, c = _cx(b, c)
            if n == 0:
                out[j, i] = 0.0
            elif n <= 2:
                out[j, i] = a
            else:
                out[j, i] = b


@_pjit
def _k_decimate_mean(z16, s, scale, out):  # type: ignore[no-untyped-def]
    # Integer mean (rounded down) of the valid z16 samples of each s×s block, back in metres.
    ho, wo = z16.shape[0] // s, z16.shape[1] // s
    for j in prange(ho):
        for i in range(wo):
            total = np.int64(0)
            n = 0
            for a in range(s):
                for b in range(s):
                    x = z16[j * s + a, i * s + b]
                    if x != 0:
                        total += np.int64(x)
                        n += 1
            out[j, i] = np.float32(total // n) * scale if n > 0 else np.float32(0.0)


@_jit
def _k_decimate_color(color, s, out):  # type: ignore[no-untyped-def]
    ho, wo = color.shape[0] // s, color.shape[1] // s
    area = s * s
    for j in range(ho):
        for i in range(wo):
            for ch in range(3):
                total = np.int64(0)
                for a in range(s):
                    for b in range(s):
                        total += color[j * s + a, i * s + b, ch]
                out[j, i, ch] = np.uint8(total // area)


@_jit
def _k_temporal(frame, last, history, alpha, one_minus_alpha, delta, lut, index):  # type: ignore[no-untyped-def]
    # frame is filtered in place; last (same dtype) and history (uint8 bit per frame) carry state.
    # The difference is taken in float32 and the average stored with a C cast (truncation for z16).
    h, w = frame.shape
    mask = np.uint8(1 << index)
    notmask = np.uint8(255 - (1 << index))
    for r in range(h):
        for c in range(w):
            cur = frame[r, c]
            prev = last[r, c]
            if cur != 0:
                if prev == 0:
                    last[r, c] = cur
                    history[r, c] = mask
                elif abs(np.float32(cur) - np.float32(prev)) < delta:
                    history[r, c] |= mask
                    frame[r, c] = alpha * np.float32(cur) + one_minus_alpha * np.float32(prev)
                    last[r, c] = frame[r, c]
                else:
                    last[r, c] = cur
                    history[r, c] = mask
            else:
                if prev != 0 and (lut[history[r, c]] & mask) != 0:
                    frame[r, c] = prev
                history[r, c] &= notmask


@_jit
def _fp_pass(line, alpha, one_minus_alpha, delta):  # type: ignore[no-untyped-def]
    # One direction of librealsense's floating-point domain-transform pass over a 1-D view. A value
    # is valid when > 0; the state restarts after an invalid pixel and across an edge ≥ delta.
    n = line.shape[0]
    state = line[0]
    prev_inn = state
    prev_valid = state > 0.0
    for k in range(1, n):
        x = line[k]
        if x > 0.0:
            if prev_valid:
                d = prev_inn - x
                if d < delta and d > -delta:
                    state = x * alpha + state * one_minus_alpha
                    line[k] = state
                else:
                    state = x
            else:
                state = x
            prev_inn = x
            prev_valid = True
        else:
            prev_valid = False


@_pjit
def _k_spatial_fp_rows(img, alpha, one_minus_alpha, delta):  # type: ignore[no-untyped-def]
    for r in prange(img.shape[0]):
        _fp_pass(img[r, :], alpha, one_minus_alpha, delta)
        _fp_pass(img[r, ::-1], alpha, one_minus_alpha, delta)


@_pjit
def _k_spatial_fp_cols(img, alpha, one_minus_alpha, delta):  # type: ignore[no-untyped-def]
    # The same pass as _fp_pass down and up every column, run a row at a time over blocks of
    # columns so that memory is read along rows.
    h, w = img.shape
    nblocks = (w + _COL_BLOCK - 1) // _COL_BLOCK
    for blk in prange(nblocks):
        c0 = blk * _COL_BLOCK
        c1 = min(c0 + _COL_BLOCK, w)
        state = np.empty(c1 - c0, dtype=img.dtype)
        prev_inn = np.empty(c1 - c0, dtype=img.dtype)
        prev_valid = np.empty(c1 - c0, dtype=np.bool_)
        for rows in (range(h), range(h - 1, -1, -1)):
            first = True
            for r in rows:
                for k in range(c1 - c0):
                    x = img[r, c0 + k]
                    if first:
                        state[k] = x
                        prev_inn[k] = x
                        prev_valid[k] = x > 0.0
                    elif x > 0.0:
                        if prev_valid[k]:
                            d = prev_inn[k] - x
                            if d < delta and d > -delta:
                                state[k] = x * alpha + state[k] * one_minus_alpha
                                img[r, c0 + k] = state[k]
                            else:
                                state[k] = x
                        else:
                            state[k] = x
                        prev_inn[k] = x
                        prev_valid[k] = True
                    else:
                        prev_valid[k] = False
                first = False


@_pjit
def _k_spatial_fp_holes(img, radius):  # type: ignore[no-untyped-def]
    # librealsense's "inertial" fill after disparity smoothing: up to radius − 1 pixels from each side.
    # Its right-to-left pass reads one pixel past the row end (the next row's first pixel); the
    # last row reads past the image there, which this reads as empty.
    h, w = img.shape
    for r in prange(h):
        fill = 0
        for c in range(1, w):
            if img[r, c] == 0.0 and not math.copysign(1.0, img[r, c]) < 0.0:
                fill += 1
                if fill < radius:
                    img[r, c] = img[r, c - 1]
            else:
                fill = 0
    for r in range(h):
        fill = 0
        for c in range(w - 1, 0, -1):
            if img[r, c] == 0.0 and not math.copysign(1.0, img[r, c]) < 0.0:
                fill += 1
                if fill < radius:
                    if c + 1 < w:
                        img[r, c] = img[r, c + 1]
                    elif r + 1 < h:
                        img[r, c] = img[r + 1, 0]
            else:
                fill = 0


@_pjit
def _k_spatial_z16_rows(img, alpha, one_minus_alpha, delta, radius):  # type: ignore[no-untyped-def]
    # librealsense's integer horizontal pass: left to right over pixels 1..W−2, then right to left.
    h, w = img.shape
    for r in prange(h):
        val0 = np.int64(img[r, 0])
        fill = 0
        for u in range(1, w - 1):
            val1 = np.int64(img[r, u])
            if val0 >= 1:
                if val1 >= 1:
                    fill = 0
                    diff = abs(val1 - val0)
                    if diff >= 1 and diff <= delta:
                        f = np.float32(val1) * alpha + np.float32(val0) * one_minus_alpha
                        val1 = np.int64(f + np.float32(0.5))
                        img[r, u] = val1
                elif radius > 0:
                    fill += 1
                    if fill < radius:
                        val1 = val0
                        img[r, u] = val1
            val0 = val1
        val1 = np.int64(img[r, w - 1])
        fill = 0
        for u in range(w - 2, -1, -1):
            val0 = np.int64(img[r, u])
            if val1 >= 1:
                if val0 > 1:
                    fill = 0
                    diff = abs(val1 - val0)
                    if diff <= delta:
                        f = np.float32(val0) * alpha + np.float32(val1) * one_minus_alpha
                        val0 = np.int64(f + np.float32(0.5))
                        img[r, u] = val0
                elif radius > 0:
                    fill += 1
                    if fill < radius:
                        val0 = val1
                        img[r, u] = val0
            val1 = val0


@_pjit
def _k_spatial_z16_cols(img, alpha, one_minus_alpha, delta):  # type: ignore[no-untyped-def]
    # librealsense's integer vertical pass. Top to bottom it does not test validity (a pixel next
    # to a hole can be pulled towards 0 when its value is below delta); bottom to top it does.
    # Each column depends only on itself: blocks of columns run a row at a time.
    h, w = img.shape
    nblocks = (w + _COL_BLOCK - 1) // _COL_BLOCK
    for blk in prange(nblocks):
        c0 = blk * _COL_BLOCK
        c1 = min(c0 + _COL_BLOCK, w)
        for r in range(1, h):
            for c in range(c0, c1):
                a = np.int64(img[r - 1, c])
                b = np.int64(img[r, c])
                if abs(a - b) < delta:
                    f = np.float32(b) * alpha + np.float32(a) * one_minus_alpha
                    img[r, c] = np.int64(f + np.float32(0.5))
        for r in range(h - 2, -1, -1):
            for c in range(c0, c1):
                a = np.int64(img[r, c])
                b = np.int64(img[r + 1, c])
                if a >= 1 and b >= 1 and abs(a - b) < delta:
                    f = np.float32(a) * alpha + np.float32(b) * one_minus_alpha
                    img[r, c] = np.int64(f + np.float32(0.5))


@_jit
def _k_fill_left(img):  # type: ignore[no-untyped-def]
    h, w = img.shape
    for r in range(h):
        for c in range(1, w):
            if img[r, c] == 0.0:
                img[r, c] = img[r, c - 1]


@_jit
def _k_fill_around(img, farthest):  # type: ignore[no-untyped-def]
    # In place and in scan order, like librealsense: a pixel filled earlier feeds later ones.
    # Rows 1..H−2, columns 1..W−1; candidates are up, up-left, left, down-left, down. "farthest"
    # takes the largest; "nearest" starts from up (even when up is empty) and takes any smaller
    # valid one.
    h, w = img.shape
    for r in range(1, h - 1):
        for c in range(1, w):
            if img[r, c] == 0.0:
                t = img[r - 1, c]
                for q in (img[r - 1, c - 1], img[r, c - 1], img[r + 1, c - 1], img[r + 1, c]):
                    if farthest:
                        if q > t:
                            t = q
                    elif q != 0.0 and q < t:
                        t = q
                img[r, c] = t


@_jit
def _k_to_disparity(z16, factor, out):  # type: ignore[no-untyped-def]
    h, w = z16.shape
    for r in range(h):
        for c in range(w):
            z = z16[r, c]
            out[r, c] = factor / np.float32(z) if z != 0 else np.float32(0.0)


@_jit
def _k_to_depth(disp, factor, scale, out):  # type: ignore[no-untyped-def]
    # isnormal(d): non-zero, finite, not subnormal; negative disparity wraps in librealsense, here 0.
    h, w = disp.shape
    tiny = np.float32(1.1754944e-38)
    for r in range(h):
        for c in range(w):
            d = disp[r, c]
            z = 0.0
            if d >= tiny and d < np.inf:
                q = np.int64(factor / d + np.float32(0.5))
                z = np.float32(q if q < _Z16_MAX else _Z16_MAX) * scale
            out[r, c] = z


# --------------------------------------------------------------------------------------------
# boundary helpers
# --------------------------------------------------------------------------------------------


def _depth(name: str, value: Any) -> np.ndarray:
    """(H, W) float32 C-contiguous (a copy only when needed); the kernels read NaN and ≤ 0 as invalid."""
    d = v.image(name, value, kinds="fui")
    if d.dtype != np.float32 or not d.flags.c_contiguous:
        d = np.ascontiguousarray(d, dtype=np.float32)
    return d


def _scale(depth_scale: Any) -> np.float32:
    return np.float32(v.number("depth_scale", depth_scale, positive=True))


def _domain(domain: Any) -> str:
    if domain not in _DOMAINS:
        raise InputError(f"domain: expected one of {', '.join(_DOMAINS)}, got {domain!r}")
    return str(domain)


def _to_z16(depth: np.ndarray, scale: np.float32) -> np.ndarray:
    out = np.empty(depth.shape, dtype=np.uint16)
    _k_quantize(depth, np.float64(1.0) / np.float64(scale), out)
    return out


def _from_z16(z16: np.ndarray, scale: np.float32) -> np.ndarray:
    out = np.empty(z16.shape, dtype=np.float32)
    _k_dequantize(z16, scale, out)
    return out


def _alpha(name: str, value: Any, low: float) -> tuple[np.float32, np.float32]:
    a = np.float32(v.number(name, value, low=low, high=1.0))
    return a, np.float32(1.0) - a


def _hole_mode(mode: Any) -> int:
    if isinstance(mode, str) and mode in HOLE_FILL_MODES:
        return HOLE_FILL_MODES[mode]
    if isinstance(mode, (int, np.integer)) and not isinstance(mode, bool) and int(mode) in HOLE_FILL_MODES.values():
        return int(mode)
    names = ", ".join(f"{k} ({n})" for k, n in HOLE_FILL_MODES.items())
    raise InputError(f"hole filling mode: expected one of {names}, got {mode!r}")


# --------------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------------


def threshold(depth: np.ndarray, *, min_m: float = 0.0, max_m: float = math.inf) -> np.ndarray:
    """Depth outside [min_m, max_m] set to 0, as ``rs.threshold_filter`` does.

    depth: (H, W) float metres (0/NaN invalid). min_m, max_m: metres, inclusive, compared in
    float32 as librealsense compares ``depth_units · z16``. Returns a new (H, W) float32 array.
    """
    d = _depth("depth", depth)
    lo = v.number("min_m", min_m, nonnegative=True)
    hi = v.number("max_m", max_m, nonnegative=True, allow_inf=True)
    if lo > hi:
        raise InputError(f"threshold: min_m {lo} exceeds max_m {hi}")
    out = np.empty_like(d)
    _k_threshold(d, np.float32(lo), np.float32(hi), out)
    return out


def _decimated_intrinsics(intr: Intrinsics, s: int, width: int, height: int) -> Intrinsics:
    return replace(
        intr, fx=intr.fx / s, fy=intr.fy / s, skew=intr.skew / s,
        cx=(intr.cx + 0.5) / s - 0.5, cy=(intr.cy + 0.5) / s - 0.5, width=width, height=height,
    )


def _decimated_size(shape: tuple[int, ...], s: int) -> tuple[int, int]:
    """librealsense's output size: (H//s, W//s) rounded up to multiples of 4."""
    return (shape[0] // s + 3) // 4 * 4, (shape[1] // s + 3) // 4 * 4


def decimate(
    depth: np.ndarray, intrinsics: Intrinsics, magnitude: int, *, depth_scale: float = 0.001
) -> tuple[np.ndarray, Intrinsics]:
    """Shrink depth by ``magnitude`` as ``rs.decimation_filter`` does.

    depth: (H, W) float metres (0/NaN invalid); intrinsics: of ``depth``; magnitude: 1..8.
    Each magnitude × magnitude block gives one pixel: for magnitude 2–3 the median of its valid
    samples (the lower one of the middle two when their count is even), otherwise their integer
    mean in z16 units of ``depth_scale`` metres, rounded down; 0 when no sample is valid.
    The output is (⌈(H//m)/4⌉·4, ⌈(W//m)/4⌉·4) float32 — librealsense pads to a multiple of 4
    with zeros and drops the remainder rows/columns of the input. Returns (depth, intrinsics of
    it): fx/m, fy/m, cx' = (cx + 0.5)/m − 0.5 (see the module docstring).
    """
    d = _depth("depth", depth)
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    if d.shape != intrinsics.shape:
        raise InputError(
            f"depth: its size {d.shape[1]}x{d.shape[0]} does not match the intrinsics "
            f"{intrinsics.width}x{intrinsics.height}"
        )
    s = v.integer("decimation magnitude", magnitude, low=1, high=8)
    scale = _scale(depth_scale)
    if d.shape[0] < s or d.shape[1] < s:
        raise InputError(f"depth: {d.shape[1]}x{d.shape[0]} is smaller than one {s}x{s} decimation block")
    return _decimate(d, intrinsics, s, scale)


def _decimate(d: np.ndarray, intr: Intrinsics, s: int, scale: np.float32) -> tuple[np.ndarray, Intrinsics]:
    ph, pw = _decimated_size(d.shape, s)
    out = np.zeros((ph, pw), dtype=np.float32)
    if s == 2:
        _k_decimate_median2(d, out)
    elif s == 3:
        _k_decimate_median(d, s, out)
    else:
        _k_decimate_mean(_to_z16(d, scale), s, scale, out)
    return out, _decimated_intrinsics(intr, s, pw, ph)


def _decimate_color(color: np.ndarray, s: int) -> np.ndarray:
    ph, pw = _decimated_size(color.shape, s)
    out = np.zeros((ph, pw, 3), dtype=np.uint8)
    _k_decimate_color(np.ascontiguousarray(color), s, out)
    return out


def _persistence_lut(mode: int) -> np.ndarray:
    """For each 8-frame history byte, the bit per frame phase saying "credible enough to fill".

    Bit k of the history is frame k of the 8-frame cycle; at phase p the previous frame is bit
    p − 1. Mode → (frames looked back at, valid frames needed): 1 (8, 8), 2 (3, 2), 3 (4, 2),
    4 (8, 2), 5 (2, 1), 6 (5, 1), 7 (8, 1), 8 always, 0 never.
    """
    rule = {1: (8, 8), 2: (3, 2), 3: (4, 2), 4: (8, 2), 5: (2, 1), 6: (5, 1), 7: (8, 1)}
    lut = np.zeros(256, dtype=np.uint8)
    for hist in range(256):
        for phase in range(8):
            if mode == 8:
                ok = True
            elif mode in rule:
                back, need = rule[mode]
                valid = sum((hist >> ((phase - 1 - k) % 8)) & 1 for k in range(back))
                ok = valid >= need
            else:
                ok = False
            if ok:
                lut[hist] |= 1 << phase
    return lut


class TemporalFilter:
    """librealsense's temporal filter: an edge-aware running average with persistence fill.

    alpha: 0..1, the weight of the new value (1 = no smoothing). delta: 1..100, a pixel is
    averaged only when it moved less than delta (z16 units in the depth domain, 1/32-pixel
    disparity units in the disparity domain) since the last frame; otherwise it restarts there.
    persistence: 0..8, librealsense's "persistency index" — when a pixel is invalid, the last
    valid value is used if the pixel was valid often enough lately: 0 never, 1 in 8 of the last
    8 frames, 2 in 2 of the last 3, 3 in 2 of the last 4, 4 in 2 of 8, 5 in 1 of 2, 6 in 1 of 5,
    7 in 1 of 8, 8 always. domain: "depth" (apply takes metres) or "disparity" (apply takes the
    float32 disparity of :func:`depth_to_disparity`). State resets when the image size changes.
    """

    def __init__(
        self,
        alpha: float = 0.4,
        delta: int = 20,
        persistence: int = 3,
        *,
        domain: str = "depth",
        depth_scale: float = 0.001,
    ) -> None:
        self.alpha, self._one_minus_alpha = _alpha("temporal alpha", alpha, 0.0)
        self.delta = v.integer("temporal delta", delta, low=1, high=100)
        self.persistence = v.integer("temporal persistence", persistence, low=0, high=8)
        self.domain = _domain(domain)
        self.depth_scale = _scale(depth_scale)
        self._lut = _persistence_lut(self.persistence)
        self._last: np.ndarray | None = None
        self._history = np.zeros((0, 0), dtype=np.uint8)
        self._index = 0

    def reset(self) -> None:
        """Forget every earlier frame."""
        self._last = None
        self._index = 0

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Filter the next frame: (H, W) float32 depth metres or disparity (see ``domain``);
        0 and NaN are invalid.

        Returns a new (H, W) float32 array; the input is not modified.
        """
        if self.domain == "depth":
            d = _depth("depth", image)
            out = _from_z16(self._step(_to_z16(d, self.depth_scale)), self.depth_scale)
            return out
        disp = _depth("disparity", image)
        return self._step(np.nan_to_num(disp, nan=0.0, posinf=0.0, neginf=0.0))

    def _step(self, frame: np.ndarray) -> np.ndarray:
        if self._last is None or self._last.shape != frame.shape or self._last.dtype != frame.dtype:
            self._last = np.zeros_like(frame)
            self._history = np.zeros(frame.shape, dtype=np.uint8)
        _k_temporal(
            frame, self._last, self._history, self.alpha, self._one_minus_alpha,
            np.float32(self.delta), self._lut, self._index,
        )
        self._index = (self._index + 1) % 8
        return frame


def _spatial_radius(holes_fill: int) -> int:
    return {0: 0, 1: 2, 2: 4, 3: 8, 4: 16, 5: 255}[holes_fill]


def spatial(
    image: np.ndarray,
    *,
    alpha: float = 0.5,
    delta: int = 20,
    magnitude: int = 2,
    holes_fill: int = 0,
    domain: str = "depth",
    depth_scale: float = 0.001,
) -> np.ndarray:
    """librealsense's spatial filter: a recursive, edge-preserving domain-transform smoother.

    image: (H, W) float32 depth metres (``domain="depth"``) or the float32 disparity of
    :func:`depth_to_disparity` (``domain="disparity"``, librealsense's usual chain).
    alpha: 0.25..1, weight of the current pixel. delta: 1..50, neighbours closer than this are
    averaged (z16 units for depth, 1/32-pixel units for disparity). magnitude: 1..5 iterations,
    each a horizontal (left→right, right→left) then a vertical pass. holes_fill: 0..5, fill
    horizontal holes up to 2, 4, 8, 16 or unlimited (255) pixels from each side (0 = off).
    In the depth domain the arithmetic is librealsense's integer variant (rounded to z16 units).
    Returns a new (H, W) float32 array.
    """
    a, one_minus = _alpha("spatial alpha", alpha, 0.25)
    dz = v.integer("spatial delta", delta, low=1, high=50)
    iters = v.integer("spatial magnitude", magnitude, low=1, high=5)
    hf = v.integer("spatial holes_fill", holes_fill, low=0, high=5)
    dom = _domain(domain)
    radius = _spatial_radius(hf)
    if dom == "depth":
        scale = _scale(depth_scale)
        z = _to_z16(_depth("depth", image), scale)
        _spatial_z16(z, a, one_minus, dz, iters, radius)
        return _from_z16(z, scale)
    img = _depth("disparity", image).copy()
    _spatial_fp(img, a, one_minus, dz, iters, radius)
    return img


def _spatial_z16(z: np.ndarray, a: np.float32, one_minus: np.float32, dz: int, iters: int, radius: int) -> None:
    if z.shape[1] >= 2:
        for _ in range(iters):
            _k_spatial_z16_rows(z, a, one_minus, dz, radius)
            _k_spatial_z16_cols(z, a, one_minus, dz)
    elif z.shape[0] >= 2:
        for _ in range(iters):
            _k_spatial_z16_cols(z, a, one_minus, dz)


def _spatial_fp(img: np.ndarray, a: np.float32, one_minus: np.float32, dz: int, iters: int, radius: int) -> None:
    delta = np.float32(dz)
    for _ in range(iters):
        _k_spatial_fp_rows(img, a, one_minus, delta)
        _k_spatial_fp_cols(img, a, one_minus, delta)
    if radius:
        _k_spatial_fp_holes(img, radius)


def fill_holes(depth: np.ndarray, mode: str | int) -> np.ndarray:
    """Fill invalid (0/NaN) pixels as ``rs.hole_filling_filter`` does.

    depth: (H, W) float metres. mode: ``"fill_from_left"`` (0) — each hole takes the value to its
    left, along the row; ``"farthest"`` (1) — the largest of up, up-left, left, down-left, down;
    ``"nearest"`` (2) — the smallest valid one of those, starting from up (a hole with an invalid
    pixel above stays). The two "around" modes skip the first and last rows and the first column,
    and run in place in scan order. Returns a new (H, W) float32 array.
    """
    m = _hole_mode(mode)
    d = _depth("depth", depth)
    out = np.where(d > 0, d, np.float32(0.0)) if np.isnan(d).any() or (d < 0).any() else d.copy()
    if m == 0:
        _k_fill_left(out)
    else:
        _k_fill_around(out, m == 1)
    return out


def disparity_factor(focal_px: float, baseline_m: float, *, depth_scale: float = 0.001) -> np.float32:
    """librealsense's depth↔disparity factor F = baseline · fx · 32 / depth_units, in float32.

    Evaluated as librealsense does: baseline_m = float32(baseline_mm) · 0.001f, then
    ((baseline_m · fx) · 32) / depth_units, every step rounded to float32. Disparity = F / z16.
    """
    fx = np.float32(v.number("focal_px", focal_px, positive=True))
    b_mm = np.float32(v.number("baseline_m", baseline_m, positive=True) * 1000.0)
    du = _scale(depth_scale)
    b_m = np.float32(b_mm * np.float32(0.001))
    return np.float32(np.float32(np.float32(b_m * fx) * np.float32(32.0)) / du)


def depth_to_disparity(
    depth: np.ndarray, *, focal_px: float, baseline_m: float, depth_scale: float = 0.001
) -> np.ndarray:
    """Depth to librealsense disparity, as ``rs.disparity_transform(True)`` computes it.

    depth: (H, W) float metres, quantised to z16 units of ``depth_scale``; focal_px: fx of this
    image; baseline_m: stereo baseline. Returns (H, W) float32 disparity in 1/32 pixel,
    F / z16 with F from :func:`disparity_factor`; invalid → 0.
    """
    factor = disparity_factor(focal_px, baseline_m, depth_scale=depth_scale)
    z = _to_z16(_depth("depth", depth), _scale(depth_scale))
    out = np.empty(z.shape, dtype=np.float32)
    _k_to_disparity(z, factor, out)
    return out


def disparity_to_depth(
    disparity: np.ndarray, *, focal_px: float, baseline_m: float, depth_scale: float = 0.001
) -> np.ndarray:
    """librealsense disparity back to depth, as ``rs.disparity_transform(False)`` computes it.

    disparity: (H, W) float32 in 1/32 pixel (0, negative, subnormal or non-finite = invalid).
    Returns (H, W) float32 metres: z16 = ⌊F / disparity + 0.5⌋ (capped at 65535) times depth_scale.
    """
    factor = disparity_factor(focal_px, baseline_m, depth_scale=depth_scale)
    scale = _scale(depth_scale)
    disp = _depth("disparity", disparity)
    out = np.empty(disp.shape, dtype=np.float32)
    _k_to_depth(disp, factor, scale, out)
    return out


# --------------------------------------------------------------------------------------------
# the chain
# --------------------------------------------------------------------------------------------


@dataclass
class _State:
    image: np.ndarray  # depth metres, or disparity when ``disparity``
    intrinsics: Intrinsics
    color: np.ndarray | None
    disparity: bool = False
    factor: np.float32 = field(default_factory=lambda: np.float32(0.0))
    step: int = 0  # index of the running step: stateful steps keep their state per position


@dataclass(frozen=True)
class Threshold:
    """Chain step: :func:`threshold` (depth domain)."""

    min_m: float = 0.0
    max_m: float = math.inf

    def __post_init__(self) -> None:
        lo = v.number("min_depth_m", self.min_m, nonnegative=True)
        hi = v.number("max_depth_m", self.max_m, positive=True, allow_inf=True)
        if lo > hi:
            raise InputError(f"threshold: min_depth_m {lo} exceeds max_depth_m {hi}")

    def _run(self, st: _State, chain: FilterChain) -> None:
        out = np.empty_like(st.image)
        _k_threshold(st.image, np.float32(self.min_m), np.float32(self.max_m), out)
        st.image = out


@dataclass(frozen=True)
class Decimation:
    """Chain step: :func:`decimate` (depth domain); colour is block-averaged the same way
    (integer mean of each magnitude × magnitude block, padded with black)."""

    magnitude: int = 2

    def __post_init__(self) -> None:
        v.integer("decimation magnitude", self.magnitude, low=1, high=8)

    def _run(self, st: _State, chain: FilterChain) -> None:
        s = self.magnitude
        if st.image.shape[0] < s or st.image.shape[1] < s:
            raise InputError(
                f"depth: {st.image.shape[1]}x{st.image.shape[0]} is smaller than one {s}x{s} decimation block"
            )
        st.image, st.intrinsics = _decimate(st.image, st.intrinsics, s, chain.depth_scale)
        if st.color is not None:
            st.color = _decimate_color(st.color, s)


@dataclass(frozen=True)
class DisparityTransform:
    """Chain step: depth → disparity (``to_disparity=True``) or back, with the chain's baseline."""

    to_disparity: bool = True

    def _run(self, st: _State, chain: FilterChain) -> None:
        if chain.baseline_m is None:  # checked when the chain is built; kept for direct use
            raise InputError("disparity transform: the chain needs baseline_m")
        if self.to_disparity:
            st.factor = disparity_factor(st.intrinsics.fx, chain.baseline_m, depth_scale=float(chain.depth_scale))
            out = np.empty(st.image.shape, dtype=np.float32)
            _k_to_disparity(_to_z16(st.image, chain.depth_scale), st.factor, out)
        else:
            out = np.empty(st.image.shape, dtype=np.float32)
            _k_to_depth(st.image, st.factor, chain.depth_scale, out)
        st.image, st.disparity = out, self.to_disparity


@dataclass(frozen=True)
class Spatial:
    """Chain step: :func:`spatial` in the domain the chain is in at this step."""

    alpha: float = 0.5
    delta: int = 20
    magnitude: int = 2
    holes_fill: int = 0

    def __post_init__(self) -> None:
        _alpha("spatial alpha", self.alpha, 0.25)
        v.integer("spatial delta", self.delta, low=1, high=50)
        v.integer("spatial magnitude", self.magnitude, low=1, high=5)
        v.integer("spatial holes_fill", self.holes_fill, low=0, high=5)

    def _run(self, st: _State, chain: FilterChain) -> None:
        a, one_minus = _alpha("spatial alpha", self.alpha, 0.25)
        radius = _spatial_radius(self.holes_fill)
        if st.disparity:
            st.image = st.image.copy()
            _spatial_fp(st.image, a, one_minus, self.delta, self.magnitude, radius)
        else:
            z = _to_z16(st.image, chain.depth_scale)
            _spatial_z16(z, a, one_minus, self.delta, self.magnitude, radius)
            st.image = _from_z16(z, chain.depth_scale)


@dataclass(frozen=True)
class Temporal:
    """Chain step: a :class:`TemporalFilter` (its state lives in the chain) in the chain's domain."""

    alpha: float = 0.4
    delta: int = 20
    persistence: int = 3

    def __post_init__(self) -> None:
        TemporalFilter(self.alpha, self.delta, self.persistence)

    def _run(self, st: _State, chain: FilterChain) -> None:
        domain = "disparity" if st.disparity else "depth"
        filt = chain._temporal.get(st.step)
        if filt is None or filt.domain != domain:
            filt = TemporalFilter(self.alpha, self.delta, self.persistence, domain=domain,
                                  depth_scale=float(chain.depth_scale))
            chain._temporal[st.step] = filt
        if st.disparity:
            st.image = filt._step(st.image.copy())
        else:
            st.image = _from_z16(filt._step(_to_z16(st.image, chain.depth_scale)), chain.depth_scale)


@dataclass(frozen=True)
class HoleFilling:
    """Chain step: :func:`fill_holes` (depth domain)."""

    mode: str | int = "farthest"

    def __post_init__(self) -> None:
        _hole_mode(self.mode)

    def _run(self, st: _State, chain: FilterChain) -> None:
        st.image = fill_holes(st.image, self.mode)


_Step = Threshold | Decimation | DisparityTransform | Spatial | Temporal | HoleFilling
_DEPTH_ONLY = (Threshold, Decimation, HoleFilling)


class FilterChain:
    """An ordered list of filter steps applied to each :class:`~depthcloud.frame.Frame`.

    steps: Threshold, Decimation, DisparityTransform, Spatial, Temporal, HoleFilling, in order.
    Threshold, Decimation and HoleFilling take depth; Spatial and Temporal run in whichever
    domain the chain is in; a chain must end in depth. baseline_m: needed by DisparityTransform;
    depth_scale: metres per z16 unit where librealsense's arithmetic is on z16 values.
    Decimation returns the intrinsics of the smaller image and block-averages the colour to the
    same size; every other step keeps both. Temporal state persists across ``apply`` calls until
    :meth:`reset`.
    """

    def __init__(
        self, steps: Sequence[_Step] = (), *, baseline_m: float | None = None, depth_scale: float = 0.001
    ) -> None:
        self.steps = tuple(steps)
        self.depth_scale = _scale(depth_scale)
        self.baseline_m = None if baseline_m is None else v.number("baseline_m", baseline_m, positive=True)
        disparity = False
        for i, step in enumerate(self.steps):
            if not isinstance(step, (Threshold, Decimation, DisparityTransform, Spatial, Temporal, HoleFilling)):
                raise InputError(f"steps[{i}]: expected a filter step, got {type(step).__name__}")
            if isinstance(step, DisparityTransform):
                if self.baseline_m is None:
                    raise InputError(f"steps[{i}]: a disparity transform needs baseline_m")
                if step.to_disparity == disparity:
                    raise InputError(f"steps[{i}]: the chain is already in the {'disparity' if disparity else 'depth'} domain")
                disparity = step.to_disparity
            elif disparity and isinstance(step, _DEPTH_ONLY):
                raise InputError(f"steps[{i}]: {type(step).__name__} takes depth, but the chain is in disparity here")
        if disparity:
            raise InputError("steps: the chain ends in disparity; add DisparityTransform(to_disparity=False)")
        self._temporal: dict[int, TemporalFilter] = {}

    def __repr__(self) -> str:
        return f"FilterChain({list(self.steps)!r}, baseline_m={self.baseline_m}, depth_scale={float(self.depth_scale)})"

    def __len__(self) -> int:
        return len(self.steps)

    def reset(self) -> None:
        """Forget the temporal filters' history (call it when the stream restarts or jumps)."""
        self._temporal.clear()

    def apply(self, frame: Frame) -> Frame:
        """The filtered frame: new depth, the intrinsics that match it, colour resized with it."""
        if not isinstance(frame, Frame):
            raise InputError(f"frame: expected a Frame, got {type(frame).__name__}")
        if not self.steps:
            return frame
        st = _State(frame.depth, frame.intrinsics, frame.color)
        for i, step in enumerate(self.steps):
            st.step = i
            step._run(st, self)
        return replace(frame, depth=st.image, intrinsics=st.intrinsics, color=st.color)

    @classmethod
    def from_options(
        cls,
        *,
        decimation: int = 1,
        temporal: bool = False,
        spatial: bool = False,
        min_depth_m: float = 0.0,
        max_depth_m: float = math.inf,
        holes: str | int | None = None,
        baseline_m: float | None = None,
        depth_scale: float = 0.001,
    ) -> FilterChain:
        """The chain the CLI flags describe, in librealsense's recommended order:
        decimation → threshold → [depth→disparity] → spatial → temporal → [disparity→depth] → holes.

        decimation: magnitude 1..8 (1 = off); min_depth_m/max_depth_m: threshold in metres (0 and
        inf = off); temporal/spatial: librealsense's defaults; holes: a hole-filling mode or None.
        With ``baseline_m`` spatial and temporal run on disparity, as librealsense's viewer does;
        without it, on depth (their delta then counts z16 units).
        """
        return cls._build(
            {"decimation": decimation, "min_depth_m": min_depth_m, "max_depth_m": max_depth_m,
             "spatial": spatial, "temporal": temporal, "holes": holes},
            baseline_m=baseline_m, depth_scale=depth_scale,
        )

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any]) -> FilterChain:
        """From a config file section; every key is optional::

            decimation: 2                  # magnitude 1..8
            min_depth_m: 0.2
            max_depth_m: 4.0
            spatial: {alpha: 0.5, delta: 20, magnitude: 2, holes_fill: 0}   # or true / false
            temporal: {alpha: 0.4, delta: 20, persistence: 3}              # or true / false
            holes: nearest                 # fill_from_left | farthest | nearest | null
            baseline_m: 0.05               # spatial and temporal on disparity
            depth_scale: 0.001

        A wrong key or value raises :class:`ConfigError` naming the key and the value.
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"filters: expected a mapping, got {type(mapping).__name__}")
        known = ("decimation", "min_depth_m", "max_depth_m", "spatial", "temporal", "holes", "baseline_m", "depth_scale")
        for key in mapping:
            if key not in known:
                raise ConfigError(f"unknown filter setting (known: {', '.join(known)})", key=str(key))
        opts = dict(mapping)
        try:
            baseline = opts.pop("baseline_m", None)
            scale = opts.pop("depth_scale", 0.001)
            if baseline is not None:
                v.number("baseline_m", baseline, positive=True)
            _scale(scale)
        except InputError as exc:
            key = "baseline_m" if "baseline_m" in exc.message else "depth_scale"
            raise ConfigError(f"{exc.message}", key=key) from exc
        return cls._build(opts, baseline_m=baseline, depth_scale=scale, config=True)

    @classmethod
    def _build(
        cls, opts: Mapping[str, Any], *, baseline_m: Any, depth_scale: Any, config: bool = False
    ) -> FilterChain:
        steps: list[_Step] = []
        disparity_steps: list[_Step] = []
        lo, hi = 0.0, math.inf
        for key, value in opts.items():
            try:
                if key == "decimation":
                    mag = v.integer("decimation magnitude", value, low=1, high=8)
                    if mag > 1:
                        steps.insert(0, Decimation(mag))
                elif key == "min_depth_m":
                    lo = v.number("min_depth_m", value, nonnegative=True)
                elif key == "max_depth_m":
                    hi = v.number("max_depth_m", value, positive=True, allow_inf=True)
                elif key in ("spatial", "temporal"):
                    step = _optional_step(key, value)
                    if step is not None:
                        disparity_steps.append(step)
                elif key == "holes" and value is not None:
                    _hole_mode(value)
            except (InputError, TypeError) as exc:
                if not config:
                    raise
                msg = exc.message if isinstance(exc, InputError) else str(exc)
                raise ConfigError(f"{msg} (value {value!r})", key=key) from exc
        if lo > hi:
            exc_cls = ConfigError if config else InputError
            raise exc_cls(f"min_depth_m {lo} exceeds max_depth_m {hi}")
        if lo > 0 or hi < math.inf:
            steps.append(Threshold(lo, hi))
        disparity_steps.sort(key=lambda s: 0 if isinstance(s, Spatial) else 1)
        if disparity_steps and baseline_m is not None:
            steps += [DisparityTransform(True), *disparity_steps, DisparityTransform(False)]
        else:
            steps += disparity_steps
        if opts.get("holes") is not None:
            steps.append(HoleFilling(opts["holes"]))
        return cls(steps, baseline_m=baseline_m, depth_scale=depth_scale)


def _optional_step(key: str, value: Any) -> Spatial | Temporal | None:
    """``true``/``false`` or a mapping of the step's options."""
    cls: type[Spatial] | type[Temporal] = Spatial if key == "spatial" else Temporal
    if value is None or isinstance(value, bool):
        return cls() if value else None
    if isinstance(value, Mapping):
        allowed = ("alpha", "delta", "magnitude", "holes_fill") if key == "spatial" else ("alpha", "delta", "persistence")
        unknown = sorted(set(map(str, value)) - set(allowed))
        if unknown:
            raise InputError(f"{key}: unknown option(s) {', '.join(unknown)} (known: {', '.join(allowed)})")
        return cls(**value)
    raise InputError(f"{key}: expected true, false or a mapping of options, got {value!r}")
