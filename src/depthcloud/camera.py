"""Camera models: pinhole intrinsics with distortion, and stereo rigs.

Conventions (every module of depthcloud follows them):

* Camera frame: the OpenCV optical frame — x right, y down, z forward, in metres.
* Pixels: the centre of pixel (u, v) is at integer coordinates; u is the column, v the row. The image
  covers [-0.5, W - 0.5] × [-0.5, H - 0.5]. Resizing by s maps u to (u + 0.5)·s − 0.5, so cx and cy
  move by that rule while fx, fy scale by s.
* Distortion: OpenCV's models. ``"opencv"`` takes 4, 5, 8, 12 or 14 coefficients in OpenCV order
  (k1, k2, p1, p2[, k3[, k4, k5, k6[, s1, s2, s3, s4[, τx, τy]]]]); ``"fisheye"`` takes 4 (k1..k4);
  ``"none"`` takes none.
* Stereo: ``R``, ``T`` map a point from the left camera's frame to the right's, X_r = R·X_l + T
  (OpenCV's stereoCalibrate convention); T is in metres. For a rectified pair the right camera sits at
  +x, so T ≈ (−B, 0, 0). Depth from disparity is Z = f·B / (d + doffs) with doffs = cx_right − cx_left.

This module holds plain values and pure maths; it must not read files or import cv2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import InputError

__all__ = ["DISTORTION_MODELS", "Intrinsics", "StereoRig"]

DISTORTION_MODELS = {"none": (0,), "opencv": (4, 5, 8, 12, 14), "fisheye": (4,)}


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one camera at one image size.

    fx, fy, cx, cy: pixels; width, height: the image size these values belong to.
    dist: distortion coefficients for ``model`` (see the module docstring).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    dist: tuple[float, ...] = ()
    model: str = "none"
    skew: float = 0.0

    def __post_init__(self) -> None:
        for name in ("fx", "fy"):
            v.number(f"intrinsics.{name}", getattr(self, name), positive=True)
        for name in ("cx", "cy", "skew"):
            v.number(f"intrinsics.{name}", getattr(self, name))
        v.integer("intrinsics.width", self.width, low=1)
        v.integer("intrinsics.height", self.height, low=1)
        object.__setattr__(self, "fx", float(self.fx))
        object.__setattr__(self, "fy", float(self.fy))
        object.__setattr__(self, "cx", float(self.cx))
        object.__setattr__(self, "cy", float(self.cy))
        object.__setattr__(self, "skew", float(self.skew))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        dist = tuple(float(d) for d in np.asarray(self.dist, dtype=np.float64).ravel())
        model = self.model
        if model == "none" and any(d != 0.0 for d in dist):
            model = "opencv"
        if model not in DISTORTION_MODELS:
            raise InputError(f"intrinsics.model: expected one of {sorted(DISTORTION_MODELS)}, got {model!r}")
        if model == "opencv" and dist and all(d == 0.0 for d in dist):
            model, dist = "none", ()
        if model == "none":
            dist = ()
        if len(dist) not in DISTORTION_MODELS[model]:
            raise InputError(
                f"intrinsics.dist: model {model!r} takes {DISTORTION_MODELS[model]} coefficients, got {len(dist)}"
            )
        if not all(math.isfinite(d) for d in dist):
            raise InputError("intrinsics.dist: coefficients must be finite")
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "model", model)

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_K(
        cls,
        K: Any,
        width: int,
        height: int,
        *,
        dist: Sequence[float] | np.ndarray = (),
        model: str | None = None,
    ) -> Intrinsics:
        """From a 3×3 camera matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``."""
        Km = v.array("K", K, shape=(3, 3), kinds="fiu")
        if not np.isfinite(Km).all():
            raise InputError("K: contains NaN or inf")
        if Km[2, 0] != 0 or Km[2, 1] != 0 or Km[1, 0] != 0 or not np.isclose(Km[2, 2], 1.0):
            raise InputError(f"K: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {Km.tolist()}")
        dist_t = tuple(np.asarray(dist, dtype=np.float64).ravel())
        return cls(
            fx=Km[0, 0], fy=Km[1, 1], cx=Km[0, 2], cy=Km[1, 2], width=width, height=height,
            dist=dist_t, model=model or ("opencv" if dist_t else "none"), skew=Km[0, 1],
        )

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> Intrinsics:
        """An ideal camera with the principal point at the image centre and square pixels."""
        fov = v.number("hfov_deg", hfov_deg, positive=True, high=179.0)
        f = (width / 2.0) / math.tan(math.radians(fov) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    # -- views --------------------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """The 3×3 camera matrix, float64."""
        return np.array(
            [[self.fx, self.skew, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as OpenCV takes it."""
        return (self.width, self.height)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), as numpy images have it."""
        return (self.height, self.width)

    @property
    def dist_array(self) -> np.ndarray:
        """Distortion coefficients as a float64 array (empty for ``none``)."""
        return np.asarray(self.dist, dtype=np.float64)

    @property
    def is_distorted(self) -> bool:
        return self.model != "none"

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan2(self.width / 2.0, self.fx))

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan2(self.height / 2.0, self.fy))

    # -- derived intrinsics -------------------------------------------------------------------
    def resized(self, width: int, height: int) -> Intrinsics:
        """The intrinsics of this camera's image resized to ``width`` × ``height``.

        Pixel centres stay centred: cx' = (cx + 0.5)·sx − 0.5.
        """
        w = v.integer("width", width, low=1)
        h = v.integer("height", height, low=1)
        sx, sy = w / self.width, h / self.height
        return replace(
            self, fx=self.fx * sx, fy=self.fy * sy, skew=self.skew * sx,
            cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5, width=w, height=h,
        )

    def scaled(self, factor: float) -> Intrinsics:
        """Resized by ``factor`` (0.5 halves each side); the new size is rounded to whole pixels."""
        s = v.number("factor", factor, positive=True)
        w, h = max(1, round(self.width * s)), max(1, round(self.height * s))
        return self.resized(w, h)

    def cropped(self, x: int, y: int, width: int, height: int) -> Intrinsics:
        """The intrinsics of the crop whose top-left pixel is (x, y) of this image."""
        x0 = v.integer("x", x, low=0)
        y0 = v.integer("y", y, low=0)
        w = v.integer("width", width, low=1)
        h = v.integer("height", height, low=1)
        if x0 + w > self.width or y0 + h > self.height:
            raise InputError(
                f"crop {w}x{h}+{x0}+{y0} does not fit inside the {self.width}x{self.height} image"
            )
        return replace(self, cx=self.cx - x0, cy=self.cy - y0, width=w, height=h)

    def undistorted(self) -> Intrinsics:
        """The same pinhole without distortion (what an undistorted image with this K has)."""
        return replace(self, dist=(), model="none")

    def with_dist(self, dist: Sequence[float], model: str = "opencv") -> Intrinsics:
        return replace(self, dist=tuple(dist), model=model)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "width": self.width, "height": self.height,
            "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
        }
        if self.skew:
            d["skew"] = self.skew
        d["model"] = self.model
        if self.dist:
            d["dist"] = list(self.dist)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Intrinsics:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise :class:`InputError`."""
        required = ("width", "height", "fx", "fy", "cx", "cy")
        missing = [k for k in required if k not in data]
        if missing:
            raise InputError(f"camera: missing key(s) {', '.join(missing)}")
        known = {*required, "skew", "model", "dist"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"camera: unknown key(s) {', '.join(map(str, unknown))}")
        return cls(
            fx=data["fx"], fy=data["fy"], cx=data["cx"], cy=data["cy"],
            width=data["width"], height=data["height"], skew=data.get("skew", 0.0),
            dist=tuple(data.get("dist", ()) or ()), model=data.get("model", "none"),
        )


