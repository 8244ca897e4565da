"""Fit a monocular prediction to metric depth: scale and shift in inverse depth, or scale alone.

A relative model (Depth Anything V2's default) predicts inverse depth up to an unknown scale and shift:
1/z ≈ s·r + t. A metric model predicts metres up to a small scale error: z ≈ s·d. Given metric depth at
some pixels (a depth sensor, LiDAR or stereo points, a RealSense/OAK frame), :func:`fit_alignment`
finds s (and t) robustly:

1. RANSAC over minimal samples (2 points, or 1 for scale only) with a fixed-seed generator, scoring
   each candidate by the points whose relative error |ŷ − y| / y is below ``threshold``
   (y = 1/z for relative models, z for metric ones);
2. weighted least squares on the inliers (weights 1/y², i.e. relative errors), repeated with the inlier
   bound tightened to 4 robust sigmas (1.4826 × the median relative error) until the set settles.

The result says how many points were used and the median relative depth error on them.
:func:`align_samples` turns a depth image, a point cloud or a Frame into pixel samples of the image.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError
from depthcloud.frame import Frame

__all__ = ["AlignFit", "align_samples", "align_to", "fit_alignment"]

_MIN_POINTS = {"relative": 3, "metric": 1}
_RANSAC_SUBSET = 20000  # candidates are scored on at most this many points; the refit uses all


@dataclass(frozen=True)
class AlignFit:
    """A fitted alignment. kind: ``"relative"`` (1/z = scale·r + shift) or ``"metric"`` (z = scale·d,
    shift 0). points_used / points_total: inliers / valid samples. residual: median relative depth
    error |z_fit − z| / z over the inliers."""

    kind: str
    scale: float
    shift: float
    points_used: int
    points_total: int
    residual: float

    def apply(self, pred: np.ndarray) -> np.ndarray:
        """Metric depth (float32 metres, 0 = invalid) from a prediction of this fit's kind."""
        p = np.asarray(pred, dtype=np.float64)
        valid = np.isfinite(p) & (p > 0)
        if self.kind == "metric":
            out = np.where(valid, p * self.scale, 0.0)
        else:
            inv = self.scale * p + self.shift
            good = valid & (inv > 0)
            out = np.zeros(p.shape, np.float64)
            out[good] = 1.0 / inv[good]
        return out.astype(np.float32)

    def describe(self) -> str:
        """One line for reports."""
        what = (f"1/z = {self.scale:.6g}*r {'+' if self.shift >= 0 else '-'} {abs(self.shift):.6g}"
                if self.kind == "relative" else f"z = {self.scale:.6g}*d")
        return (f"aligned {what} on {self.points_used} of {self.points_total} points, "
                f"median relative error {100.0 * self.residual:.2f} %")


def _solve(x: np.ndarray, y: np.ndarray, kind: str) -> tuple[float, float]:
    """Weighted least squares of y ≈ s·x (+ t) with weights 1/y² (relative errors)."""
    w = 1.0 / y
    if kind == "metric":
        a = x * w
        denom = float(a @ a)
        return (float(a @ np.ones_like(a)) / denom if denom > 0 else float("nan")), 0.0
    A = np.stack([x * w, w], axis=1)
    sol, *_ = np.linalg.lstsq(A, np.ones_like(w), rcond=None)
    return float(sol[0]), float(sol[1])


def _errors(x: np.ndarray, y: np.ndarray, s: float, t: float) -> np.ndarray:
    return np.abs(s * x + t - y) / y


