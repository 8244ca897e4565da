"""What the organized (per-pixel) surface code shares: checked depth → organized points, and the
rule that says whether two neighbouring pixels lie on one surface.

The edge rule: neighbours with depths z₁, z₂ (metres) are joined when

    |z₁ − z₂| ≤ a·min(z₁, z₂) + b·z₁·z₂

with a = ``max_edge_rel`` (a fraction of the depth) and b = ``max_edge_disp_px`` / (f·B). The second
term is exactly a step of ``max_edge_disp_px`` pixels of disparity for a stereo rig of focal length f
(pixels) and baseline B (metres), since 1/z₁ − 1/z₂ = (d₁ − d₂)/(f·B): stereo depth error grows as z².
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics
from depthcloud.errors import InputError
from depthcloud.geometry import Unprojector


def edge_coefficients(intrinsics: Intrinsics, *, max_edge_rel: float, max_edge_disp_px: float | None,
                      baseline_m: float | None) -> tuple[float, float]:
    """(a, b) of the edge rule from the public options (validated)."""
    a = v.number("max_edge_rel", max_edge_rel, nonnegative=True, allow_inf=True)
    if max_edge_disp_px is None:
        return a, 0.0
    px = v.number("max_edge_disp_px", max_edge_disp_px, nonnegative=True)
    if baseline_m is None:
        raise InputError("max_edge_disp_px: needs baseline_m (a disparity step is a depth step only for a known rig)")
    b_m = v.number("baseline_m", baseline_m, positive=True)
    return a, px / (intrinsics.fx * b_m)


def organized_points(depth: Any, intrinsics: Any, *, min_depth_m: float, max_depth_m: float,
                     undistort: bool = True) -> np.ndarray:
    """(H, W, 3) float32 points of every pixel in the optical frame, NaN where the depth is invalid."""
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    return Unprojector(intrinsics, undistort=undistort).organized(
        depth, min_depth_m=min_depth_m, max_depth_m=max_depth_m)


def edge_ok(z1: np.ndarray, z2: np.ndarray, a: float, b: float) -> np.ndarray:
    """Elementwise edge rule (NaN depths → False)."""
    with np.errstate(invalid="ignore"):
        return np.abs(z1 - z2) <= a * np.minimum(z1, z2) + b * z1 * z2