def _as_R(R: Any) -> np.ndarray:
    Rm = v.array("R", R, kinds="fiu")
    if Rm.shape == (3,) or Rm.shape == (3, 1) or Rm.shape == (1, 3):
        Rm = _rodrigues(Rm.reshape(3).astype(np.float64))
    if Rm.shape != (3, 3):
        raise InputError(f"R: expected shape (3, 3) or a rotation vector (3,), got {Rm.shape}")
    Rm = Rm.astype(np.float64)
    if not np.isfinite(Rm).all():
        raise InputError("R: contains NaN or inf")
    if not np.allclose(Rm @ Rm.T, np.eye(3), atol=1e-4) or np.linalg.det(Rm) < 0:
        raise InputError("R: not a rotation matrix (R·Rᵀ ≠ I or det < 0)")
    return Rm


def _rodrigues(rvec: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(rvec))
    if theta < 1e-15:
        return np.eye(3)
    k = rvec / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * Kx + (1 - math.cos(theta)) * (Kx @ Kx)


@dataclass(frozen=True)
class StereoRig:
    """Two cameras and the pose of the right camera relative to the left.

    R (3, 3), T (3,) metres: X_right = R·X_left + T. ``rectified`` says the images this rig
    describes are already rectified (row-aligned, R = I, T = (−B, 0, 0)), which is what disparity
    maps need. ``rectified_from`` optionally keeps the raw rig a rectified one was made from.
    """

    left: Intrinsics
    right: Intrinsics
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    T: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rectified: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.left, Intrinsics) or not isinstance(self.right, Intrinsics):
            raise InputError("StereoRig: left and right must be Intrinsics")
        Rm = _as_R(self.R)
        Tm = v.array("T", self.T, kinds="fiu").astype(np.float64).reshape(-1)
        if Tm.shape != (3,) or not np.isfinite(Tm).all():
            raise InputError(f"T: expected 3 finite values in metres, got {np.asarray(self.T).tolist()}")
        if not np.linalg.norm(Tm) > 0:
            raise InputError("T: the baseline is zero; a stereo rig needs two camera positions")
        Rm.setflags(write=False)
        Tm.setflags(write=False)
        object.__setattr__(self, "R", Rm)
        object.__setattr__(self, "T", Tm)

    @classmethod
    def from_rectified(
        cls, left: Intrinsics, baseline_m: float, *, doffs_px: float = 0.0, right: Intrinsics | None = None
    ) -> StereoRig:
        """A rectified rig: the right camera is ``left`` shifted by ``baseline_m`` along +x.

        ``doffs_px`` = cx_right − cx_left (Middlebury's doffs); ignored when ``right`` is given.
        """
        b = v.number("baseline_m", baseline_m, positive=True)
        if right is None:
            right = replace(left, cx=left.cx + v.number("doffs_px", doffs_px))
        return cls(left, right, np.eye(3), np.array([-b, 0.0, 0.0]), rectified=True)

    @property
    def baseline_m(self) -> float:
        """Distance between the two optical centres, metres."""
        return float(np.linalg.norm(self.T))

    @property
    def doffs_px(self) -> float:
        """cx_right − cx_left in pixels; the disparity offset of a rectified pair."""
        return self.right.cx - self.left.cx

    @property
    def focal_px(self) -> float:
        """The rectified focal length (left fx)."""
        return self.left.fx

    @property
    def Q(self) -> np.ndarray:
        """The 4×4 disparity-to-depth matrix of a rectified pair, as ``cv2.stereoRectify`` builds it.

        [X Y Z W]ᵀ = Q·[u v d 1]ᵀ gives Z/W = f·B/(d + doffs).
        """
        if not self.rectified:
            raise InputError("Q: the rig is not rectified; rectify it first (depthcloud.stereo.rectify)")
        f, cx, cy = self.left.fx, self.left.cx, self.left.cy
        tx = -self.baseline_m
        return np.array(
            [
                [1.0, 0.0, 0.0, -cx],
                [0.0, 1.0, 0.0, -cy],
                [0.0, 0.0, 0.0, f],
                [0.0, 0.0, -1.0 / tx, (cx - self.right.cx) / tx],
            ],
            dtype=np.float64,
        )

    def resized(self, width: int, height: int) -> StereoRig:
        """Both cameras resized (pose unchanged)."""
        return replace(self, left=self.left.resized(width, height), right=self.right.resized(width, height))

    def to_dict(self) -> dict[str, Any]:
        return {
            "left": self.left.to_dict(),
            "right": self.right.to_dict(),
            "R": np.asarray(self.R).tolist(),
            "T_m": np.asarray(self.T).tolist(),
            "rectified": self.rectified,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StereoRig:
        missing = [k for k in ("left", "right", "R", "T_m") if k not in data]
        if missing:
            raise InputError(f"rig: missing key(s) {', '.join(missing)}")
        unknown = sorted(set(data) - {"left", "right", "R", "T_m", "rectified"})
        if unknown:
            raise InputError(f"rig: unknown key(s) {', '.join(map(str, unknown))}")
        return cls(
            Intrinsics.from_dict(data["left"]), Intrinsics.from_dict(data["right"]),
            np.asarray(data["R"], dtype=np.float64), np.asarray(data["T_m"], dtype=np.float64),
            rectified=bool(data.get("rectified", False)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StereoRig):
            return NotImplemented
        return (
            self.left == other.left and self.right == other.right and self.rectified == other.rectified
            and np.array_equal(self.R, other.R) and np.array_equal(self.T, other.T)
        )

    def __hash__(self) -> int:
        return hash((self.left, self.right, self.rectified, self.R.tobytes(), self.T.tobytes()))
