"""Plausibility checks: results that are probably wrong although nothing failed.

A cloud in the wrong units or with a clipped search range looks like a cloud. These checks look at
what came out (and at the options that made it) and return warnings, each one line of plain text
that names the problem, shows the evidence (counts, percentages, metres) and says what to try. They
never raise and never print: the CLI prints each warning as ``warning: …`` on stderr, and refuses an
empty cloud (:func:`empty_cloud_message`) unless the user asked for one.

Checks:

* :func:`cloud_warnings`      — an empty or near-empty cloud (few points for the pixels given);
* :func:`depth_warnings`      — a depth map whose median or range is implausible for metres;
* :func:`limit_warnings`      — ``min/max depth`` limits that look like millimetres, or that exclude
  (nearly) every depth there is;
* :func:`saturation_warnings` — a disparity search that ran into its upper limit (objects nearer
  than the search reaches come out at the nearest depth it covers).

Thresholds are module constants so that tests and callers can see them. This module must not import
the CLI, a source or the server.
"""

from __future__ import annotations

import math

import numpy as np

from depthcloud.cloud import PointCloud

__all__ = [
    "MAX_PLAUSIBLE_DEPTH_M",
    "MIN_PLAUSIBLE_MEDIAN_M",
    "NEAR_EMPTY_FRACTION",
    "SATURATED_FRACTION",
    "cloud_warnings",
    "depth_warnings",
    "empty_cloud_message",
    "limit_warnings",
    "saturation_warnings",
]

#: a cloud with fewer points than this fraction of the pixels it came from is "near-empty"
NEAR_EMPTY_FRACTION = 0.01
#: a median depth above this (metres) is beyond every depth camera: millimetres read as metres?
MAX_PLAUSIBLE_DEPTH_M = 100.0
#: a median depth below this (metres) is nearer than any depth camera sees: a scale applied twice?
MIN_PLAUSIBLE_MEDIAN_M = 0.02
#: a limit at or above this many "metres" for --min-depth (or 1000 for --max-depth) reads like mm
_MM_LIKE_MIN = 10.0
_MM_LIKE_MAX = 1000.0
#: the share of matched pixels at the top of the disparity search above which it counts as saturated
SATURATED_FRACTION = 0.005


def _pct(part: float, whole: float) -> str:
    p = 100.0 * part / whole if whole else 0.0
    return f"{p:.2g} %" if p < 1 else f"{p:.0f} %"


def _valid(depth_m: np.ndarray) -> np.ndarray:
    d = np.asarray(depth_m, dtype=np.float32)
    return d[np.isfinite(d) & (d > 0)]


def empty_cloud_message(what: str, n_pixels: int, *, hint: str = "") -> str:
    """The error text for an empty cloud (the CLI refuses to write it unless asked to)."""
    return (f"{what}: the cloud is empty (0 points from {n_pixels} pixels); nothing was written"
            + (f"; {hint}" if hint else ""))


def cloud_warnings(cloud: PointCloud | int, n_pixels: int, *, what: str = "cloud") -> list[str]:
    """A near-empty cloud: fewer than :data:`NEAR_EMPTY_FRACTION` of ``n_pixels`` became points.

    cloud: the cloud or its point count. An empty cloud gives no warning here: it is an error for
    the caller (see :func:`empty_cloud_message`).
    """
    n = cloud if isinstance(cloud, int) else len(cloud)
    if n == 0 or n_pixels <= 0 or n >= NEAR_EMPTY_FRACTION * n_pixels:
        return []
    return [f"{what}: near-empty cloud, {n} points from {n_pixels} pixels ({_pct(n, n_pixels)}); check the "
            "depth range (--min-depth/--max-depth, metres) and the units (--depth-scale)"]


