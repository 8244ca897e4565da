"""Surface normals: from the pixel grid of a depth image, or from the k nearest neighbours of any cloud.

Convention: normals are unit vectors in the frame of the points, oriented towards the viewpoint (the
camera at the origin unless told otherwise): n·(viewpoint − p) ≥ 0.

* Organized data (:func:`depth_normals`, :func:`cloud_with_normals`): the cross product of the
  horizontal and vertical differences of neighbouring pixels' points — central differences where
  both neighbours are on the same surface as the pixel, one-sided where only one is. A neighbour that
  is invalid, or across a depth jump (the edge rule of :mod:`depthcloud.surface._organized`), is not
  used; a pixel with no usable horizontal or vertical neighbour has no normal.
* Any cloud (:func:`estimate_normals`): principal component analysis of the k nearest points (the
  point itself included, as Open3D and PCL count it): the normal is the eigenvector of the smallest
  eigenvalue of their covariance. The compiled path finds neighbours with uniform grids, finest
  first (a point moves to a grid of twice the cell size until its k nearest are proven to lie in
  the 3×3×3 block around it; isolated points end in a k-d tree) and solves each 3×3 eigenproblem in
  closed form; the numpy path uses scipy's cKDTree and a batched ``eigh``. Both give the same
  neighbours, so the same normals to rounding.

This module must not import sources, the server or the CLI.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud._jit import HAVE_NUMBA
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError
from depthcloud.surface._organized import edge_coefficients, edge_ok, organized_points

__all__ = ["cloud_with_normals", "depth_normals", "estimate_normals"]

_HAVE_NUMBA = HAVE_NUMBA
# Grids the search may coarsen through (each twice the cell size of the last) before the k-d tree.
_LEVELS = 8


# -- organized data -----------------------------------------------------------------------------

def _differences(P: np.ndarray, ok_next: np.ndarray, axis: int) -> np.ndarray:
    """(H, W, 3) difference of each pixel's neighbours along ``axis`` (central where both sides are
    usable, else one-sided; NaN where neither). ``ok_next[i]``: pixel i and i+1 are joined."""
    h, w = P.shape[:2]
    fwd = np.zeros((h, w), bool)   # the next pixel is usable
    back = np.zeros((h, w), bool)  # the previous pixel is usable
    nxt = np.full_like(P, np.nan)
    prv = np.full_like(P, np.nan)
    if axis == 1:
        fwd[:, :-1], back[:, 1:] = ok_next, ok_next
        nxt[:, :-1], prv[:, 1:] = P[:, 1:], P[:, :-1]
    else:
        fwd[:-1], back[1:] = ok_next, ok_next
        nxt[:-1], prv[1:] = P[1:], P[:-1]
    hi = np.where(fwd[..., None], nxt, P)
    lo = np.where(back[..., None], prv, P)
    d = hi - lo
    d[~(fwd | back)] = np.nan
    return d


def depth_normals(
    depth: np.ndarray,
    intrinsics: Any,
    *,
    max_edge_rel: float = 0.05,
    max_edge_disp_px: float | None = None,
    baseline_m: float | None = None,
    min_depth_m: float = 0.0,
    max_depth_m: float = np.inf,
    undistort: bool = True,
) -> np.ndarray:
    """Per-pixel normals of a depth image, oriented towards the camera.

    depth: (H, W) float32 metres (0, NaN, inf or outside [min_depth_m, max_depth_m] = invalid).
    intrinsics: the Intrinsics of ``depth``. max_edge_rel, max_edge_disp_px, baseline_m: when two
    neighbours are on one surface, as in :func:`depthcloud.surface.mesh_from_depth`.
    Returns (H, W, 3) float32 unit normals in the optical frame; NaN where a pixel has none.
    """
    P = organized_points(depth, intrinsics, min_depth_m=min_depth_m, max_depth_m=max_depth_m, undistort=undistort)
    a, b = edge_coefficients(intrinsics, max_edge_rel=max_edge_rel, max_edge_disp_px=max_edge_disp_px,
                             baseline_m=baseline_m)
    z = P[..., 2]
    dx = _differences(P, edge_ok(z[:, :-1], z[:, 1:], a, b), axis=1)
    dy = _differences(P, edge_ok(z[:-1], z[1:], a, b), axis=0)
    n = np.cross(dx.astype(np.float64), dy.astype(np.float64))
    # Towards the camera at the origin: n·(0 − p) ≥ 0.
    flip = np.einsum("hwc,hwc->hw", n, P.astype(np.float64)) > 0
    n[flip] = -n[flip]
    length = np.linalg.norm(n, axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = n / length
    out[~(length[..., 0] > 0)] = np.nan
    return out.astype(np.float32)


def cloud_with_normals(
    depth: np.ndarray,
    intrinsics: Any,
    *,
    color: np.ndarray | None = None,
    max_edge_rel: float = 0.05,
    max_edge_disp_px: float | None = None,
    baseline_m: float | None = None,
    min_depth_m: float = 0.0,
    max_depth_m: float = np.inf,
    undistort: bool = True,
) -> PointCloud:
    """The points of a depth image with their :func:`depth_normals` (and colours), in the optical frame.

    Only pixels that have a normal become points (row-major pixel order, like ``Unprojector``);
    isolated valid pixels, with no neighbour on their surface, are left out.
    color: (H, W, 3) uint8 RGB aligned with depth, or None.
    """
    normals = depth_normals(depth, intrinsics, max_edge_rel=max_edge_rel, max_edge_disp_px=max_edge_disp_px,
                            baseline_m=baseline_m, min_depth_m=min_depth_m, max_depth_m=max_depth_m,
                            undistort=undistort)
    rgb = None if color is None else v.color_image("color", color, normals.shape[:2])
    P = organized_points(depth, intrinsics, min_depth_m=min_depth_m, max_depth_m=max_depth_m, undistort=undistort)
    keep = np.isfinite(normals[..., 0])
    return PointCloud._trusted(np.ascontiguousarray(P[keep]), None if rgb is None else np.ascontiguousarray(rgb[keep]),
                               np.ascontiguousarray(normals[keep]), "optical", None)


# -- any cloud: k nearest neighbours + PCA ----------------------------------------------------------

if _HAVE_NUMBA:
    from numba import njit, prange

    @njit(cache=True, nogil=True)
    def _smallest_eigvec(c00, c01, c02, c11, c12, c22):  # type: ignore[no-untyped-def]
        """Unit eigenvector of the smallest eigenvalue of a symmetric 3×3 matrix: the eigenvalues in
        closed form (the trigonometric solution of the characteristic cubic), the vector as the
        largest cross product of two rows of (C − λ·I)."""
        scale = max(abs(c00), abs(c01), abs(c02), abs(c11), abs(c12), abs(c22))
        if scale == 0.0:
            return 0.0, 0.0, 0.0
        c00 /= scale
        c01 /= scale
        c02 /= scale
        c11 /= scale
        c12 /= scale
        c22 /= scale
        q = (c00 + c11 + c22) / 3.0
        p1 = c01 * c01 + c02 * c02 + c12 * c12
        p2 = (c00 - q) ** 2 + (c11 - q) ** 2 + (c22 - q) ** 2 + 2.0 * p1
        if p2 <= 1e-30:  # a multiple of the identity: every direction is an eigenvector
            return 0.0, 0.0, 0.0
        p = np.sqrt(p2 / 6.0)
        b00, b11, b22 = (c00 - q) / p, (c11 - q) / p, (c22 - q) / p
        b01, b02, b12 = c01 / p, c02 / p, c12 / p
        r = 0.5 * (b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02))
        r = min(max(r, -1.0), 1.0)
        lam = q + 2.0 * p * np.cos(np.arccos(r) / 3.0 + 2.0 * np.pi / 3.0)
        m00, m11, m22 = c00 - lam, c11 - lam, c22 - lam
        # rows: (m00, c01, c02), (c01, m11, c12), (c02, c12, m22)
        ax, ay, az = c01 * c12 - c02 * m11, c02 * c01 - m00 * c12, m00 * m11 - c01 * c01
        bx, by, bz = c01 * m22 - c02 * c12, c02 * c02 - m00 * m22, m00 * c12 - c01 * c02
        cx, cy, cz = m11 * m22 - c12 * c12, c12 * c02 - c01 * m22, c01 * c12 - m11 * c02
        na, nb, nc = ax * ax + ay * ay + az * az, bx * bx + by * by + bz * bz, cx * cx + cy * cy + cz * cz
        if na >= nb and na >= nc:
            x, y, z, n2 = ax, ay, az, na
        elif nb >= nc:
            x, y, z, n2 = bx, by, bz, nb
        else:
            x, y, z, n2 = cx, cy, cz, nc
        if n2 <= 1e-24:
            # Rank one: the two smallest eigenvalues are equal (points on a line); any vector
            # orthogonal to the largest row is a smallest eigenvector.
            rx, ry, rz = m00, c01, c02
            if m11 * m11 + c01 * c01 + c12 * c12 > rx * rx + ry * ry + rz * rz:
                rx, ry, rz = c01, m11, c12
            if m22 * m22 + c02 * c02 + c12 * c12 > rx * rx + ry * ry + rz * rz:
                rx, ry, rz = c02, c12, m22
            if abs(rx) <= abs(ry) and abs(rx) <= abs(rz):
                x, y, z = 0.0, -rz, ry
            elif abs(ry) <= abs(rz):
                x, y, z = rz, 0.0, -rx
            else:
                x, y, z = -ry, rx, 0.0
            n2 = x * x + y * y + z * z
            if n2 == 0.0:
                return 0.0, 0.0, 0.0
        inv = 1.0 / np.sqrt(n2)
        return x * inv, y * inv, z * inv

    @njit(cache=True, nogil=True)
    def _cell_keys(points, origin, size, dims, keys):  # type: ignore[no-untyped-def]
        for i in range(points.shape[0]):
            ix = min(max(np.int64((points[i, 0] - origin[0]) / size), 0), dims[0] - 1)
            iy = min(max(np.int64((points[i, 1] - origin[1]) / size), 0), dims[1] - 1)
            iz = min(max(np.int64((points[i, 2] - origin[2]) / size), 0), dims[2] - 1)
            keys[i] = (ix * dims[1] + iy) * dims[2] + iz

    @njit(cache=True, nogil=True)
    def _insert(d, j, found, k, best_d, best_i):  # type: ignore[no-untyped-def]
        """Put candidate j at squared distance d into the sorted k best (by distance, then index:
        a deterministic tie rule); returns the new count."""
        if found < k:
            s = found
            found += 1
        elif d < best_d[k - 1] or (d == best_d[k - 1] and j < best_i[k - 1]):
            s = k - 1
        else:
            return found
        while s > 0 and (best_d[s - 1] > d or (best_d[s - 1] == d and best_i[s - 1] > j)):
            best_d[s] = best_d[s - 1]
            best_i[s] = best_i[s - 1]
            s -= 1
        best_d[s] = d
        best_i[s] = j
        return found

    @njit(cache=True, nogil=True)
    def _margin(p, c, ring, origin, size):  # type: ignore[no-untyped-def]
        """Distance from p to the nearest face of the cube of cells within ``ring`` of cell c:
        every point outside that cube is at least this far away."""
        m = np.inf
        for a in range(3):
            lo = origin[a] + (c[a] - ring) * size
            m = min(m, p[a] - lo, lo + (2 * ring + 1) * size - p[a])
        return m

    @njit(cache=True, nogil=True)
    def _pca_normal(points, i, best_i, found, view, out):  # type: ignore[no-untyped-def]
        """Smallest principal axis of the found neighbours, turned towards ``view``, into out[i]."""
        px, py, pz = np.float64(points[i, 0]), np.float64(points[i, 1]), np.float64(points[i, 2])
        # Moments about the point itself, which cancels most of the magnitude of the coordinates.
        sx = sy = sz = 0.0
        sxx = sxy = sxz = syy = syz = szz = 0.0
        for t in range(found):
            j = best_i[t]
            ex = np.float64(points[j, 0]) - px
            ey = np.float64(points[j, 1]) - py
            ez = np.float64(points[j, 2]) - pz
            sx += ex
            sy += ey
            sz += ez
            sxx += ex * ex
            sxy += ex * ey
            sxz += ex * ez
            syy += ey * ey
            syz += ey * ez
            szz += ez * ez
        m = np.float64(found)
        mx, my, mz = sx / m, sy / m, sz / m
        nx, ny, nz = _smallest_eigvec(sxx / m - mx * mx, sxy / m - mx * my, sxz / m - mx * mz,
                                      syy / m - my * my, syz / m - my * mz, szz / m - mz * mz)
        if nx * (view[0] - px) + ny * (view[1] - py) + nz * (view[2] - pz) < 0.0:
            nx, ny, nz = -nx, -ny, -nz
        out[i, 0] = nx
        out[i, 1] = ny
        out[i, 2] = nz

    @njit(parallel=True, cache=True, nogil=True)
    def _knn_pca(points, cells, starts, origin, size, dims, k, view, todo, out, far):  # type: ignore[no-untyped-def]
        """Normals of the ``todo`` points of ``points`` sorted by cell (``cells``: the sorted occupied
        cell keys, ``starts``: where each cell's points begin). Each point scans the 3×3×3 block of
        cells around its own — nine runs of consecutive keys, so nine contiguous runs of points; a
        point whose k-th neighbour may lie outside the block (not proven closer than the block's
        faces) is marked in ``far`` for a coarser grid."""
        m = cells.shape[0]
        chunk = 64
        for ch in prange((m + chunk - 1) // chunk):
            best_d = np.empty(k, np.float64)
            best_i = np.empty(k, np.int64)
            runs = np.empty((9, 2), np.int64)
            c = np.empty(3, np.int64)
            p = np.empty(3, np.float64)
            for ci in range(ch * chunk, min(m, (ch + 1) * chunk)):
                any_todo = False
                for i in range(starts[ci], starts[ci + 1]):
                    any_todo = any_todo or todo[i]
                if not any_todo:
                    continue
                key = cells[ci]
                c[0] = key // (dims[1] * dims[2])
                c[1] = (key // dims[2]) % dims[1]
                c[2] = key % dims[2]
                whole = True  # does the block cover the whole grid (then it holds every point)?
                for a in range(3):
                    whole = whole and c[a] <= 1 and c[a] >= dims[a] - 2
                zlo, zhi = max(c[2] - 1, 0), min(c[2] + 1, dims[2] - 1)
                nruns = 0
                for q in range(9):
                    ix, iy = c[0] + q // 3 - 1, c[1] + q % 3 - 1
                    if ix < 0 or ix >= dims[0] or iy < 0 or iy >= dims[1]:
                        continue
                    base = (ix * dims[1] + iy) * dims[2]
                    lo = np.searchsorted(cells, base + zlo)
                    hi = lo
                    while hi < m and cells[hi] <= base + zhi:
                        hi += 1
                    if hi > lo:
                        runs[nruns, 0], runs[nruns, 1] = starts[lo], starts[hi]
                        nruns += 1
                for i in range(starts[ci], starts[ci + 1]):
                    if not todo[i]:
                        continue
                    p[0], p[1], p[2] = points[i, 0], points[i, 1], points[i, 2]
                    found = 0
                    for r in range(nruns):
                        for j in range(runs[r, 0], runs[r, 1]):
                            ex = np.float64(points[j, 0]) - p[0]
                            ey = np.float64(points[j, 1]) - p[1]
                            ez = np.float64(points[j, 2]) - p[2]
                            d = ex * ex + ey * ey + ez * ez
                            if found < k or d <= best_d[k - 1]:
                                found = _insert(d, j, found, k, best_d, best_i)
                    if not whole and (found < k or best_d[k - 1] > _margin(p, c, 1, origin, size) ** 2):
                        far[i] = True
                        continue
                    _pca_normal(points, i, best_i, found, view, out)


def _grid_for(points: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """(origin, cell size) of the finest grid: cells of 1/0.7 times the distance to the k-th
    neighbour of the densest quarter of the points, estimated on a subsample (whose k·m/n-th
    neighbour is as far as the full cloud's k-th). Dense parts finish on this grid with few
    candidates each; sparser parts move on to coarser ones (cheaper, measured, than one grid sized
    for the median point)."""
    from scipy.spatial import cKDTree

    lo = points.min(axis=0).astype(np.float64)
    extent = np.maximum(points.max(axis=0).astype(np.float64) - lo, 1e-9)
    n = points.shape[0]
    floor = float(extent.max()) / 2.0**20  # keeps every key within 20 bits per axis
    rng = np.random.default_rng(0)
    m = min(n, 20_000)
    sub = points if m == n else points[rng.choice(n, m, replace=False)]
    kk = max(1, min(m - 1, round(k * m / n)))
    probe = sub[rng.choice(m, min(m, 2000), replace=False)]
    dist, _ = cKDTree(sub).query(probe, k=kk + 1)  # +1: the probe itself is in the subsample
    radius = float(np.percentile(dist[:, -1], 25))
    size = radius / 0.7 if radius > 0 else float(np.prod(extent) / n) ** (1.0 / 3.0)
    return lo, max(size, floor)


def _estimate_numba(points: np.ndarray, k: int, view: np.ndarray) -> np.ndarray:
    """Grid search, finest grid first: a point whose neighbours are not proven inside its 3×3×3
    block goes to a grid of twice the cell size (sparse parts of a cloud, far from the sensor), and
    what is left after _LEVELS grids to the k-d tree."""
    n = points.shape[0]
    origin, size = _grid_for(points, k)
    extent = np.maximum(points.max(axis=0).astype(np.float64) - origin, 1e-9)
    out = np.empty(points.shape, np.float32)
    todo = np.ones(n, bool)
    keys = np.empty(n, np.int64)
    for _ in range(_LEVELS):
        dims = np.minimum(np.floor(extent / size).astype(np.int64) + 1, 2**20)
        _cell_keys(points, origin, size, dims, keys)
        # Points sorted by cell: each cell's points are contiguous, and neighbours near in memory.
        order = np.argsort(keys, kind="stable")
        cells, starts = np.unique(keys[order], return_index=True)
        starts = np.append(starts, n).astype(np.int64)
        todo_s = todo[order]
        out_s = np.empty(points.shape, np.float32)
        far_s = np.zeros(n, bool)
        _knn_pca(np.ascontiguousarray(points[order]), cells, starts, origin, size, dims, k, view, todo_s, out_s,
                 far_s)
        done = todo_s & ~far_s
        out[order[done]] = out_s[done]
        todo = np.zeros(n, bool)
        todo[order[far_s]] = True
        if not todo.any():
            return out
        size *= 2.0
    # Isolated points (outliers, stray far returns): a k-d tree finds their neighbours at any range.
    lonely = np.flatnonzero(todo)
    out[lonely] = _estimate_numpy(points, k, view, -1, subset=lonely)
    return out


def _estimate_numpy(points: np.ndarray, k: int, view: np.ndarray, workers: int,
                    subset: np.ndarray | None = None) -> np.ndarray:
    """Normals of ``points`` (or of ``points[subset]``) from a cKDTree query and a batched eigh."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    query = points if subset is None else points[subset]
    out = np.empty(query.shape, np.float32)
    step = 65536  # bounds the (step, k, 3) neighbour block in memory
    for s in range(0, query.shape[0], step):
        p = query[s:s + step].astype(np.float64)
        _, idx = tree.query(query[s:s + step], k=k, workers=workers)
        nb = points[idx.reshape(len(p), k)].astype(np.float64) - p[:, None, :]
        d = nb - nb.mean(axis=1, keepdims=True)
        cov = np.einsum("nki,nkj->nij", d, d) / k
        _, vecs = np.linalg.eigh(cov)
        nrm = vecs[:, :, 0]
        flip = np.einsum("ni,ni->n", nrm, view - p) < 0
        nrm[flip] = -nrm[flip]
        out[s:s + step] = nrm
    return out


def estimate_normals(cloud: PointCloud, *, k: int = 20, viewpoint: Any = (0.0, 0.0, 0.0),
                     workers: int = -1) -> PointCloud:
    """The cloud with normals from principal component analysis of each point's ``k`` nearest
    points (itself included), oriented towards ``viewpoint``.

    cloud: a PointCloud of at least 3 points (its normals, if any, are replaced).
    k: neighbours, 3 or more (fewer if the cloud is smaller). viewpoint: (3,) metres in the cloud's
    frame, where the sensor was (the origin for clouds in a camera's optical frame).
    workers: threads for scipy's tree query on the numpy path (-1 = all).
    Returns a new PointCloud; the normal of a point whose neighbours are all one point is 0.
    """
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    kk = v.integer("k", k, low=3)
    view = v.array("viewpoint", viewpoint, shape=(3,), kinds="fiu").astype(np.float64)
    if not np.isfinite(view).all():
        raise InputError("viewpoint: contains NaN or inf")
    n = len(cloud)
    if n < 3:
        raise InputError(f"cloud: normals need at least 3 points, got {n}")
    kk = min(kk, n)
    pts = np.ascontiguousarray(cloud.points)
    if _HAVE_NUMBA:
        normals = _estimate_numba(pts, kk, view)
    else:
        normals = _estimate_numpy(pts, kk, view, v.integer("workers", workers))
    return PointCloud._trusted(cloud.points, cloud.colors, normals, cloud.frame, cloud.stamp)
