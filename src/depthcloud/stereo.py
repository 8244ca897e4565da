"""Stereo reconstruction: rectify a pair, match it with semi-global block matching, make depth and a cloud.

Pipeline: rectification maps (cached per rig, image size and alpha) → optional local contrast
normalisation (robust to exposure and lighting differences between the two cameras) → OpenCV's
StereoSGBM (sub-pixel: 1/16 px) with its left-right consistency check (``disp12MaxDiff``) and
speckle filtering → optionally an explicit left-right check against a right-view matcher, WLS
smoothing (opencv-contrib ``ximgproc``), scan-line hole filling from the background side and a
median → disparity → depth (Z = f·B/(d + doffs)) → coloured cloud.

Disparity convention: float32 pixels in the rectified left image, ``d = u_left − u_right``; invalid
pixels are **NaN** (never 0, because 0 is a legal disparity when doffs > 0 or the scene is far).
Depth follows the package rule: float32 metres, invalid = 0.

Presets were chosen by measurement on the Middlebury 2014 quarter-size training scenes
(``bench/bench_stereo_accuracy.py``) and timed at 640×480 and 1280×720
(``bench/bench_stereo_speed.py``); ``docs/stereo.md`` has the numbers.

This module must not read or write files, print, or import the CLI.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from depthcloud import _validate as v
from depthcloud.calibrate import Rectification, rectify
from depthcloud.camera import StereoRig
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError, MissingDependencyError, StereoError
from depthcloud.geometry import Unprojector, disparity_to_depth

__all__ = [
    "BASELINES",
    "PRESETS",
    "MatcherParams",
    "StereoMatcher",
    "StereoResult",
    "compute_disparity",
    "disparity_range",
    "fill_holes",
    "normalize_contrast",
    "params_for",
    "reconstruct",
    "rectification_maps",
]

_MODES = {
    "sgbm": cv2.STEREO_SGBM_MODE_SGBM,
    "hh": cv2.STEREO_SGBM_MODE_HH,
    "3way": cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    "hh4": cv2.STEREO_SGBM_MODE_HH4,
}


@dataclass(frozen=True)
class MatcherParams:
    """Settings of the matcher; the presets are instances of this.

    block_size: odd SGBM window (px). p1, p2: smoothness penalties as multiples of
    channels·block_size² (OpenCV's P1 = p1·cn·bs², P2 = p2·cn·bs²). uniqueness_ratio (%),
    speckle_window (px, 0 = off), speckle_range (disparity levels), disp12_max_diff (px; SGBM's own
    left-right check, −1 = off), pre_filter_cap, mode (``sgbm``, ``hh`` full 8-path, ``3way``, ``hh4``).
    normalize_window: window (px, odd) of local contrast normalisation before matching; 0 = off.
    color: match the three colour channels (True) or grey (False, about 1.5× faster).
    scale: match at this fraction of the resolution and scale the disparity back (``fast`` uses 0.5).
    lr_check_px: explicit left-right check against a right-view matcher (px, 0 = off).
    wls: smooth with the WLS filter (needs lambda ``wls_lambda`` and ``wls_sigma``; uses the right
    matcher). fill: fill invalid pixels along each row from the farther (background) neighbour.
    median: 0, 3 or 5, a median filter after filling.
    weighted_median: radius (px, 0 = off) of a colour-guided weighted median (ximgproc) after filling:
    it snaps disparity edges to image edges; ``weighted_median_sigma`` is its colour range.
    num_disparities, min_disparity: fixed search range (px); None = from the rig and depth limits.
    """

    block_size: int = 5
    p1: int = 8
    p2: int = 32
    uniqueness_ratio: int = 10
    speckle_window: int = 100
    speckle_range: int = 2
    disp12_max_diff: int = 1
    pre_filter_cap: int = 63
    mode: str = "sgbm"
    normalize_window: int = 0
    color: bool = True
    scale: float = 1.0
    lr_check_px: float = 0.0
    wls: bool = False
    wls_lambda: float = 8000.0
    wls_sigma: float = 1.5
    fill: bool = False
    median: int = 0
    weighted_median: int = 0
    weighted_median_sigma: float = 25.5
    num_disparities: int | None = None
    min_disparity: int | None = None

    def __post_init__(self) -> None:
        bs = v.integer("block_size", self.block_size, low=1, high=31)
        if bs % 2 == 0:
            raise InputError(f"block_size: expected an odd number, got {bs}")
        if self.mode not in _MODES:
            raise InputError(f"mode: expected one of {', '.join(_MODES)}, got {self.mode!r}")
        nw = v.integer("normalize_window", self.normalize_window, low=0)
        if nw and nw % 2 == 0:
            raise InputError(f"normalize_window: expected 0 or an odd number, got {nw}")
        v.number("scale", self.scale, positive=True, high=1.0)
        v.number("lr_check_px", self.lr_check_px, nonnegative=True)
        if self.median not in (0, 3, 5):
            raise InputError(f"median: expected 0, 3 or 5, got {self.median!r}")
        v.integer("weighted_median", self.weighted_median, low=0)
        v.number("weighted_median_sigma", self.weighted_median_sigma, positive=True)
        if self.num_disparities is not None:
            nd = v.integer("num_disparities", self.num_disparities, low=16)
            if nd % 16:
                raise InputError(f"num_disparities: expected a multiple of 16, got {nd}")
        if self.min_disparity is not None:
            v.integer("min_disparity", self.min_disparity)


#: The presets, chosen from measurements (see the module docstring and docs/stereo.md).
PRESETS: dict[str, MatcherParams] = {
    # Half-resolution 3-way SGBM: the real-time setting (≥ 30 pairs/s at 640×480 on 2 cores).
    "fast": MatcherParams(block_size=5, mode="3way", scale=0.5, color=False, uniqueness_ratio=10, speckle_window=50),
    # Full resolution, contrast-normalised, holes filled: most of quality's accuracy at 3-way speed.
    "balanced": MatcherParams(block_size=5, mode="3way", normalize_window=7, fill=True, median=5),
    # Full 8-path SGBM on contrast-normalised images, holes filled, colour-guided weighted median.
    # Chosen by leave-one-out cross-validation over all 29 Middlebury units (bench/tune_stereo.py).
    "quality": MatcherParams(
        block_size=3, mode="hh", p1=10, p2=40, uniqueness_ratio=10, speckle_window=50, speckle_range=1,
        normalize_window=7, fill=True, weighted_median=7,
    ),
}

#: Reference settings the benchmarks compare against (usable as ``preset=`` too).
BASELINES: dict[str, MatcherParams] = {
    # The classic OpenCV stereo tutorial: numDisparities 64, blockSize 5, P1 8·3·5², P2 32·3·5², ...
    "tutorial": MatcherParams(
        block_size=5, p1=8, p2=32, uniqueness_ratio=5, speckle_window=5, speckle_range=5,
        disp12_max_diff=2, num_disparities=64, min_disparity=0,
    ),
    # cv2.StereoSGBM_create() with no arguments.
    "opencv": MatcherParams(
        block_size=3, p1=0, p2=0, uniqueness_ratio=0, speckle_window=0, speckle_range=0,
        disp12_max_diff=0, pre_filter_cap=0, num_disparities=16, min_disparity=0,
    ),
}


def params_for(preset: str | MatcherParams) -> MatcherParams:
    """A preset or baseline by name, or ``preset`` itself when it already is a MatcherParams."""
    if isinstance(preset, MatcherParams):
        return preset
    table = {**PRESETS, **BASELINES}
    if preset not in table:
        raise InputError(f"preset: expected one of {', '.join(table)}, got {preset!r}")
    return table[preset]


# -- disparity range -----------------------------------------------------------------------------------
def disparity_range(
    rig: StereoRig,
    *,
    min_depth_m: float | None = None,
    max_depth_m: float | None = None,
    default_num: int | None = None,
) -> tuple[int, int]:
    """(min_disparity, num_disparities) for SGBM that cover depths ``min_depth_m``..``max_depth_m``.

    rig: a rectified rig (f = left fx, B = baseline, doffs). d = f·B/Z − doffs; the range is widened
    to whole pixels and num rounded up to a multiple of 16. Without ``min_depth_m`` the search spans
    ``default_num`` (default: width/8 rounded up to 16) from the minimum. min_disparity never goes below 0.
    """
    if not rig.rectified:
        raise StereoError("disparity_range: needs a rectified rig (rectify it first)")
    fb = rig.focal_px * rig.baseline_m
    lo = 0.0
    if max_depth_m is not None and math.isfinite(max_depth_m):
        zmax = v.number("max_depth_m", max_depth_m, positive=True)
        lo = max(0.0, fb / zmax - rig.doffs_px)
    if min_depth_m is not None:
        zmin = v.number("min_depth_m", min_depth_m, positive=True)
        if max_depth_m is not None and zmin >= max_depth_m:
            raise InputError(f"min_depth_m {zmin} must be below max_depth_m {max_depth_m}")
        hi = fb / zmin - rig.doffs_px
        if hi <= lo:
            raise StereoError(
                f"depths {min_depth_m}..{max_depth_m} m give no positive disparity for this rig "
                f"(f·B = {fb:.3f} px·m, doffs {rig.doffs_px:.2f} px)"
            )
        num = math.ceil((hi - math.floor(lo) + 1) / 16) * 16
    else:
        num = default_num if default_num is not None else max(16, math.ceil(rig.left.width / 8 / 16) * 16)
    return math.floor(lo), int(num)


# -- rectification -------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Maps:
    rect: Rectification | None
    rig: StereoRig
    left: tuple[np.ndarray, np.ndarray] | None
    right: tuple[np.ndarray, np.ndarray] | None


@functools.lru_cache(maxsize=8)
def _maps(rig: StereoRig, size: tuple[int, int], alpha: float) -> _Maps:
    if rig.rectified:
        return _Maps(None, rig, None, None)
    rect = rectify(rig, alpha=alpha, size=size)
    m1 = cv2.initUndistortRectifyMap(rig.left.K, rig.left.dist_array, rect.R1, rect.P1, size, cv2.CV_16SC2)
    m2 = cv2.initUndistortRectifyMap(rig.right.K, rig.right.dist_array, rect.R2, rect.P2, size, cv2.CV_16SC2)
    return _Maps(rect, rect.rectified_rig(rig), (m1[0], m1[1]), (m2[0], m2[1]))


def rectification_maps(rig: StereoRig, *, alpha: float = 0.0) -> tuple[Rectification | None, StereoRig]:
    """The (cached) rectification of ``rig`` and the rectified rig its images have.

    A rig that already is rectified (``rig.rectified``) needs no remapping: (None, rig).
    """
    if not isinstance(rig, StereoRig):
        raise InputError(f"rig: expected a StereoRig, got {type(rig).__name__}")
    m = _maps(rig, rig.left.size, v.number("alpha", alpha, low=-1.0, high=1.0))
    return m.rect, m.rig


# -- matching ------------------------------------------------------------------------------------------
def normalize_contrast(image: np.ndarray, *, window: int = 7) -> np.ndarray:
    """Local contrast normalisation: (g − mean) / (std + 4) over a ``window``² box, as uint8 around 128.

    image: (H, W) or (H, W, 3) uint8 RGB. Returns (H, W) uint8. Makes matching indifferent to gain
    and offset differences between the cameras (the Middlebury E and L variants).
    """
    img = v.array("image", image, ndim=(2, 3), kinds="u", expected="(H, W) or (H, W, 3)")
    w = v.integer("window", window, low=3)
    return _normalize(_gray(img), w)


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img


def _normalize(gray: np.ndarray, w: int) -> np.ndarray:
    g = gray.astype(np.float32)
    mu = cv2.blur(g, (w, w))
    sd = np.sqrt(np.maximum(cv2.blur(g * g, (w, w)) - mu * mu, 0.0))
    z = (g - mu) / (sd + 4.0)
    return np.clip(z * 40.0 + 128.0, 0, 255).astype(np.uint8)


def fill_holes(disparity: np.ndarray) -> np.ndarray:
    """Fill NaN pixels along each row with the smaller of the nearest valid disparities left and right.

    disparity: (H, W) float32, NaN = invalid. The smaller disparity is the farther surface, which is
    what an occluded pixel usually shows. Rows with no valid pixel stay NaN. Returns a new array.
    """
    d = v.image("disparity", disparity, kinds="f").astype(np.float32)
    return _fill(d)


def _fill(d: np.ndarray) -> np.ndarray:
    h, w = d.shape
    valid = np.isfinite(d)
    cols = np.arange(w)[None, :]
    left_idx = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right_idx = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    left = np.where(left_idx >= 0, d[rows, np.clip(left_idx, 0, w - 1)], np.nan)
    right = np.where(right_idx < w, d[rows, np.clip(right_idx, 0, w - 1)], np.nan)
    return np.where(valid, d, np.fmin(left, right)).astype(np.float32)


def _sgbm(p: MatcherParams, channels: int, min_disp: int, num_disp: int) -> Any:
    bs = p.block_size
    return cv2.StereoSGBM_create(  # type: ignore[attr-defined]
        minDisparity=min_disp, numDisparities=num_disp, blockSize=bs,
        P1=p.p1 * channels * bs * bs, P2=p.p2 * channels * bs * bs, disp12MaxDiff=p.disp12_max_diff,
        preFilterCap=p.pre_filter_cap, uniquenessRatio=p.uniqueness_ratio,
        speckleWindowSize=p.speckle_window, speckleRange=p.speckle_range, mode=_MODES[p.mode],
    )


def _ximgproc() -> Any:
    if not hasattr(cv2, "ximgproc"):
        raise MissingDependencyError(
            "WLS filtering and the explicit left-right check need opencv-contrib (cv2.ximgproc); "
            "install opencv-contrib-python-headless"
        )
    return cv2.ximgproc


@dataclass
class _Engine:
    """SGBM objects for one parameter set and range (made once, reused for every pair)."""

    params: MatcherParams
    min_disp: int
    num_disp: int
    channels: int
    left: Any = field(init=False)
    right: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.left = _sgbm(self.params, self.channels, self.min_disp, self.num_disp)
        if self.params.wls or self.params.lr_check_px > 0:
            self.right = _ximgproc().createRightMatcher(self.left)

    def run(self, left: np.ndarray, right: np.ndarray, guide: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        raw = self.left.compute(left, right)
        invalid_raw = raw < (self.min_disp * 16)
        if p.wls:
            raw_r = self.right.compute(right, left)
            wls = _ximgproc().createDisparityWLSFilter(self.left)
            wls.setLambda(p.wls_lambda)
            wls.setSigmaColor(p.wls_sigma)
            out = wls.filter(raw, guide, disparity_map_right=raw_r).astype(np.float32) / 16.0
            invalid = out < self.min_disp
        else:
            out = raw.astype(np.float32) / 16.0
            invalid = invalid_raw
        out[invalid] = np.nan
        if p.lr_check_px > 0:
            raw_r = self.right.compute(right, left) if not p.wls else raw_r
            out[_lr_inconsistent(out, -raw_r.astype(np.float32) / 16.0, p.lr_check_px)] = np.nan
        # WLS gives every pixel a value; "matched" keeps meaning what SGBM itself found.
        matched = ~invalid_raw & np.isfinite(out)
        return out, matched


def _lr_inconsistent(dl: np.ndarray, dr: np.ndarray, tol: float) -> np.ndarray:
    """Pixels whose left disparity is not confirmed by the right view's at u − d."""
    h, w = dl.shape
    u = np.arange(w, dtype=np.float32)[None, :]
    with np.errstate(invalid="ignore"):
        ur = np.rint(u - np.nan_to_num(dl, nan=0.0)).astype(np.int64)
    inside = (ur >= 0) & (ur < w)
    back = dr[np.arange(h)[:, None], np.clip(ur, 0, w - 1)]
    with np.errstate(invalid="ignore"):
        bad = ~inside | ~(np.abs(dl - back) <= tol)
    return bad & np.isfinite(dl)


def compute_disparity(
    left: np.ndarray,
    right: np.ndarray,
    *,
    preset: str | MatcherParams = "balanced",
    min_disparity: int = 0,
    num_disparities: int = 64,
) -> np.ndarray:
    """Disparity of a rectified pair.

    left, right: (H, W, 3) uint8 RGB or (H, W) uint8 grey, the same size, already rectified.
    min_disparity, num_disparities: search range in pixels (num a multiple of 16); a preset's own
    fixed range (the ``tutorial`` and ``opencv`` baselines) wins.
    Returns (H, W) float32 pixels, NaN = invalid.
    """
    a, b = _pair(left, right)
    p = params_for(preset)
    md = v.integer("min_disparity", min_disparity)
    nd = v.integer("num_disparities", num_disparities, low=16)
    if nd % 16:
        raise InputError(f"num_disparities: expected a multiple of 16, got {nd}")
    disp, matched = _match(a, b, p, _engine(p, _channels(p, a), md, nd))
    return _full_disparity(disp, matched, a.shape)[0]


def _pair(left: Any, right: Any) -> tuple[np.ndarray, np.ndarray]:
    a = v.array("left", left, ndim=(2, 3), kinds="u", expected="(H, W, 3) or (H, W)")
    b = v.array("right", right, ndim=(2, 3), kinds="u", expected="(H, W, 3) or (H, W)")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise InputError(f"left, right: expected uint8 images, got {a.dtype} and {b.dtype}")
    if a.shape != b.shape:
        raise StereoError(
            f"the left image is {a.shape[1]}x{a.shape[0]} but the right is {b.shape[1]}x{b.shape[0]}"
            + (" (and has other channels)" if a.shape[:2] == b.shape[:2] else "")
            + "; a stereo pair must have one size"
        )
    if a.ndim == 3 and a.shape[2] != 3:
        raise InputError(f"left: expected shape (H, W, 3), got {a.shape}")
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def _channels(p: MatcherParams, image: np.ndarray) -> int:
    return 3 if image.ndim == 3 and p.color and not p.normalize_window else 1


def _engine(p: MatcherParams, channels: int, min_disp: int, num_disp: int) -> _Engine:
    md = p.min_disparity if p.min_disparity is not None else min_disp
    nd = p.num_disparities if p.num_disparities is not None else num_disp
    if p.scale != 1.0:
        md = math.floor(md * p.scale)
        nd = max(16, math.ceil(nd * p.scale / 16) * 16)
    return _Engine(p, md, nd, channels)


def _match(left: np.ndarray, right: np.ndarray, p: MatcherParams, eng: _Engine) -> tuple[np.ndarray, np.ndarray]:
    """(disparity, matched) at the matching resolution (``p.scale``), in pixels of that resolution.

    Hole filling and smoothing run at the matching resolution too; :func:`_full` brings results back.
    """
    h, w = left.shape[:2]
    a, b = left, right
    if p.scale != 1.0:
        size = (max(1, round(w * p.scale)), max(1, round(h * p.scale)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    guide = a
    if p.normalize_window:
        a, b = _normalize(_gray(a), p.normalize_window), _normalize(_gray(b), p.normalize_window)
    elif eng.channels == 1:
        a, b = _gray(a), _gray(b)
    disp, matched = eng.run(a, b, guide)
    if p.fill:
        disp = _fill(disp)
        if p.median:
            disp = cv2.medianBlur(disp, p.median)
        if p.weighted_median:
            known = np.isfinite(disp)
            disp = _ximgproc().weightedMedianFilter(
                guide, np.where(known, disp, np.float32(0.0)), p.weighted_median, p.weighted_median_sigma
            )
            disp[~known] = np.nan
    return disp, matched


def _full(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A matching-resolution map at the image size (nearest neighbour, so no value is invented)."""
    if image.shape[:2] == shape[:2]:
        return image
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _full_disparity(disp: np.ndarray, matched: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if disp.shape[:2] == shape[:2]:
        return disp, matched
    sx = np.float32(shape[1] / disp.shape[1])
    return _full(disp, shape) * sx, _full(matched.view(np.uint8), shape).view(bool)


# -- the pipeline --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class StereoResult:
    """What :class:`StereoMatcher` returns for one pair, all in the rectified left view.

    disparity: (H, W) float32 px, NaN = invalid. matched: (H, W) bool, pixels the matcher found itself
    (False where only hole filling gave a value). depth: (H, W) float32 metres, 0 = invalid.
    left, right: the rectified (H, W, 3) uint8 images. rig: the rectified rig. cloud: the coloured
    points of the matched pixels within the depth limits, in the rectified left camera's optical frame.
    """

    disparity: np.ndarray
    matched: np.ndarray
    depth: np.ndarray
    left: np.ndarray
    right: np.ndarray
    rig: StereoRig
    cloud: PointCloud


class StereoMatcher:
    """Rectify, match and reconstruct the pairs of one rig, with maps, matchers and rays made once.

    rig: the calibrated rig (raw or already rectified); images must have its size.
    preset: ``fast``, ``balanced``, ``quality`` (or a baseline name, or a MatcherParams).
    min_depth_m, max_depth_m: depth limits (metres) that set the disparity search range and crop the
    cloud. search_range: explicit (min_disparity, num_disparities) instead, e.g. Middlebury's ndisp. alpha: rectification
    zoom (0 valid pixels only … 1 all pixels).
    """

    def __init__(
        self,
        rig: StereoRig,
        *,
        preset: str | MatcherParams = "balanced",
        min_depth_m: float | None = None,
        max_depth_m: float | None = None,
        search_range: tuple[int, int] | None = None,
        alpha: float = 0.0,
    ) -> None:
        if not isinstance(rig, StereoRig):
            raise InputError(f"rig: expected a StereoRig, got {type(rig).__name__}")
        self.params = params_for(preset)
        self.raw_rig = rig
        self.rectification, self.rig = rectification_maps(rig, alpha=alpha)
        self._maps = _maps(rig, rig.left.size, float(alpha))
        if search_range is not None:
            md = v.integer("search_range[0] (min disparity)", search_range[0])
            nd = v.integer("search_range[1] (number of disparities)", search_range[1], low=16)
        else:
            md, nd = disparity_range(self.rig, min_depth_m=min_depth_m, max_depth_m=max_depth_m)
        self.min_depth_m = 0.0 if min_depth_m is None else float(min_depth_m)
        self.max_depth_m = math.inf if max_depth_m is None else float(max_depth_m)
        self.min_disparity, self.num_disparities = int(md), int(math.ceil(nd / 16) * 16)
        self._engines: dict[int, _Engine] = {}
        self._unproject = Unprojector(self.rig.left)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the images this matcher takes."""
        return self.raw_rig.left.size

    def rectify(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rectified pair (same size and dtype as the input)."""
        a, b = _pair(left, right)
        if (a.shape[1], a.shape[0]) != self.size:
            raise StereoError(
                f"the images are {a.shape[1]}x{a.shape[0]} but the rig is for {self.size[0]}x{self.size[1]}; "
                "use the rig calibrated for this camera resolution (or StereoRig.resized)"
            )
        m = self._maps
        if m.left is None or m.right is None:
            return a, b
        return (
            cv2.remap(a, m.left[0], m.left[1], cv2.INTER_LINEAR),
            cv2.remap(b, m.right[0], m.right[1], cv2.INTER_LINEAR),
        )

    def disparity(self, left_rect: np.ndarray, right_rect: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(disparity (H, W) float32 px NaN = invalid, matched (H, W) bool) of a rectified pair."""
        a, b = _pair(left_rect, right_rect)
        return _full_disparity(*self._match(a, b), a.shape)

    def _match(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        channels = _channels(self.params, a)
        eng = self._engines.get(channels)
        if eng is None:
            eng = self._engines[channels] = _engine(self.params, channels, self.min_disparity, self.num_disparities)
        return _match(a, b, self.params, eng)

    def __call__(self, left: np.ndarray, right: np.ndarray) -> StereoResult:
        """Rectify, match, and reconstruct one pair. left, right: (H, W, 3) uint8 RGB of the rig's size."""
        lr, rr = self.rectify(left, right)
        d_low, m_low = self._match(lr, rr)
        # Depth is computed where the matching happened (a quarter of the pixels for ``fast``) and
        # then enlarged like the disparity: nearest-neighbour enlarging commutes with Z = f·B/(d + doffs).
        sx = lr.shape[1] / d_low.shape[1]
        depth = _full(disparity_to_depth(d_low * np.float32(sx) if sx != 1 else d_low, self.rig.focal_px,
                                         self.rig.baseline_m, doffs_px=self.rig.doffs_px), lr.shape)
        disp, matched = _full_disparity(d_low, m_low, lr.shape)
        color = lr if lr.ndim == 3 else np.repeat(lr[:, :, None], 3, axis=2)
        # Without hole filling every finite disparity was matched, and depth is already 0 elsewhere.
        cloud = self._unproject(
            np.where(matched, depth, np.float32(0.0)) if self.params.fill else depth, color=color,
            min_depth_m=self.min_depth_m, max_depth_m=self.max_depth_m,
        )
        return StereoResult(disp, matched, depth, lr, rr, self.rig, cloud)


def reconstruct(
    left: np.ndarray,
    right: np.ndarray,
    rig: StereoRig,
    *,
    preset: str | MatcherParams = "balanced",
    min_depth_m: float | None = None,
    max_depth_m: float | None = None,
    search_range: tuple[int, int] | None = None,
    alpha: float = 0.0,
) -> StereoResult:
    """One-call form of :class:`StereoMatcher` for a single pair (see it for the arguments)."""
    return StereoMatcher(
        rig, preset=preset, min_depth_m=min_depth_m, max_depth_m=max_depth_m,
        search_range=search_range, alpha=alpha,
    )(left, right)