def depth_warnings(depth_m: np.ndarray, *, what: str = "depth", scale_hint: str = "--depth-scale") -> list[str]:
    """A depth map in metres whose median is implausible: above :data:`MAX_PLAUSIBLE_DEPTH_M` (units
    of millimetres read as metres) or below :data:`MIN_PLAUSIBLE_MEDIAN_M` (a scale applied twice)."""
    valid = _valid(depth_m)
    if valid.size == 0:
        return []
    med = float(np.median(valid))
    lo, hi = float(valid.min()), float(valid.max())
    if med > MAX_PLAUSIBLE_DEPTH_M:
        return [f"{what}: median depth {med:.4g} m (range {lo:.4g}..{hi:.4g} m) is beyond any depth camera; "
                f"are the values millimetres? give {scale_hint} 0.001 (metres per stored unit)"]
    if med < MIN_PLAUSIBLE_MEDIAN_M:
        return [f"{what}: median depth {med * 1000:.3g} mm (range {lo:.3g}..{hi:.3g} m) is nearer than any "
                f"depth camera sees; is {scale_hint} too small, or applied twice?"]
    return []


def limit_warnings(
    min_depth_m: float | None,
    max_depth_m: float | None,
    depth_m: np.ndarray | None = None,
    *,
    what: str = "depth limits",
) -> list[str]:
    """``--min-depth``/``--max-depth`` that look like millimetres (e.g. 300 and 3000 for 0.3..3 m), or
    that exclude (nearly) every valid depth of ``depth_m`` (the evidence: how many depths they keep)."""
    out: list[str] = []
    lo = 0.0 if min_depth_m is None else float(min_depth_m)
    hi = math.inf if max_depth_m is None else float(max_depth_m)
    mm_like = lo >= _MM_LIKE_MIN or (math.isfinite(hi) and hi >= _MM_LIKE_MAX)
    if mm_like:
        shown = " and ".join(f"{name} {val:g}" for name, val in (("--min-depth", lo), ("--max-depth", hi))
                             if val and math.isfinite(val))
        out.append(f"{what}: {shown} m look like millimetres; the limits are metres "
                   f"(for {lo:g}..{hi:g} mm give --min-depth {lo / 1000:g} --max-depth {hi / 1000:g})")
    if depth_m is not None:
        valid = _valid(depth_m)
        if valid.size:
            kept = int(np.count_nonzero((valid >= lo) & (valid <= hi)))
            if kept < NEAR_EMPTY_FRACTION * valid.size:
                out.append(f"{what}: --min-depth {lo:g} m / --max-depth {hi:g} m keep {kept} of {valid.size} valid "
                           f"depths ({_pct(kept, valid.size)}); the depths lie in {float(valid.min()):.3g}.."
                           f"{float(valid.max()):.3g} m")
    return out


def saturation_warnings(
    disparity: np.ndarray,
    *,
    min_disparity: int,
    num_disparities: int,
    focal_px: float,
    baseline_m: float,
    doffs_px: float = 0.0,
    matched: np.ndarray | None = None,
    what: str = "stereo",
) -> list[str]:
    """The disparity search ran into its upper limit: more than :data:`SATURATED_FRACTION` of the
    matched pixels sit within 1.5 px of ``min_disparity + num_disparities - 1``. Things nearer than
    that disparity's depth cannot be matched right and come out at about that depth. The warning
    gives the share, the depth the search reaches and a ``--num-disparities``/``--min-depth`` to try.
    """
    d = np.asarray(disparity, dtype=np.float32)
    ok = np.isfinite(d) & (d > 0)
    if matched is not None:
        ok &= np.asarray(matched, dtype=bool)
    n = int(np.count_nonzero(ok))
    if n == 0:
        return []
    top = float(min_disparity + num_disparities - 1)
    at_top = int(np.count_nonzero(d[ok] >= top - 1.5))
    if at_top <= SATURATED_FRACTION * n:
        return []
    fb = focal_px * baseline_m
    z_reach = fb / (top + doffs_px) if top + doffs_px > 0 else math.inf
    z_half = z_reach / 2
    wider = int(math.ceil((fb / z_half - doffs_px - min_disparity + 1) / 16) * 16)
    return [f"{what}: {_pct(at_top, n)} of matched pixels ({at_top}) sit at the disparity search limit "
            f"({top:g} px = {z_reach:.3g} m): anything nearer comes out at about {z_reach:.3g} m; widen the "
            f"search: --min-depth {z_half:.2g} (metres; {wider} disparities, search_range in Python) or "
            "nearer than the nearest object"]
