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
from depthcloud._jit import HAVE_NUMBA
from depthcloud.errors import InputError

__all__ = ["FRAMES", "PointCloud", "frame_rotation"]

# The voxel grid has compiled kernels; the numpy fallback gives the same result, slower.
_HAVE_NUMBA = HAVE_NUMBA
if _HAVE_NUMBA:
    from numba import njit

    @njit(cache=True, nogil=True)
    def _voxel_keys(points, size, keys, kmin, kmax):  # type: ignore[no-untyped-def]
        for j in range(3):
            kmin[j] = np.iinfo(np.int64).max
            kmax[j] = np.iinfo(np.int64).min
        for i in range(points.shape[0]):
            for j in range(3):
                k = np.int64(np.floor(np.float64(points[i, j]) / size))
                keys[i, j] = k
                kmin[j] = min(kmin[j], k)
                kmax[j] = max(kmax[j], k)

    @njit(cache=True, nogil=True)
    def _dense_ids(lin, ncell, vid):  # type: ignore[no-untyped-def]
        ids = np.full(ncell, -1, np.int64)
        for i in range(lin.shape[0]):
            ids[lin[i]] = 0
        m = 0
        for c in range(ncell):
            if ids[c] == 0:
                ids[c] = m
                m += 1
        for i in range(lin.shape[0]):
            vid[i] = ids[lin[i]]
        return m

    @njit(cache=True, nogil=True)
    def _sorted_ids(lin, order, vid):  # type: ignore[no-untyped-def]
        m = -1
        prev = lin[order[0]] - 1
        for i in range(order.shape[0]):
            cur = lin[order[i]]
            if cur != prev:
                m += 1
                prev = cur
            vid[order[i]] = m
        return m + 1

    @njit(cache=True, nogil=True)
    def _accumulate(vid, values, sums):  # type: ignore[no-untyped-def]
        for i in range(vid.shape[0]):
            k = vid[i]
            for j in range(values.shape[1]):
                sums[k, j] += values[i, j]


