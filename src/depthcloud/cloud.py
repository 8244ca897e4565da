"""PointCloud: valid points with optional colours and normals, and the operations on them.

points (N, 3) float32 metres; colors (N, 3) uint8 RGB; normals (N, 3) float32 unit vectors.
A cloud carries the name of the frame its coordinates are in (see ``FRAMES``) and an optional stamp.
Operations return new clouds and never modify their input. This module must not read or write files.

Named frames (all right-handed, metres):

* ``optical`` — OpenCV camera frame: x right, y down, z forward (what every source produces).
* ``zup`` — body frame as ROS and Rhino use it: x forward, y left, z up.
* ``opengl`` — x right, y up, z backward (three.js, OpenGL cameras).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import InputError

__all__ = ["FRAMES", "PointCloud", "frame_rotation"]

# Rotation taking optical-frame coordinates into each named frame: p_frame = R @ p_optical.
FRAMES: dict[str, np.ndarray] = {
    "optical": np.eye(3),
    "zup": np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
    "opengl": np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]),
}


def frame_rotation(src: str, dst: str) -> np.ndarray:
    """The 3×3 rotation taking coordinates in frame ``src`` to frame ``dst``."""
    for name in (src, dst):
        if name not in FRAMES:
            raise InputError(f"frame: expected one of {', '.join(FRAMES)}, got {name!r}")
    return FRAMES[dst] @ FRAMES[src].T


@dataclass(frozen=True, eq=False)
class PointCloud:
    """An unorganized point cloud.

    points: (N, 3) float32 metres, finite. colors: (N, 3) uint8 RGB or None.
    normals: (N, 3) float32 or None. frame: a name from ``FRAMES`` or any user label after a
    custom ``transform``. stamp: seconds (source clock) or None.
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    frame: str = "optical"
    stamp: float | None = None

    def __post_init__(self) -> None:
        pts = v.points("points", self.points)
        object.__setattr__(self, "points", pts)
        if self.colors is not None:
            object.__setattr__(self, "colors", v.colors("colors", self.colors, len(pts)))
        if self.normals is not None:
            nrm = v.array("normals", self.normals, shape=(len(pts), 3), kinds="f", nonempty=False,
                          expected=f"({len(pts)}, 3)")
            object.__setattr__(self, "normals", np.ascontiguousarray(nrm, dtype=np.float32))

    @classmethod
    def _trusted(
        cls, points: np.ndarray, colors: np.ndarray | None = None, normals: np.ndarray | None = None,
        frame: str = "optical", stamp: float | None = None,
    ) -> PointCloud:
        """Build without validation, for arrays a kernel of this package just made."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "points", points)
        object.__setattr__(obj, "colors", colors)
        object.__setattr__(obj, "normals", normals)
        object.__setattr__(obj, "frame", frame)
        object.__setattr__(obj, "stamp", stamp)
        return obj

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __repr__(self) -> str:
        extras = [n for n in ("colors", "normals") if getattr(self, n) is not None]
        return f"PointCloud({len(self)} points{', ' if extras else ''}{', '.join(extras)}, frame={self.frame!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PointCloud):
            return NotImplemented
        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        return (
            same(self.points, other.points) and same(self.colors, other.colors)
            and same(self.normals, other.normals) and self.frame == other.frame
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def has_colors(self) -> bool:
        return self.colors is not None

    @property
    def has_normals(self) -> bool:
        return self.normals is not None

    def select(self, index: Any) -> PointCloud:
        """The points picked by a boolean mask or an integer index array, with their attributes."""
        return PointCloud._trusted(
            np.ascontiguousarray(self.points[index]),
            None if self.colors is None else np.ascontiguousarray(self.colors[index]),
            None if self.normals is None else np.ascontiguousarray(self.normals[index]),
            self.frame, self.stamp,
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min xyz, max xyz) as float64 (3,) arrays; raises on an empty cloud."""
        if len(self) == 0:
            raise InputError("bounds: the cloud is empty")
        return self.points.min(axis=0).astype(np.float64), self.points.max(axis=0).astype(np.float64)

    # -- operations ---------------------------------------------------------------------------
    def crop(self, min_xyz: Any, max_xyz: Any) -> PointCloud:
        """Points inside the axis-aligned box [min_xyz, max_xyz] (inclusive), metres, in this frame."""
        lo = v.array("min_xyz", min_xyz, shape=(3,), kinds="fiu").astype(np.float32)
        hi = v.array("max_xyz", max_xyz, shape=(3,), kinds="fiu").astype(np.float32)
        if np.any(lo > hi):
            raise InputError(f"crop: min_xyz {lo.tolist()} exceeds max_xyz {hi.tolist()}")
        p = self.points
        keep = np.all((p >= lo) & (p <= hi), axis=1)
        return self.select(keep)

    def within_range(self, min_m: float = 0.0, max_m: float = np.inf) -> PointCloud:
        """Points whose distance from the origin lies in [min_m, max_m] metres."""
        lo = v.number("min_m", min_m, nonnegative=True)
        hi = v.number("max_m", max_m, positive=True, allow_inf=True)
        if lo > hi:
            raise InputError(f"within_range: min_m {lo} exceeds max_m {hi}")
        r2 = np.einsum("ij,ij->i", self.points, self.points)
        return self.select((r2 >= lo * lo) & (r2 <= hi * hi))

    def voxel_downsample(self, voxel_m: float) -> PointCloud:
        """One point per occupied voxel of edge ``voxel_m`` metres: the centroid of its points.

        Colours are averaged (rounded), normals averaged and renormalised. Voxels are aligned to
        the origin of the frame, as Open3D's ``voxel_down_sample`` aligns them to the cloud's minimum;
        the output is ordered by voxel key.
        """
        size = v.number("voxel_m", voxel_m, positive=True)
        n = len(self)
        if n == 0:
            return self
        keys = np.floor(self.points.astype(np.float64) / size).astype(np.int64)
        _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        m = counts.shape[0]

        def mean(values: np.ndarray) -> np.ndarray:
            out = np.zeros((m, values.shape[1]), dtype=np.float64)
            np.add.at(out, inverse, values.astype(np.float64))
            return out / counts[:, None]

        pts = mean(self.points).astype(np.float32)
        cols = None if self.colors is None else np.clip(np.rint(mean(self.colors)), 0, 255).astype(np.uint8)
        nrm = None
        if self.normals is not None:
            nm = mean(self.normals)
            length = np.linalg.norm(nm, axis=1, keepdims=True)
            nrm = (nm / np.where(length > 0, length, 1.0)).astype(np.float32)
        return PointCloud._trusted(pts, cols, nrm, self.frame, self.stamp)

    def remove_statistical_outliers(self, *, neighbors: int = 20, std_ratio: float = 2.0) -> PointCloud:
        """Drop points whose mean distance to their ``neighbors`` nearest points exceeds
        mean + std_ratio·std over the cloud (Open3D's and PCL's rule)."""
        k = v.integer("neighbors", neighbors, low=1)
        ratio = v.number("std_ratio", std_ratio, positive=True)
        n = len(self)
        if n <= k:
            return self
        from scipy.spatial import cKDTree

        tree = cKDTree(self.points)
        dist, _ = tree.query(self.points, k=k + 1, workers=-1)
        mean_d = dist[:, 1:].mean(axis=1)
        thresh = mean_d.mean() + ratio * mean_d.std()
        return self.select(mean_d <= thresh)

    def transform(self, T: Any, *, frame: str | None = None) -> PointCloud:
        """Apply a 4×4 rigid (or affine) transform; ``frame`` names the frame of the result."""
        Tm = v.array("T", T, shape=(4, 4), kinds="fiu").astype(np.float64)
        if not np.isfinite(Tm).all():
            raise InputError("T: contains NaN or inf")
        if not np.allclose(Tm[3], [0, 0, 0, 1]):
            raise InputError(f"T: expected a last row of [0, 0, 0, 1], got {Tm[3].tolist()}")
        R, t = Tm[:3, :3], Tm[:3, 3]
        pts = (self.points.astype(np.float64) @ R.T + t).astype(np.float32)
        nrm = None
        if self.normals is not None:
            nm = self.normals.astype(np.float64) @ np.linalg.inv(R).T
            nrm = (nm / np.maximum(np.linalg.norm(nm, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return PointCloud._trusted(pts, self.colors, nrm, self.frame if frame is None else frame, self.stamp)

    def to_frame(self, name: str) -> PointCloud:
        """The same points expressed in the named frame (``optical``, ``zup``, ``opengl``)."""
        R = frame_rotation(self.frame, name)
        T = np.eye(4)
        T[:3, :3] = R
        return self.transform(T, frame=name)

    def with_colors(self, colors: Any) -> PointCloud:
        return replace(self, colors=colors)

    @staticmethod
    def concatenate(clouds: list[PointCloud]) -> PointCloud:
        """One cloud from several in the same frame; colours/normals kept only if all have them."""
        if not clouds:
            raise InputError("concatenate: expected at least one cloud")
        frames = {c.frame for c in clouds}
        if len(frames) > 1:
            raise InputError(f"concatenate: clouds are in different frames {sorted(frames)}")
        pts = np.concatenate([c.points for c in clouds])
        cols = np.concatenate([c.colors for c in clouds]) if all(c.colors is not None for c in clouds) else None  # type: ignore[misc]
        nrm = np.concatenate([c.normals for c in clouds]) if all(c.normals is not None for c in clouds) else None  # type: ignore[misc]
        return PointCloud._trusted(pts, cols, nrm, clouds[0].frame, clouds[0].stamp)
