"""Depth and disparity to 3D points: the hot path of depthcloud.

Convention: the OpenCV optical frame (x right, y down, z forward, metres); pixel (u, v) centres at
integer coordinates, u the column. A pixel with depth z and ray (x̂, ŷ) (the normalised, undistorted
image coordinates of its centre) becomes (x̂·z, ŷ·z, z).

``Unprojector`` caches the rays of one ``Intrinsics`` — two 1-D tables when the camera is an ideal
pinhole (x̂ depends on u only, ŷ on v only), a full (H, W, 2) table when it has distortion or skew —
and runs a compiled two-pass kernel (count valid pixels per row, then write) that emits only valid
points and their colours, in row-major pixel order, in parallel over rows. Without numba the same
arithmetic runs in numpy.

This module must not import sources, the server or the CLI.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud._jit import HAVE_NUMBA
from depthcloud.camera import Intrinsics
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError

__all__ = [
    "HAVE_NUMBA",
    "Unprojector",
    "depth_to_points",
    "disparity_to_depth",
    "reproject_with_q",
]

_F32_MAX = float(np.finfo(np.float32).max)
# Rows go to the threads in this many blocks of consecutive rows: a few per core, so that a
# block that meets a busy core does not hold the whole call up.
_WRITE_CHUNKS = 8
_NO_RAYS = np.empty((0, 0, 2), np.float32)
_NO_COLOR = np.empty((0, 0, 3), np.uint8)
_NO_RGB = np.empty(0, np.uint8)

if HAVE_NUMBA:
    from numba import njit, prange, uint32, uint64

    from depthcloud._jit import spill_safe_rows, store3_spill


def disparity_to_depth(
    disparity: np.ndarray, focal_px: float, baseline_m: float, *, doffs_px: float = 0.0
) -> np.ndarray:
    """Metric depth from a rectified disparity map.

    disparity: (H, W) float or integer, pixels; 0, negative or non-finite = invalid.
    focal_px: rectified focal length in pixels; baseline_m: metres; doffs_px: cx_right − cx_left.
    Returns (H, W) float32 metres, Z = focal_px·baseline_m / (disparity + doffs_px); invalid → 0.
    """
    d = v.image("disparity", disparity)
    f = v.number("focal_px", focal_px, positive=True)
    b = v.number("baseline_m", baseline_m, positive=True)
    doffs = v.number("doffs_px", doffs_px)
    d64 = d.astype(np.float64, copy=False)
    denom = d64 + doffs
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (f * b) / denom
    valid = np.isfinite(d64) & (d64 > 0) & (denom > 0) & np.isfinite(z)
    return np.where(valid, z, 0.0).astype(np.float32)


if HAVE_NUMBA:

    # One serial pass (a parallel region costs more to start than this pass takes): where each row's
    # points start (offsets[r]) and how many there are in all (offsets[h]). The keep test is the
    # writers' one compare on the float's bits, which vectorises on every target (SSE2 included).
    @njit(cache=True, nogil=True, boundscheck=False)
    def _count_kept(bits, lo, span, offsets):  # type: ignore[no-untyped-def]
        h, w = bits.shape
        total = 0
        for r in range(h):
            offsets[r] = total
            c = 0
            for u in range(w):
                c += uint32(bits[r, u] - lo) <= span
            total += c
        offsets[h] = total
        return total

    def _make_writer(table: bool, rgb: bool):  # type: ignore[no-untyped-def]
        """A writer of kept points, compiled for rays from a table or separable, with or without colour.

        Each chunk of consecutive rows goes to one thread. Branch-free: every pixel writes its point
        at a cursor k that only kept pixels advance, with one spilling 4-lane store (see
        depthcloud._jit.store3_spill); from the chunk's last rows on (spill_safe_rows) the last point
        is stored exactly, so nothing lands in the next chunk's run or past the end. Kept: the
        float's bits minus lo, as uint32, ≤ span — the same test as z > 0 and zmin ≤ z ≤ zmax (NaN
        and negatives fail it) in one compare. ``table`` and ``rgb`` are compile-time constants:
        one kernel each, no per-pixel test of them.
        """

        @njit(parallel=True, cache=True, nogil=True, boundscheck=False)
        def write(depth, bits, lo, span, xr, yr, rays, color, offsets, flat, flat_rgb, chunks):  # type: ignore[no-untyped-def]
            h, w = depth.shape
            rows = (h + chunks - 1) // chunks
            for c in prange(chunks):
                r0 = min(h, c * rows)
                r1 = min(h, r0 + rows)
                k = uint64(3 * offsets[r0])
                end = uint64(3 * offsets[r1])
                rs = spill_safe_rows(offsets, r0, r1)
                for r in range(r0, r1):
                    y = np.float32(0.0) if table else yr[r]
                    for u in range(w):
                        if r >= rs and k == end:
                            break
                        z = depth[r, u]
                        if table:
                            px = rays[r, u, 0] * z
                            py = rays[r, u, 1] * z
                        else:
                            px = xr[u] * z
                            py = y * z
                        if r < rs or k + uint64(3) < end:
                            store3_spill(flat, k, px, py, z)  # type: ignore[call-arg]
                            if rgb:
                                store3_spill(flat_rgb, k, color[r, u, 0], color[r, u, 1], color[r, u, 2])  # type: ignore[call-arg]
                        else:
                            flat[k] = px
                            flat[k + uint64(1)] = py
                            flat[k + uint64(2)] = z
                            if rgb:
                                flat_rgb[k] = color[r, u, 0]
                                flat_rgb[k + uint64(1)] = color[r, u, 1]
                                flat_rgb[k + uint64(2)] = color[r, u, 2]
                        k += uint64(3) * uint64(uint32(bits[r, u] - lo) <= span)

        return write

    _WRITERS = {(t, c): _make_writer(t, c) for t in (False, True) for c in (False, True)}


def _kept_bits(zmin: np.float32, zmax: np.float32) -> tuple[np.uint32, np.uint32]:
    """(lo, span) such that z is kept iff uint32(bits(z) − lo) ≤ span, for 0 ≤ zmin ≤ zmax ≤ FLT_MAX.

    Positive floats order as their bit patterns; z > 0 is z ≥ the smallest subnormal.
    """
    low = zmin if zmin > 0 else np.float32(np.finfo(np.float32).smallest_subnormal)
    lo, hi = np.array([low, zmax], np.float32).view(np.uint32)
    return np.uint32(lo), np.uint32(hi - lo)


def _pixel_rays(intr: Intrinsics) -> np.ndarray:
    """(H, W, 2) float64 normalised undistorted coordinates of every pixel centre."""
    u, vv = np.meshgrid(np.arange(intr.width, dtype=np.float64), np.arange(intr.height, dtype=np.float64))
    if not intr.is_distorted:
        y = (vv - intr.cy) / intr.fy
        x = (u - intr.cx - intr.skew * y) / intr.fx
        return np.stack([x, y], axis=-1)
    import cv2

    pix = np.stack([u.ravel(), vv.ravel()], axis=-1).reshape(-1, 1, 2)
    # Iterate the inverse well past OpenCV's default of 5 so strong lens distortion converges.
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    if intr.model == "fisheye":
        und = cv2.fisheye.undistortPoints(pix, intr.K, intr.dist_array, criteria=crit)
    else:
        und = cv2.undistortPoints(pix, intr.K, intr.dist_array, R=None, P=None, criteria=crit)
    return und.reshape(intr.height, intr.width, 2)


class Unprojector:
    """Depth images of one camera to point clouds, with the rays computed once.

    intrinsics: the camera of the depth images this unprojector takes (sizes must match).
    undistort: use distortion-aware rays when the intrinsics carry distortion (else plain pinhole).
    """

    def __init__(self, intrinsics: Intrinsics, *, undistort: bool = True) -> None:
        if not isinstance(intrinsics, Intrinsics):
            raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
        self.intrinsics = intrinsics
        intr = intrinsics if undistort else intrinsics.undistorted()
        self._separable = not intr.is_distorted and intr.skew == 0.0
        if self._separable:
            # Rays in float64, rounded once: a float32 cx would cost ~1e-5 px near the centre column.
            self._xr = ((np.arange(intr.width) - intr.cx) / intr.fx).astype(np.float32)
            self._yr = ((np.arange(intr.height) - intr.cy) / intr.fy).astype(np.float32)
            self._rays: np.ndarray | None = None
        else:
            self._rays = np.ascontiguousarray(_pixel_rays(intr), dtype=np.float32)
            self._xr = self._yr = np.empty(0, np.float32)

    @property
    def rays(self) -> np.ndarray:
        """(H, W, 2) float32 normalised ray coordinates (x̂, ŷ) per pixel."""
        if self._rays is not None:
            return self._rays
        return np.stack(np.broadcast_arrays(self._xr[None, :], self._yr[:, None]), axis=-1)

    def _check(self, depth: Any, color: Any) -> tuple[np.ndarray, np.ndarray | None]:
        d = v.image("depth", depth, kinds="f")
        if d.shape != self.intrinsics.shape:
            raise InputError(
                f"depth: its size {d.shape[1]}x{d.shape[0]} does not match the intrinsics "
                f"{self.intrinsics.width}x{self.intrinsics.height}"
            )
        d = np.ascontiguousarray(d, dtype=np.float32)
        c = None if color is None else np.ascontiguousarray(v.color_image("color", color, d.shape))
        return d, c

    def __call__(
        self,
        depth: np.ndarray,
        *,
        color: np.ndarray | None = None,
        min_depth_m: float = 0.0,
        max_depth_m: float = np.inf,
        stamp: float | None = None,
    ) -> PointCloud:
        """Valid points of ``depth`` as a PointCloud in the optical frame.

        depth: (H, W) float32 metres; 0, NaN, inf or outside [min_depth_m, max_depth_m] = invalid.
        color: (H, W, 3) uint8 RGB aligned with depth, or None.
        Points come in row-major pixel order; colours are gathered from the same pixels.
        """
        d, c = self._check(depth, color)
        zmin = v.number("min_depth_m", min_depth_m, nonnegative=True)
        zmax = min(v.number("max_depth_m", max_depth_m, positive=True, allow_inf=True), _F32_MAX)
        if zmin > zmax:
            raise InputError(f"min_depth_m {zmin} exceeds max_depth_m {zmax}")
        pts, rgb = self._run(d, c, np.float32(zmin), np.float32(zmax))
        return PointCloud._trusted(pts, rgb, None, "optical", stamp)

    def _run(
        self, d: np.ndarray, c: np.ndarray | None, zmin: np.float32, zmax: np.float32
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not HAVE_NUMBA:
            return self._run_numpy(d, c, zmin, zmax)
        if zmax < np.float32(np.finfo(np.float32).smallest_subnormal):  # nothing can be kept
            return np.empty((0, 3), np.float32), None if c is None else np.empty((0, 3), np.uint8)
        bits = d.view(np.uint32)
        lo, span = _kept_bits(zmin, zmax)
        offsets = np.empty(d.shape[0] + 1, dtype=np.int64)
        n = int(_count_kept(bits, lo, span, offsets))
        out = np.empty((n, 3), dtype=np.float32)
        rgb = None if c is None else np.empty((n, 3), dtype=np.uint8)
        _WRITERS[self._rays is not None, c is not None](
            d, bits, lo, span, self._xr, self._yr,
            _NO_RAYS if self._rays is None else self._rays,
            _NO_COLOR if c is None else c,
            offsets, out.reshape(-1), _NO_RGB if rgb is None else rgb.reshape(-1), _WRITE_CHUNKS,
        )
        return out, rgb

    def _run_numpy(
        self, d: np.ndarray, c: np.ndarray | None, zmin: np.float32, zmax: np.float32
    ) -> tuple[np.ndarray, np.ndarray | None]:
        with np.errstate(invalid="ignore"):
            mask = (d > 0) & (d >= zmin) & (d <= zmax)
        rows, cols = np.nonzero(mask)
        z = d[rows, cols]
        out = np.empty((z.shape[0], 3), dtype=np.float32)
        if self._separable:
            out[:, 0] = self._xr[cols] * z
            out[:, 1] = self._yr[rows] * z
        else:
            assert self._rays is not None
            out[:, 0] = self._rays[rows, cols, 0] * z
            out[:, 1] = self._rays[rows, cols, 1] * z
        out[:, 2] = z
        return out, None if c is None else c[rows, cols]

    def organized(self, depth: np.ndarray, *, min_depth_m: float = 0.0, max_depth_m: float = np.inf) -> np.ndarray:
        """(H, W, 3) float32 points for every pixel; invalid pixels are NaN."""
        d, _ = self._check(depth, None)
        zmin = v.number("min_depth_m", min_depth_m, nonnegative=True)
        zmax = min(v.number("max_depth_m", max_depth_m, positive=True, allow_inf=True), _F32_MAX)
        if zmin > zmax:
            raise InputError(f"min_depth_m {zmin} exceeds max_depth_m {zmax}")
        rays = self.rays
        with np.errstate(invalid="ignore"):
            valid = (d > 0) & (d >= zmin) & (d <= zmax)
        z = np.where(valid, d, np.float32(np.nan))
        out = np.empty((*d.shape, 3), dtype=np.float32)
        np.multiply(rays[..., 0], z, out=out[..., 0])
        np.multiply(rays[..., 1], z, out=out[..., 1])
        out[..., 2] = z
        return out


@functools.lru_cache(maxsize=16)
def _cached_unprojector(intrinsics: Intrinsics, undistort: bool) -> Unprojector:
    return Unprojector(intrinsics, undistort=undistort)


def depth_to_points(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    *,
    color: np.ndarray | None = None,
    min_depth_m: float = 0.0,
    max_depth_m: float = np.inf,
    undistort: bool = True,
) -> PointCloud:
    """One-call form of :class:`Unprojector` (unprojectors are cached per intrinsics).

    depth: (H, W) float32 metres (0/NaN = invalid); color: (H, W, 3) uint8 RGB or None.
    Returns a PointCloud of the valid pixels in the optical frame.
    """
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    return _cached_unprojector(intrinsics, undistort)(
        depth, color=color, min_depth_m=min_depth_m, max_depth_m=max_depth_m
    )


def reproject_with_q(
    disparity: np.ndarray, Q: np.ndarray, *, color: np.ndarray | None = None
) -> PointCloud:
    """Points from a rectified disparity map and a 4×4 Q, as ``cv2.reprojectImageTo3D`` computes
    them — [X Y Z W]ᵀ = Q·[u v d 1]ᵀ, point = (X, Y, Z)/W — but only for valid pixels.

    disparity: (H, W) float pixels; invalid where 0, negative, non-finite, or W ≤ 0 (behind).
    color: (H, W, 3) uint8 RGB or None. Returns a PointCloud in the left camera's optical frame.
    """
    d = v.image("disparity", disparity)
    Qm = v.array("Q", Q, shape=(4, 4), kinds="fiu").astype(np.float64)
    if not np.isfinite(Qm).all():
        raise InputError("Q: contains NaN or inf")
    c = None if color is None else v.color_image("color", color, d.shape)
    d64 = d.astype(np.float64)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(d64) & (d64 > 0)
    rows, cols = np.nonzero(valid)
    dv = d64[rows, cols]
    uf, vf = cols.astype(np.float64), rows.astype(np.float64)
    # Row by row rather than Q @ [u v d 1]: a (4, 4) @ (4, N) matmul goes through BLAS, whose
    # thread pool makes it many times slower on a busy machine.
    X = [Qm[i, 0] * uf + Qm[i, 1] * vf + Qm[i, 2] * dv + Qm[i, 3] for i in range(4)]
    w = X[3]
    front = w > 0
    pts = np.empty((int(front.sum()), 3), np.float32)
    for i in range(3):
        pts[:, i] = X[i][front] / w[front]
    cols_out = None if c is None else np.ascontiguousarray(c[rows[front], cols[front]])
    return PointCloud._trusted(pts, cols_out, None, "optical", None)
