"""The standard monocular depth metrics, with and without alignment to the ground truth.

Over the pixels where the ground truth is valid (0 < z, inside [min_depth_m, max_depth_m]) and the
prediction clipped to that range:

* AbsRel = mean(|d − z| / z)          (lower is better)
* RMSE   = sqrt(mean((d − z)²)), metres (lower is better)
* δ<1.25 = share of pixels with max(d/z, z/d) < 1.25 (higher is better)

"Aligned" scores the prediction after :func:`depthcloud.mono.align.fit_alignment` against the same
ground truth (scale for metric models, scale and shift in inverse depth for relative ones): it measures
the shape of the prediction apart from its overall scale. A relative model has no unaligned score.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import InputError
from depthcloud.mono.align import AlignFit, fit_alignment

__all__ = ["DepthMetrics", "PairScore", "depth_metrics", "score_prediction"]


@dataclass(frozen=True)
class DepthMetrics:
    """abs_rel (ratio), rmse_m (metres), delta1 (share 0..1), pixels (how many were scored)."""

    abs_rel: float
    rmse_m: float
    delta1: float
    pixels: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairScore:
    """Scores of one prediction: ``raw`` (None for relative models), ``aligned`` and the fit used."""

    raw: DepthMetrics | None
    aligned: DepthMetrics
    fit: AlignFit

    def to_dict(self) -> dict[str, Any]:
        return {"raw": None if self.raw is None else self.raw.to_dict(), "aligned": self.aligned.to_dict(),
                "fit": asdict(self.fit)}


def _checked(pred: Any, gt: Any, min_depth_m: float, max_depth_m: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    p = v.image("pred", pred, kinds="fiu").astype(np.float64)
    g = v.image("gt_m", gt, kinds="fiu").astype(np.float64)
    if p.shape != g.shape:
        raise InputError(f"pred and gt_m: expected the same size, got {p.shape[1]}x{p.shape[0]} and "
                         f"{g.shape[1]}x{g.shape[0]}")
    lo = v.number("min_depth_m", min_depth_m, positive=True)
    hi = v.number("max_depth_m", max_depth_m, positive=True, allow_inf=True)
    return p, g, lo, hi


def _gt_mask(gt: np.ndarray, min_depth_m: float, max_depth_m: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(gt) & (gt > 0) & (gt >= min_depth_m) & (gt <= max_depth_m)


def depth_metrics(pred_m: Any, gt_m: Any, *, min_depth_m: float = 1e-3, max_depth_m: float = np.inf) -> DepthMetrics:
    """AbsRel, RMSE and δ<1.25 of ``pred_m`` against ``gt_m`` (both (H, W) metres, same shape).

    Pixels with invalid ground truth are skipped; the prediction is clipped to [min_depth_m, max_depth_m]
    (an invalid prediction counts as min_depth_m). Raises InputError when no pixel can be scored.
    """
    p, g, lo, hi = _checked(pred_m, gt_m, min_depth_m, max_depth_m)
    mask = _gt_mask(g, lo, hi)
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise InputError("ground truth: no valid depth pixel inside the evaluated range")
    z = g[mask]
    d = np.nan_to_num(p[mask], nan=lo, posinf=hi if np.isfinite(hi) else lo, neginf=lo)
    d = np.clip(d, lo, hi)
    ratio = np.maximum(d / z, z / d)
    return DepthMetrics(
        abs_rel=float(np.mean(np.abs(d - z) / z)),
        rmse_m=float(np.sqrt(np.mean((d - z) ** 2))),
        delta1=float(np.mean(ratio < 1.25)),
        pixels=n,
    )


def score_prediction(pred: Any, gt_m: Any, *, kind: str, min_depth_m: float = 1e-3,
                     max_depth_m: float = np.inf, threshold: float = 0.1) -> PairScore:
    """Score one model output against ground truth, raw (metric models) and aligned.

    pred: (H, W) model output at the ground truth's size (metres, or relative inverse depth).
    """
    p, g, lo, hi = _checked(pred, gt_m, min_depth_m, max_depth_m)
    mask = _gt_mask(g, lo, hi)
    fit = fit_alignment(p[mask], g[mask], kind=kind, threshold=threshold)
    raw = depth_metrics(p, g, min_depth_m=lo, max_depth_m=hi) if kind == "metric" else None
    aligned = depth_metrics(fit.apply(p), g, min_depth_m=lo, max_depth_m=hi)
    return PairScore(raw, aligned, fit)