def fit_alignment(
    pred: Any,
    target_m: Any,
    *,
    kind: str,
    threshold: float = 0.1,
    iterations: int = 256,
    seed: int = 0,
) -> AlignFit:
    """Fit ``pred`` to metric depth robustly (see the module docstring).

    pred: (N,) or (H, W) model output at the sample pixels: relative inverse depth (``kind="relative"``)
    or metres (``kind="metric"``). target_m: the same shape, metric depth in metres; 0, NaN, inf and
    negative values in either are skipped. threshold: the inlier bound on the relative error for RANSAC.
    Raises InputError when too few valid samples remain or no positive scale fits.
    """
    if kind not in _MIN_POINTS:
        raise InputError(f"kind: expected 'metric' or 'relative', got {kind!r}")
    p = v.array("pred", pred, kinds="fiu").astype(np.float64).ravel()
    z = v.array("target_m", target_m, kinds="fiu").astype(np.float64).ravel()
    if p.shape != z.shape:
        raise InputError(f"pred and target_m: expected the same number of values, got {p.size} and {z.size}")
    thr = v.number("threshold", threshold, positive=True)
    n_iter = v.integer("iterations", iterations, low=1)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(p) & np.isfinite(z) & (z > 0) & (p > 0)
    x = p[valid]
    y = 1.0 / z[valid] if kind == "relative" else z[valid]
    n = x.size
    need = _MIN_POINTS[kind]
    if n < need:
        raise InputError(f"align: {n} valid sample(s) where the prediction and the metric depth both have a "
                         f"value; need at least {need}")
    rng = np.random.default_rng(seed)
    sub = rng.choice(n, _RANSAC_SUBSET, replace=False) if n > _RANSAC_SUBSET else np.arange(n)
    xs, ys = x[sub], y[sub]
    best: tuple[int, float, float] = (-1, float("nan"), 0.0)
    k = need if kind == "metric" else 2
    for _ in range(n_iter if n > k else 1):
        idx = rng.choice(sub.size, k, replace=False)
        if kind == "metric":
            s, t = float(ys[idx[0]] / xs[idx[0]]), 0.0
        else:
            dx = xs[idx[1]] - xs[idx[0]]
            if dx == 0:
                continue
            s = float((ys[idx[1]] - ys[idx[0]]) / dx)
            t = float(ys[idx[0]] - s * xs[idx[0]])
        if not s > 0:
            continue
        score = int(np.count_nonzero(_errors(xs, ys, s, t) < thr))
        if score > best[0]:
            best = (score, s, t)
    if best[0] < 0:
        raise InputError("align: no positive scale fits the samples (does the prediction fall as depth rises?)")
    s, t = best[1], best[2]
    inliers = _errors(x, y, s, t) < thr
    bound = thr
    for _ in range(10):
        if np.count_nonzero(inliers) < need:
            break
        s, t = _solve(x[inliers], y[inliers], kind)
        err = _errors(x, y, s, t)
        sigma = 1.4826 * float(np.median(err[inliers]))
        bound = min(thr, max(4.0 * sigma, 1e-9))
        new = err < bound
        if np.array_equal(new, inliers):
            break
        inliers = new
    used = int(np.count_nonzero(inliers))
    if not (np.isfinite(s) and s > 0) or used < need:
        raise InputError(f"align: the robust fit failed ({used} of {n} samples agree within "
                         f"{100 * thr:g} %); is the metric depth of the same view?")
    fit = AlignFit(kind, s, t, used, n, 0.0)
    zf = fit.apply(p[valid][inliers])
    zt = z[valid][inliers]
    residual = float(np.median(np.abs(zf - zt) / zt)) if used else float("nan")
    return AlignFit(kind, s, t, used, n, residual)


def _project(points: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, z) of the points in front of the camera that land inside the image."""
    pts = points[points[:, 2] > 0].astype(np.float64)
    if intr.is_distorted:
        import cv2

        uv, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), intr.K, intr.dist_array)
        u, vv = uv[:, 0, 0], uv[:, 0, 1]
    else:
        u = intr.fx * pts[:, 0] / pts[:, 2] + intr.skew * pts[:, 1] / pts[:, 2] + intr.cx
        vv = intr.fy * pts[:, 1] / pts[:, 2] + intr.cy
    cols, rows = np.rint(u), np.rint(vv)
    inside = (cols >= 0) & (cols < intr.width) & (rows >= 0) & (rows < intr.height)
    return rows[inside].astype(np.intp), cols[inside].astype(np.intp), pts[inside, 2]


def align_samples(target: np.ndarray | PointCloud | Frame, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Metric depth samples at pixels of the image that ``intrinsics`` describes: (rows, cols, z_m).

    target: an (H, W) depth image in metres (0 = invalid) — of this image's size, or of another
    resolution of the same camera (rescaled); a PointCloud in this camera's optical frame (projected);
    or a Frame (its depth unprojected with its own intrinsics, then projected into this image: the
    sensor must sit at the camera's centre, as colour-aligned RealSense/OAK depth does).
    """
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    from depthcloud.geometry import Unprojector

    if isinstance(target, Frame):
        cloud = Unprojector(target.intrinsics)(target.depth)
        return _project(cloud.points, intrinsics)
    if isinstance(target, PointCloud):
        if target.frame != "optical":
            raise InputError(f"align cloud: expected points in the camera's optical frame, got frame {target.frame!r}")
        return _project(target.points, intrinsics)
    d = v.image("align depth", target, kinds="fiu").astype(np.float32)
    if d.shape == intrinsics.shape:
        with np.errstate(invalid="ignore"):
            rows, cols = np.nonzero(np.isfinite(d) & (d > 0))
        return rows, cols, d[rows, cols].astype(np.float64)
    h, w = d.shape
    if abs(w * intrinsics.height - h * intrinsics.width) > max(w, h, intrinsics.width, intrinsics.height):
        raise InputError(f"align depth: {w}x{h} is not the image's {intrinsics.width}x{intrinsics.height} nor the "
                         "same aspect ratio; pass a cloud or a frame instead")
    cloud = Unprojector(intrinsics.resized(w, h))(d)
    return _project(cloud.points, intrinsics)


def align_to(pred: np.ndarray, target: np.ndarray | PointCloud | Frame, intrinsics: Intrinsics, *,
             kind: str, threshold: float = 0.1, seed: int = 0) -> AlignFit:
    """Fit an (H, W) prediction (see :func:`fit_alignment`) to ``target`` (see :func:`align_samples`)."""
    p = v.image("pred", pred, kinds="f")
    if p.shape != intrinsics.shape:
        raise InputError(f"pred: its size {p.shape[1]}x{p.shape[0]} does not match the intrinsics "
                         f"{intrinsics.width}x{intrinsics.height}")
    rows, cols, z = align_samples(target, intrinsics)
    return fit_alignment(p[rows, cols], z, kind=kind, threshold=threshold, seed=seed)