def _affine(values: np.ndarray, M: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, 3) float64 rows M·x + t, one column at a time in float64: an (N, 3) @ (3, 3) matmul goes
    through BLAS, whose thread pool makes it ~10× slower on a busy machine."""
    x = values.astype(np.float64)
    out = np.empty((x.shape[0], 3), np.float64)
    for i in range(3):
        out[:, i] = x[:, 0] * M[i, 0] + x[:, 1] * M[i, 1] + x[:, 2] * M[i, 2] + t[i]
    return out


def _voxel_ids(points: np.ndarray, size: float) -> tuple[np.ndarray, int]:
    """Voxel number of every point (0..m−1, numbered in (x, y, z) voxel-index order) and m."""
    n = points.shape[0]
    if _HAVE_NUMBA:
        keys = np.empty((n, 3), np.int64)
        kmin = np.empty(3, np.int64)
        kmax = np.empty(3, np.int64)
        _voxel_keys(points, size, keys, kmin, kmax)
        keys -= kmin
        dims = kmax - kmin + 1
    else:
        keys = np.floor(points.astype(np.float64) / size).astype(np.int64)
        keys -= keys.min(axis=0)
        dims = keys.max(axis=0) + 1
    cells = float(dims[0]) * float(dims[1]) * float(dims[2])
    if cells < 2.0**62:
        # A linear index ordered like the (x, y, z) keys: one int64 sort instead of a row-unique.
        lin = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
    else:
        lin = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
        cells = float(lin.max() + 1)
    vid = np.empty(n, np.int64)
    if cells <= max(4.0 * n, 2.0**20):  # dense enough to count: no sort at all
        ncell = int(cells)
        if _HAVE_NUMBA:
            return vid, int(_dense_ids(lin, ncell, vid))
        occupied = np.bincount(lin, minlength=ncell) > 0
        ids = np.cumsum(occupied) - 1
        return ids[lin], int(occupied.sum())
    order = np.argsort(lin)
    if _HAVE_NUMBA:
        return vid, int(_sorted_ids(lin, order, vid))
    lin_s = lin[order]
    new = np.concatenate(([True], lin_s[1:] != lin_s[:-1]))
    vid[order] = np.cumsum(new) - 1
    return vid, int(new.sum())


def _voxel_mean(vid: np.ndarray, m: int, counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(m, C) float64 mean of ``values`` (N, C) per voxel number."""
    if _HAVE_NUMBA:
        sums = np.zeros((m, values.shape[1]), np.float64)
        _accumulate(vid, values, sums)
    else:
        sums = np.stack([np.bincount(vid, weights=values[:, j], minlength=m) for j in range(values.shape[1])], axis=1)
    return sums / counts[:, None]

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
        """The points picked by a boolean mask (N,) or an integer index array, with their attributes."""
        if isinstance(index, slice):
            return self._take(index)
        if isinstance(index, (list, tuple)) and len(index) == 0:
            index = np.empty(0, np.int64)  # an empty list would otherwise be float64
        idx = v.array("index", index, ndim=1, kinds="biu", nonempty=False, expected="(N,)")
        n = len(self)
        if idx.dtype == bool and idx.shape[0] != n:
            raise InputError(f"index: expected a boolean mask of {n} points, got {idx.shape[0]}")
        if idx.dtype != bool and idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx.max() if idx.max() >= n else idx.min()
            raise InputError(f"index: expected indices in 0..{n - 1}, got {bad}")
        return self._take(idx)

    def _take(self, index: Any) -> PointCloud:
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
        return self._take(keep)

    def within_range(self, min_m: float = 0.0, max_m: float = np.inf) -> PointCloud:
        """Points whose distance from the origin lies in [min_m, max_m] metres."""
        lo = v.number("min_m", min_m, nonnegative=True)
        hi = v.number("max_m", max_m, positive=True, allow_inf=True)
        if lo > hi:
            raise InputError(f"within_range: min_m {lo} exceeds max_m {hi}")
        r2 = np.einsum("ij,ij->i", self.points, self.points)
        return self._take((r2 >= lo * lo) & (r2 <= hi * hi))

    def voxel_downsample(self, voxel_m: float) -> PointCloud:
        """One point per occupied voxel of edge ``voxel_m`` metres: the centroid of its points.

        Colours are averaged (rounded), normals averaged and renormalised. Voxels are aligned to the
        origin of the frame (voxel i spans [i·voxel_m, (i+1)·voxel_m) on each axis), so the grid does
        not move when the cloud is cropped or a new frame arrives; Open3D's ``voxel_down_sample``
        instead aligns its grid to the cloud's minimum minus half a voxel. The output is ordered by
        voxel index (x, then y, then z).
        """
        size = v.number("voxel_m", voxel_m, positive=True)
        n = len(self)
        if n == 0:
            return self
        if float(np.abs(self.points).max()) / size >= 2.0**62:
            raise InputError(f"voxel_m: {size} is too small for the extent of this cloud")
        vid, m = _voxel_ids(self.points, size)
        counts = np.bincount(vid, minlength=m).astype(np.float64)
        pts = _voxel_mean(vid, m, counts, self.points).astype(np.float32)
        cols = None
        if self.colors is not None:
            cols = np.clip(np.rint(_voxel_mean(vid, m, counts, self.colors)), 0, 255).astype(np.uint8)
        nrm = None
        if self.normals is not None:
            nm = _voxel_mean(vid, m, counts, self.normals)
            length = np.linalg.norm(nm, axis=1, keepdims=True)
            nrm = (nm / np.where(length > 0, length, 1.0)).astype(np.float32)
        return PointCloud._trusted(pts, cols, nrm, self.frame, self.stamp)

    def remove_statistical_outliers(self, *, neighbors: int = 20, std_ratio: float = 2.0) -> PointCloud:
        """Drop points whose mean distance to their ``neighbors`` nearest other points exceeds
        mean + std_ratio·std of that distance over the cloud (sample std), PCL's
        ``StatisticalOutlierRemoval`` rule. Open3D's ``remove_statistical_outlier`` counts the point
        itself among its neighbours: ``nb_neighbors = neighbors + 1`` there keeps the same points.
        Clouds with no more than ``neighbors`` points are returned unchanged."""
        k = v.integer("neighbors", neighbors, low=1)
        ratio = v.number("std_ratio", std_ratio, positive=True)
        n = len(self)
        if n <= k:
            return self
        from scipy.spatial import cKDTree

        tree = cKDTree(self.points)
        dist, _ = tree.query(self.points, k=k + 1, workers=-1)
        mean_d = dist[:, 1:].mean(axis=1)
        thresh = mean_d.mean() + ratio * mean_d.std(ddof=1)
        return self._take(mean_d <= thresh)

    def transform(self, T: Any, *, frame: str | None = None) -> PointCloud:
        """Apply a 4×4 rigid (or affine) transform; ``frame`` names the frame of the result."""
        Tm = v.array("T", T, shape=(4, 4), kinds="fiu").astype(np.float64)
        if not np.isfinite(Tm).all():
            raise InputError("T: contains NaN or inf")
        if not np.allclose(Tm[3], [0, 0, 0, 1]):
            raise InputError(f"T: expected a last row of [0, 0, 0, 1], got {Tm[3].tolist()}")
        R, t = Tm[:3, :3], Tm[:3, 3]
        pts = _affine(self.points, R, t).astype(np.float32)
        nrm = None
        if self.normals is not None:
            # normals take the inverse transpose: n' = R⁻ᵀ·n
            nm = _affine(self.normals, np.linalg.inv(R).T, np.zeros(3))
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
        for i, c in enumerate(clouds):
            if not isinstance(c, PointCloud):
                raise InputError(f"concatenate: expected PointClouds, got {type(c).__name__} at {i}")
        frames = {c.frame for c in clouds}
        if len(frames) > 1:
            raise InputError(f"concatenate: clouds are in different frames {sorted(frames)}")
        pts = np.concatenate([c.points for c in clouds])
        cols = np.concatenate([c.colors for c in clouds]) if all(c.colors is not None for c in clouds) else None  # type: ignore[misc]
        nrm = np.concatenate([c.normals for c in clouds]) if all(c.normals is not None for c in clouds) else None  # type: ignore[misc]
        return PointCloud._trusted(pts, cols, nrm, clouds[0].frame, clouds[0].stamp)
