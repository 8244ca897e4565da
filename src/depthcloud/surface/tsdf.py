"""TSDF fusion of posed depth frames into a sparse voxel-block volume, and marching cubes over it.

The volume is a set of blocks of ``BLOCK``³ voxels, keyed by their integer block coordinates. A block
exists only where some frame saw a surface within the truncation band, so memory grows with the
observed surface, not with its bounding box. Each voxel holds a truncated signed distance (in units
of the truncation distance, +1 in front of the surface, negative behind it), a weight (how many
frames saw it) and a mean colour.

Conventions:

* Voxel ``(x, y, z)`` (integers, world frame) sits at ``(x, y, z) · voxel_m``; block ``(bx, by, bz)``
  holds voxels ``bx·BLOCK … bx·BLOCK + BLOCK − 1`` along x, and so on.
* Poses are camera-to-world 4×4 matrices; the camera frame is OpenCV's (x right, y down, z forward).
* The signed distance is measured along the camera's z axis: ``sdf = depth(pixel) − z_voxel``,
  truncated to ``[−trunc, +trunc]``; voxels more than ``trunc`` behind the surface are left alone.
  Each voxel takes the depth of the pixel nearest to its projection.
* Marching cubes runs over every cube whose 8 corner voxels have weight ≥ ``min_weight``; a vertex
  lies on each cube edge whose ends change sign (negative = behind the surface). Cubes that straddle
  blocks read the neighbouring block, and every vertex is owned by one voxel edge, so blocks stitch
  without gaps or duplicated vertices. Triangles wind counter-clockwise seen from the free space the
  camera looked through.

Kernels are compiled with numba when it is available (``depthcloud._jit``); the numpy fallback
computes the same volume and the same mesh, slower. This module must not read files or import the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud._jit import HAVE_NUMBA
from depthcloud.camera import Intrinsics
from depthcloud.errors import InputError
from depthcloud.frame import Frame
from depthcloud.geometry import Unprojector
from depthcloud.surface.mesh import TriangleMesh

__all__ = ["BLOCK", "TSDFVolume", "fuse_frames"]

BLOCK = 8  # voxels per block side
_B3 = BLOCK**3
_KEY_BITS = 21
_KEY_OFF = 1 << (_KEY_BITS - 1)  # block coordinates must lie in [-2^20, 2^20)
_KEY_MASK = (1 << _KEY_BITS) - 1


# ================================================================================================
# Marching-cubes tables, derived (not typed in): corner c of a cube sits at offset
# (c & 1, c >> 1 & 1, c >> 2 & 1); an edge is (its lower corner, its axis).
# ================================================================================================


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a <= b else (b, a)


def _edges() -> tuple[np.ndarray, np.ndarray, dict[tuple[int, int], int]]:
    corner: list[int] = []
    axis: list[int] = []
    index: dict[tuple[int, int], int] = {}
    for ax in range(3):
        for c in range(8):
            if not (c >> ax) & 1:
                index[(c, c | (1 << ax))] = len(corner)
                corner.append(c)
                axis.append(ax)
    return np.array(corner, np.int64), np.array(axis, np.int64), index


def _faces() -> list[list[int]]:
    """The 6 cube faces as 4 corners each, counter-clockwise seen from outside the cube."""
    out = []
    for ax in range(3):
        p, q = (ax + 1) % 3, (ax + 2) % 3  # e_p × e_q = e_ax
        for side in (0, 1):
            ring = [(side << ax) | (a << p) | (b << q) for a, b in ((0, 0), (1, 0), (1, 1), (0, 1))]
            out.append(ring if side else ring[::-1])
    return out


def _triangle_table() -> np.ndarray:
    """(256, 3·T + 1) int64: per case (bit c set = corner c behind the surface), edge triples of its
    triangles, −1 padded. Per face, each crossed edge where the boundary walk leaves the inside is
    joined to where it entered; on a face with two inside corners on a diagonal the inside corners
    are cut off separately. The rule depends on the face's signs alone, so the two cubes sharing a
    face agree and the surface is closed. The loops, reversed, face the outside (positive side)."""
    _, _, edge_index = _edges()
    faces = _faces()
    tables: list[list[int]] = []
    for case in range(256):
        inside = [(case >> c) & 1 for c in range(8)]
        nxt: dict[int, int] = {}
        for ring in faces:
            ring_edges = [edge_index[_pair(ring[k], ring[(k + 1) % 4])] for k in range(4)]
            for k in range(4):
                if inside[ring[k]] and not inside[ring[(k + 1) % 4]]:  # leaves the inside on edge k
                    # walk back to where this inside run was entered
                    j = k
                    while inside[ring[j]]:
                        j = (j - 1) % 4
                    nxt[ring_edges[k]] = ring_edges[j]
        tris: list[int] = []
        seen: set[int] = set()
        for start in sorted(nxt):
            if start in seen:
                continue
            loop = []
            e = start
            while e not in seen:
                seen.add(e)
                loop.append(e)
                e = nxt[e]
            loop.reverse()
            for k in range(1, len(loop) - 1):
                tris += [loop[0], loop[k], loop[k + 1]]
        tables.append(tris)
    width = max(len(t) for t in tables) + 1
    out = np.full((256, width), -1, np.int64)
    for case, tris in enumerate(tables):
        out[case, : len(tris)] = tris
    return out


_EDGE_CORNER, _EDGE_AXIS, _ = _edges()
_TRI_TABLE = _triangle_table()
_TRI_COUNT = (np.sum(_TRI_TABLE >= 0, axis=1) // 3).astype(np.int64)
_CORNER_OFFSETS = np.array([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)], np.int64)


# ================================================================================================
# Block keys
# ================================================================================================


def _pack(coords: np.ndarray) -> np.ndarray:
    c = coords.astype(np.int64) + _KEY_OFF
    return (c[..., 0] << (2 * _KEY_BITS)) | (c[..., 1] << _KEY_BITS) | c[..., 2]


def _unpack(keys: np.ndarray) -> np.ndarray:
    k = keys.astype(np.int64)
    return np.stack([(k >> (2 * _KEY_BITS)) & _KEY_MASK, (k >> _KEY_BITS) & _KEY_MASK, k & _KEY_MASK], axis=-1) - _KEY_OFF


def _distortion(intr: Intrinsics) -> np.ndarray:
    """(5,) float64 k1, k2, p1, p2, k3 of a pinhole or 4/5-coefficient OpenCV camera."""
    if intr.model == "none":
        return np.zeros(5)
    if intr.model == "opencv" and len(intr.dist) <= 5:
        d = np.zeros(5)
        d[: len(intr.dist)] = intr.dist
        return d
    raise InputError(f"intrinsics: fusion projects through pinhole or 5-coefficient OpenCV distortion, got the "
                     f"{intr.model!r} model with {len(intr.dist)} coefficients; undistort the frames first")


def _distort(xn: Any, yn: Any, dist: np.ndarray) -> tuple[Any, Any]:
    """OpenCV's distortion (k1, k2, p1, p2, k3) of normalised coordinates; scalars or arrays."""
    r2 = xn * xn + yn * yn
    radial = 1.0 + r2 * (dist[0] + r2 * (dist[1] + r2 * dist[4]))
    xd = xn * radial + 2.0 * dist[2] * xn * yn + dist[3] * (r2 + 2.0 * xn * xn)
    yd = yn * radial + dist[2] * (r2 + 2.0 * yn * yn) + 2.0 * dist[3] * xn * yn
    return xd, yd


# ================================================================================================
# Kernels: numba when available, numpy otherwise (same arithmetic, same results)
# ================================================================================================

if HAVE_NUMBA:
    from numba import njit, prange

    _distort_nb = njit(cache=True, nogil=True)(_distort)

    @njit(cache=True, nogil=True)
    def _touch_nb(depth, rays, R, t, zmin, zmax, trunc, maxit, block_m, out):  # type: ignore[no-untyped-def]
        h, w = depth.shape
        lo, hi = -_KEY_OFF, _KEY_OFF
        n = 0
        last0 = last1 = last2 = np.int64(-1)
        blk = np.empty(3, np.int64)
        tmax = np.empty(3, np.float64)
        tdelta = np.empty(3, np.float64)
        stp = np.empty(3, np.int64)
        ray = np.empty(3, np.float64)
        for r in range(h):
            for c in range(w):
                d = np.float64(depth[r, c])
                if not (d > zmin and d <= zmax):
                    continue
                xr = np.float64(rays[r, c, 0])
                yr = np.float64(rays[r, c, 1])
                z0 = max(d - trunc, 0.0)
                z1 = d + trunc
                for a in range(3):
                    ray[a] = R[a, 0] * xr + R[a, 1] * yr + R[a, 2]
                    blk[a] = math.floor((ray[a] * z0 + t[a]) / block_m)
                    if ray[a] > 0.0:
                        stp[a] = 1
                        tmax[a] = (np.float64(blk[a] + 1) * block_m - t[a]) / ray[a]
                        tdelta[a] = block_m / ray[a]
                    elif ray[a] < 0.0:
                        stp[a] = -1
                        tmax[a] = (np.float64(blk[a]) * block_m - t[a]) / ray[a]
                        tdelta[a] = -block_m / ray[a]
                    else:
                        stp[a] = 0
                        tmax[a] = np.inf
                        tdelta[a] = 0.0
                for _ in range(maxit):
                    if lo <= blk[0] < hi and lo <= blk[1] < hi and lo <= blk[2] < hi:
                        key = ((blk[0] + _KEY_OFF) << (2 * _KEY_BITS)) | ((blk[1] + _KEY_OFF) << _KEY_BITS) \
                            | (blk[2] + _KEY_OFF)
                        if key != last0 and key != last1 and key != last2:
                            out[n] = key
                            n += 1
                            last2 = last1
                            last1 = last0
                            last0 = key
                    a = 0
                    if tmax[1] < tmax[a]:
                        a = 1
                    if tmax[2] < tmax[a]:
                        a = 2
                    if tmax[a] > z1:
                        break
                    blk[a] += stp[a]
                    tmax[a] += tdelta[a]
        return n

    @njit(parallel=True, cache=True, nogil=True)
    def _integrate_nb(blocks, coords, depth, color, Rcw, tcw, cam, dist, distorted, vox, trunc, zmin, zmax,
                      tsdf, weight, rgb):  # type: ignore[no-untyped-def]
        h, w = depth.shape
        fx, fy, cx, cy, skew = cam[0], cam[1], cam[2], cam[3], cam[4]
        has_color = color.shape[0] > 0
        for bi in prange(blocks.shape[0]):
            b = blocks[bi]
            ox, oy, oz = coords[b, 0] * BLOCK, coords[b, 1] * BLOCK, coords[b, 2] * BLOCK
            for idx in range(_B3):
                wx = np.float64(ox + idx % BLOCK) * vox
                wy = np.float64(oy + (idx // BLOCK) % BLOCK) * vox
                wz = np.float64(oz + idx // (BLOCK * BLOCK)) * vox
                zc = Rcw[2, 0] * wx + Rcw[2, 1] * wy + Rcw[2, 2] * wz + tcw[2]
                if zc <= 0.0:
                    continue
                xn = (Rcw[0, 0] * wx + Rcw[0, 1] * wy + Rcw[0, 2] * wz + tcw[0]) / zc
                yn = (Rcw[1, 0] * wx + Rcw[1, 1] * wy + Rcw[1, 2] * wz + tcw[1]) / zc
                if distorted:
                    xn, yn = _distort_nb(xn, yn, dist)
                u = math.floor(fx * xn + skew * yn + cx + 0.5)
                vv = math.floor(fy * yn + cy + 0.5)
                if u < 0 or u >= w or vv < 0 or vv >= h:
                    continue
                d = np.float64(depth[int(vv), int(u)])
                if not (d > zmin and d <= zmax):
                    continue
                sdf = d - zc
                if sdf < -trunc:
                    continue
                val = min(sdf, trunc) / trunc
                wt = np.float64(weight[b, idx])
                inv = 1.0 / (wt + 1.0)
                tsdf[b, idx] = np.float32((np.float64(tsdf[b, idx]) * wt + val) * inv)
                if has_color:
                    for ch in range(3):
                        rgb[b, idx, ch] = np.float32((np.float64(rgb[b, idx, ch]) * wt
                                                      + np.float64(color[int(vv), int(u), ch])) * inv)
                weight[b, idx] = np.float32(wt + 1.0)

    @njit(cache=True, nogil=True)
    def _neighbour(b, idx, ax, nb):  # type: ignore[no-untyped-def]
        """Block and in-block index of the voxel one step along +axis ``ax`` (block −1 if absent)."""
        i, j, k = idx % BLOCK, (idx // BLOCK) % BLOCK, idx // (BLOCK * BLOCK)
        if ax == 0:
            i += 1
        elif ax == 1:
            j += 1
        else:
            k += 1
        off = (i // BLOCK) | ((j // BLOCK) << 1) | ((k // BLOCK) << 2)
        return nb[b, off], (i % BLOCK) + BLOCK * ((j % BLOCK) + BLOCK * (k % BLOCK))

    @njit(parallel=True, cache=True, nogil=True)
    def _count_vertices_nb(order, nb, tsdf, weight, min_w, counts):  # type: ignore[no-untyped-def]
        for bi in prange(order.shape[0]):
            b = order[bi]
            n = 0
            for idx in range(_B3):
                if weight[b, idx] < min_w:
                    continue
                neg = tsdf[b, idx] < 0
                for ax in range(3):
                    b1, i1 = _neighbour(b, idx, ax, nb)
                    if b1 >= 0 and weight[b1, i1] >= min_w and (tsdf[b1, i1] < 0) != neg:
                        n += 1
            counts[bi] = n

    @njit(parallel=True, cache=True, nogil=True)
    def _fill_vertices_nb(order, nb, coords, tsdf, weight, rgb, min_w, vox, start, vid, verts, cols):  # type: ignore[no-untyped-def]
        has_color = cols.shape[0] > 0
        for bi in prange(order.shape[0]):
            b = order[bi]
            n = start[bi]
            for idx in range(_B3):
                if weight[b, idx] < min_w:
                    continue
                t0 = np.float64(tsdf[b, idx])
                for ax in range(3):
                    b1, i1 = _neighbour(b, idx, ax, nb)
                    if b1 < 0 or weight[b1, i1] < min_w:
                        continue
                    t1 = np.float64(tsdf[b1, i1])
                    if (t1 < 0) == (t0 < 0):
                        continue
                    ratio = t0 / (t0 - t1)
                    g0 = np.float64(coords[b, 0] * BLOCK + idx % BLOCK)
                    g1 = np.float64(coords[b, 1] * BLOCK + (idx // BLOCK) % BLOCK)
                    g2 = np.float64(coords[b, 2] * BLOCK + idx // (BLOCK * BLOCK))
                    if ax == 0:
                        g0 += ratio
                    elif ax == 1:
                        g1 += ratio
                    else:
                        g2 += ratio
                    verts[n, 0] = np.float32(g0 * vox)
                    verts[n, 1] = np.float32(g1 * vox)
                    verts[n, 2] = np.float32(g2 * vox)
                    if has_color:
                        for ch in range(3):
                            c = (1.0 - ratio) * np.float64(rgb[b, idx, ch]) + ratio * np.float64(rgb[b1, i1, ch])
                            cols[n, ch] = np.uint8(min(255.0, max(0.0, math.floor(c + 0.5))))
                    vid[b, 3 * idx + ax] = n
                    n += 1

    @njit(cache=True, nogil=True)
    def _cube_case(b, idx, nb, tsdf, weight, min_w, corner_b, corner_i):  # type: ignore[no-untyped-def]
        """Case bits of the cube whose lowest corner is voxel ``idx`` of block ``b`` (−1: not whole);
        fills the 8 corners' blocks and in-block indices."""
        i0, j0, k0 = idx % BLOCK, (idx // BLOCK) % BLOCK, idx // (BLOCK * BLOCK)
        case = 0
        for c in range(8):
            i, j, k = i0 + (c & 1), j0 + ((c >> 1) & 1), k0 + ((c >> 2) & 1)
            bc = nb[b, (i // BLOCK) | ((j // BLOCK) << 1) | ((k // BLOCK) << 2)]
            if bc < 0:
                return -1
            ic = (i % BLOCK) + BLOCK * ((j % BLOCK) + BLOCK * (k % BLOCK))
            if weight[bc, ic] < min_w:
                return -1
            if tsdf[bc, ic] < 0:
                case |= 1 << c
            corner_b[c] = bc
            corner_i[c] = ic
        return case

    @njit(parallel=True, cache=True, nogil=True)
    def _count_triangles_nb(order, nb, tsdf, weight, min_w, tri_count, counts):  # type: ignore[no-untyped-def]
        for bi in prange(order.shape[0]):
            b = order[bi]
            corner_b = np.empty(8, np.int64)
            corner_i = np.empty(8, np.int64)
            n = 0
            for idx in range(_B3):
                case = _cube_case(b, idx, nb, tsdf, weight, min_w, corner_b, corner_i)
                if case > 0:
                    n += tri_count[case]
            counts[bi] = n

    @njit(parallel=True, cache=True, nogil=True)
    def _fill_triangles_nb(order, nb, tsdf, weight, min_w, table, tri_count, edge_corner, edge_axis, vid, start,
                           faces):  # type: ignore[no-untyped-def]
        for bi in prange(order.shape[0]):
            b = order[bi]
            corner_b = np.empty(8, np.int64)
            corner_i = np.empty(8, np.int64)
            n = start[bi]
            for idx in range(_B3):
                case = _cube_case(b, idx, nb, tsdf, weight, min_w, corner_b, corner_i)
                if case <= 0:
                    continue
                for tri in range(tri_count[case]):
                    for m in range(3):
                        e = table[case, 3 * tri + m]
                        c = edge_corner[e]
                        faces[n, m] = vid[corner_b[c], 3 * corner_i[c] + edge_axis[e]]
                    n += 1


# -- numpy fallbacks ------------------------------------------------------------------------------


def _touch_np(depth: np.ndarray, rays: np.ndarray, R: np.ndarray, t: np.ndarray, zmin: float, zmax: float,
              trunc: float, maxit: int, block_m: float) -> np.ndarray:
    d = depth.astype(np.float64)
    ok = (d > zmin) & (d <= zmax)
    d = d[ok]
    xr = rays[..., 0][ok].astype(np.float64)
    yr = rays[..., 1][ok].astype(np.float64)
    z0 = np.maximum(d - trunc, 0.0)
    z1 = d + trunc
    ray = np.stack([R[a, 0] * xr + R[a, 1] * yr + R[a, 2] for a in range(3)], -1)
    blk = np.stack([np.floor((ray[:, a] * z0 + t[a]) / block_m) for a in range(3)], -1).astype(np.int64)
    stp = np.sign(ray).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        edge = np.where(ray > 0.0, (blk + 1).astype(np.float64), blk.astype(np.float64))
        tmax = np.where(ray != 0.0, (edge * block_m - t) / ray, np.inf)
        tdelta = np.where(ray > 0.0, block_m / ray, np.where(ray < 0.0, -block_m / ray, 0.0))
    keys = []
    active = np.arange(len(d))
    for _ in range(maxit):
        b = blk[active]
        inside = np.all((b >= -_KEY_OFF) & (b < _KEY_OFF), axis=1)
        keys.append(_pack(b[inside]))
        a = np.argmin(tmax[active], axis=1)
        go = tmax[active, a] <= z1[active]
        active, a = active[go], a[go]
        if len(active) == 0:
            break
        blk[active, a] += stp[active, a]
        tmax[active, a] += tdelta[active, a]
    return np.concatenate(keys) if keys else np.empty(0, np.int64)


_CHUNK = 1024  # blocks per numpy batch (bounds the fallback's temporary arrays)
_LOCAL = np.arange(_B3)
_LI, _LJ, _LK = _LOCAL % BLOCK, (_LOCAL // BLOCK) % BLOCK, _LOCAL // (BLOCK * BLOCK)


def _integrate_np(blocks: np.ndarray, coords: np.ndarray, depth: np.ndarray, color: np.ndarray, Rcw: np.ndarray,
                  tcw: np.ndarray, cam: np.ndarray, dist: np.ndarray, distorted: bool, vox: float, trunc: float,
                  zmin: float, zmax: float, tsdf: np.ndarray, weight: np.ndarray, rgb: np.ndarray) -> None:
    h, w = depth.shape
    fx, fy, cx, cy, skew = cam
    for s in range(0, len(blocks), _CHUNK):
        b = blocks[s : s + _CHUNK]
        wx = (coords[b, 0:1] * BLOCK + _LI).astype(np.float64) * vox
        wy = (coords[b, 1:2] * BLOCK + _LJ).astype(np.float64) * vox
        wz = (coords[b, 2:3] * BLOCK + _LK).astype(np.float64) * vox
        zc = Rcw[2, 0] * wx + Rcw[2, 1] * wy + Rcw[2, 2] * wz + tcw[2]
        front = zc > 0.0
        zs = np.where(front, zc, 1.0)
        xn = (Rcw[0, 0] * wx + Rcw[0, 1] * wy + Rcw[0, 2] * wz + tcw[0]) / zs
        yn = (Rcw[1, 0] * wx + Rcw[1, 1] * wy + Rcw[1, 2] * wz + tcw[1]) / zs
        if distorted:
            xn, yn = _distort(xn, yn, dist)
        with np.errstate(invalid="ignore"):
            u = np.floor(fx * xn + skew * yn + cx + 0.5)
            vv = np.floor(fy * yn + cy + 0.5)
            ok = front & (u >= 0) & (u < w) & (vv >= 0) & (vv < h)
        ui, vi = np.where(ok, u, 0).astype(np.int64), np.where(ok, vv, 0).astype(np.int64)
        d = depth[vi, ui].astype(np.float64)
        sdf = d - zc
        ok &= (d > zmin) & (d <= zmax) & (sdf >= -trunc)
        rows, cols = np.nonzero(ok)
        bb = b[rows]
        val = np.minimum(sdf[rows, cols], trunc) / trunc
        wt = weight[bb, cols].astype(np.float64)
        inv = 1.0 / (wt + 1.0)
        tsdf[bb, cols] = ((tsdf[bb, cols].astype(np.float64) * wt + val) * inv).astype(np.float32)
        if color.shape[0] > 0:
            c = color[vi[rows, cols], ui[rows, cols]].astype(np.float64)
            rgb[bb, cols] = ((rgb[bb, cols].astype(np.float64) * wt[:, None] + c) * inv[:, None]).astype(np.float32)
        weight[bb, cols] = (wt + 1.0).astype(np.float32)


def _neighbour_np(ax: int) -> tuple[np.ndarray, np.ndarray]:
    """For each in-block index: which of the 8 neighbour-block offsets, and the index inside it,
    of the voxel one step along +axis ``ax``."""
    ijk = [_LI.copy(), _LJ.copy(), _LK.copy()]
    ijk[ax] = ijk[ax] + 1
    off = (ijk[0] // BLOCK) | ((ijk[1] // BLOCK) << 1) | ((ijk[2] // BLOCK) << 2)
    return off, (ijk[0] % BLOCK) + BLOCK * ((ijk[1] % BLOCK) + BLOCK * (ijk[2] % BLOCK))


def _corners_np() -> tuple[np.ndarray, np.ndarray]:
    """(8, B³) neighbour-block offsets and in-block indices of each cube corner."""
    offs, idxs = [], []
    for c in range(8):
        i, j, k = _LI + (c & 1), _LJ + ((c >> 1) & 1), _LK + ((c >> 2) & 1)
        offs.append((i // BLOCK) | ((j // BLOCK) << 1) | ((k // BLOCK) << 2))
        idxs.append((i % BLOCK) + BLOCK * ((j % BLOCK) + BLOCK * (k % BLOCK)))
    return np.array(offs), np.array(idxs)


def _mesh_np(nb: np.ndarray, coords: np.ndarray, tsdf: np.ndarray, weight: np.ndarray, rgb: np.ndarray,
             min_w: float, vox: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = nb.shape[0]
    valid = weight >= min_w
    # vertices, in the order (block, voxel, axis)
    cross = np.zeros((n, _B3, 3), bool)
    ratio = np.zeros((n, _B3, 3), np.float64)
    partner = np.zeros((n, _B3, 3), np.int64)  # flat index block·B³ + voxel of the edge's far end
    for ax in range(3):
        off, loc = _neighbour_np(ax)
        b1 = nb[:, off]
        flat = np.where(b1 >= 0, b1 * _B3 + loc, 0)
        t0, t1 = tsdf.astype(np.float64), tsdf.ravel()[flat].astype(np.float64)
        ok = valid & (b1 >= 0) & valid.ravel()[flat] & ((t0 < 0) != (t1 < 0))
        cross[:, :, ax] = ok
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio[:, :, ax] = np.where(ok, t0 / np.where(ok, t0 - t1, 1.0), 0.0)
        partner[:, :, ax] = flat
    bb, ii, aa = np.nonzero(cross)
    r = ratio[bb, ii, aa]
    g = np.stack([coords[bb, 0] * BLOCK + _LI[ii], coords[bb, 1] * BLOCK + _LJ[ii],
                  coords[bb, 2] * BLOCK + _LK[ii]], -1).astype(np.float64)
    g[np.arange(len(aa)), aa] += r
    verts = (g * vox).astype(np.float32)
    cols = np.empty((0, 3), np.uint8)
    if rgb.shape[0] > 0:
        flat_rgb = rgb.reshape(-1, 3)
        c = (1.0 - r)[:, None] * rgb[bb, ii].astype(np.float64) + r[:, None] * flat_rgb[partner[bb, ii, aa]].astype(np.float64)
        cols = np.clip(np.floor(c + 0.5), 0.0, 255.0).astype(np.uint8)
    vid = np.full((n, _B3, 3), -1, np.int64)
    vid[bb, ii, aa] = np.arange(len(bb))
    # cubes
    offs, idxs = _corners_np()
    case: np.ndarray = np.zeros((n, _B3), np.int64)
    whole = np.ones((n, _B3), bool)
    cflat = np.empty((8, n, _B3), np.int64)
    for corner in range(8):
        bc = nb[:, offs[corner]]
        flat = np.where(bc >= 0, bc * _B3 + idxs[corner], 0)
        whole &= (bc >= 0) & valid.ravel()[flat]
        case |= (tsdf.ravel()[flat] < 0).astype(np.int64) << corner
        cflat[corner] = flat
    case = np.where(whole, case, 0)
    cb, ci = np.nonzero(_TRI_COUNT[case] > 0)
    cases = case[cb, ci]
    reps = _TRI_COUNT[cases]
    cube = np.repeat(np.arange(len(cb)), reps)
    tri = np.arange(len(cube)) - np.repeat(np.cumsum(reps) - reps, reps)
    faces = np.empty((len(cube), 3), np.int64)
    vflat = vid.reshape(-1, 3)
    for m in range(3):
        e = _TRI_TABLE[cases[cube], 3 * tri + m]
        owner = cflat[_EDGE_CORNER[e], cb[cube], ci[cube]]
        faces[:, m] = vflat[owner, _EDGE_AXIS[e]]
    return verts, faces.astype(np.int32), cols


# ================================================================================================
# The volume
# ================================================================================================


class TSDFVolume:
    """A sparse TSDF volume that posed depth frames are integrated into.

    voxel_m: voxel edge, metres. trunc_m: truncation distance, metres (≥ voxel_m; a few voxels).
    min_depth_m / max_depth_m: depth outside (min, max] is ignored. Colour is fused when the frames
    carry it (all of them or none).
    """

    def __init__(self, *, voxel_m: float = 0.01, trunc_m: float = 0.04, min_depth_m: float = 0.0,
                 max_depth_m: float = 3.0) -> None:
        self.voxel_m = v.number("voxel_m", voxel_m, positive=True)
        self.trunc_m = v.number("trunc_m", trunc_m, positive=True)
        if self.trunc_m < self.voxel_m:
            raise InputError(f"trunc_m: expected at least one voxel ({self.voxel_m:g} m), got {self.trunc_m:g} m")
        self.min_depth_m = v.number("min_depth_m", min_depth_m, low=0.0)
        self.max_depth_m = v.number("max_depth_m", max_depth_m, positive=True)
        if self.max_depth_m <= self.min_depth_m:
            raise InputError(f"max_depth_m: expected more than min_depth_m ({self.min_depth_m:g} m), got {self.max_depth_m:g} m")
        self.block_m = self.voxel_m * BLOCK
        self._n = 0
        self._keys = np.empty(0, np.int64)
        self._coords = np.empty((0, 3), np.int64)
        self._tsdf = np.empty((0, _B3), np.float32)
        self._weight = np.empty((0, _B3), np.float32)
        self._rgb: np.ndarray | None = None
        self._sorted = np.empty(0, np.int64)
        self._order = np.empty(0, np.int64)
        self.frames = 0
        self._ray_cache: dict[Intrinsics, tuple[np.ndarray, int]] = {}

    # -- state ----------------------------------------------------------------------------------
    @property
    def block_count(self) -> int:
        """Blocks allocated so far (each holds BLOCK³ voxels)."""
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held by the voxel data of the allocated blocks."""
        per = 4 + 4 + (12 if self._rgb is not None else 0)
        return self._n * _B3 * per + self._n * 32

    def block_coords(self) -> np.ndarray:
        """(B, 3) int64 coordinates of the allocated blocks (block = BLOCK voxels per side)."""
        return self._coords[: self._n].copy()

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        if self._n == 0:
            return np.full(keys.shape, -1, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, keys), self._n - 1)
        return np.where(self._sorted[pos] == keys, self._order[pos], -1)

    def _allocate(self, keys: np.ndarray) -> np.ndarray:
        """Block indices of ``keys`` (unique), allocating the new ones."""
        idx = self._lookup(keys)
        new = keys[idx < 0]
        if len(new):
            need = self._n + len(new)
            if need > len(self._keys):
                cap = max(need + need // 8, len(self._keys) + len(self._keys) // 4, 256)
                grow = cap - len(self._keys)
                self._keys = np.concatenate([self._keys, np.zeros(grow, np.int64)])
                self._coords = np.concatenate([self._coords, np.zeros((grow, 3), np.int64)])
                self._tsdf = np.concatenate([self._tsdf, np.ones((grow, _B3), np.float32)])
                self._weight = np.concatenate([self._weight, np.zeros((grow, _B3), np.float32)])
                if self._rgb is not None:
                    self._rgb = np.concatenate([self._rgb, np.zeros((grow, _B3, 3), np.float32)])
            self._keys[self._n : need] = new
            self._coords[self._n : need] = _unpack(new)
            idx[idx < 0] = np.arange(self._n, need)
            self._n = need
            self._order = np.argsort(self._keys[: self._n], kind="stable")
            self._sorted = self._keys[self._order]
        return idx

    # -- integration ----------------------------------------------------------------------------
    def integrate(self, depth: Any, intrinsics: Intrinsics, pose: Any, *, color: Any = None,
                  use_numba: bool | None = None) -> int:
        """Fuse one depth image seen from ``pose``; returns how many blocks it touched.

        depth: (H, W) float metres, 0/NaN = invalid. intrinsics: of the depth image. pose: 4×4
        camera-to-world. color: (H, W, 3) uint8 RGB aligned to depth, or None.
        """
        return self.integrate_frame(Frame(depth, intrinsics, color), pose, use_numba=use_numba)

    def integrate_frame(self, frame: Frame, pose: Any, *, use_numba: bool | None = None) -> int:
        """Fuse one Frame seen from ``pose`` (4×4 camera-to-world); returns the blocks it touched."""
        if not isinstance(frame, Frame):
            raise InputError(f"frame: expected Frame, got {type(frame).__name__}")
        T = _check_pose(pose)
        jit = HAVE_NUMBA if use_numba is None else (use_numba and HAVE_NUMBA)
        intr = frame.intrinsics
        dist = _distortion(intr)
        if self.frames == 0 and frame.color is not None:
            self._rgb = np.zeros((len(self._keys), _B3, 3), np.float32)
        if (frame.color is not None) != (self._rgb is not None):
            raise InputError(f"frame {frame.seq}: {'has' if frame.color is not None else 'lacks'} colour while the "
                             f"earlier frames {'lack' if self._rgb is None else 'have'} it; give colour for all frames or none")
        rays, maxit = self._rays(intr)
        depth = np.ascontiguousarray(frame.depth, dtype=np.float32)
        R, t = np.ascontiguousarray(T[:3, :3]), np.ascontiguousarray(T[:3, 3])
        args = (self.min_depth_m, self.max_depth_m, self.trunc_m, maxit, self.block_m)
        if jit:
            buf = np.empty(depth.size * maxit, np.int64)
            cand = buf[: _touch_nb(depth, rays, R, t, *args, buf)]
        else:
            cand = _touch_np(depth, rays, R, t, *args)
        self.frames += 1
        if cand.size == 0:
            return 0
        blocks = self._allocate(np.unique(cand))
        Tcw = np.linalg.inv(T)
        cam = np.array([intr.fx, intr.fy, intr.cx, intr.cy, intr.skew], np.float64)
        color = np.ascontiguousarray(frame.color) if frame.color is not None else np.empty((0, 0, 3), np.uint8)
        rgb = self._rgb if self._rgb is not None else np.empty((0, _B3, 3), np.float32)
        kernel = _integrate_nb if jit else _integrate_np
        kernel(blocks, self._coords, depth, color, np.ascontiguousarray(Tcw[:3, :3]), np.ascontiguousarray(Tcw[:3, 3]),
               cam, dist, bool(intr.is_distorted), self.voxel_m, self.trunc_m, self.min_depth_m, self.max_depth_m,
               self._tsdf, self._weight, rgb)
        return len(blocks)

    def _rays(self, intr: Intrinsics) -> tuple[np.ndarray, int]:
        """Per-pixel rays of a camera (cached), and how many blocks a ray's band can cross at most."""
        cached = self._ray_cache.get(intr)
        if cached is None:
            rays = np.ascontiguousarray(Unprojector(intr).rays, dtype=np.float32)
            # The band (2·trunc in z) crosses at most one block border per block length per axis.
            longest = float(np.sqrt((rays.astype(np.float64) ** 2).sum(axis=-1).max() + 1.0))
            cached = self._ray_cache[intr] = (rays, 3 * (math.ceil(2.0 * self.trunc_m * longest / self.block_m) + 1) + 1)
        return cached

    # -- surface --------------------------------------------------------------------------------
    def _neighbours(self) -> np.ndarray:
        """(B, 8) indices of each block's neighbours at offsets (dx, dy, dz) ∈ {0,1}³ (−1: none)."""
        coords = self._coords[: self._n]
        nb = np.empty((self._n, 8), np.int64)
        for c in range(8):
            nb[:, c] = self._lookup(_pack(coords + _CORNER_OFFSETS[c]))
        return nb

    def extract_mesh(self, *, min_weight: float = 1.0, use_numba: bool | None = None) -> TriangleMesh:
        """The zero surface as a TriangleMesh in the world frame (``frame="world"``).

        min_weight: voxels seen by fewer frames than this take no part. Vertex colours (uint8 RGB)
        when the frames had colour. An empty volume gives an empty mesh.
        """
        min_w = v.number("min_weight", min_weight, positive=True)
        jit = HAVE_NUMBA if use_numba is None else (use_numba and HAVE_NUMBA)
        if self._n == 0:
            return TriangleMesh.empty(frame="world")
        order = self._order  # blocks in key order: the mesh does not depend on the order frames came in
        nb = self._neighbours()
        n = self._n
        tsdf, weight = self._tsdf[:n], self._weight[:n]
        rgb = self._rgb[:n] if self._rgb is not None else np.empty((0, _B3, 3), np.float32)
        if jit:
            counts = np.zeros(n, np.int64)
            _count_vertices_nb(order, nb, tsdf, weight, np.float32(min_w), counts)
            start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            nv = int(counts.sum())
            verts = np.empty((nv, 3), np.float32)
            cols = np.empty((nv if self._rgb is not None else 0, 3), np.uint8)
            vid = np.full((n, 3 * _B3), -1, np.int32)
            _fill_vertices_nb(order, nb, self._coords[:n], tsdf, weight, rgb, np.float32(min_w), self.voxel_m, start,
                              vid, verts, cols)
            _count_triangles_nb(order, nb, tsdf, weight, np.float32(min_w), _TRI_COUNT, counts)
            start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            faces = np.empty((int(counts.sum()), 3), np.int32)
            _fill_triangles_nb(order, nb, tsdf, weight, np.float32(min_w), _TRI_TABLE, _TRI_COUNT, _EDGE_CORNER,
                               _EDGE_AXIS, vid, start, faces)
        else:
            rank = np.empty(n, np.int64)
            rank[order] = np.arange(n)
            nb_ranked = np.where(nb[order] >= 0, rank[np.maximum(nb[order], 0)], -1)
            verts, faces, cols = _mesh_np(nb_ranked, self._coords[order], tsdf[order], weight[order],
                                          rgb[order] if self._rgb is not None else rgb, float(min_w), self.voxel_m)
        mesh = TriangleMesh._trusted(verts, faces, cols if self._rgb is not None else None, None, "world")
        return mesh.remove_unused_vertices()


def _check_pose(pose: Any) -> np.ndarray:
    T = v.array("pose", pose, shape=(4, 4), kinds="fiu").astype(np.float64)
    if not np.isfinite(T).all():
        raise InputError("pose: contains NaN or inf")
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6):
        raise InputError(f"pose: expected a last row [0, 0, 0, 1], got {T[3].tolist()}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-3) or np.linalg.det(R) < 0:
        raise InputError("pose: expected a rigid camera-to-world transform (its 3×3 part is not a rotation)")
    return T


def fuse_frames(frames: Iterable[tuple[Frame, Any]], *, voxel_m: float = 0.01, trunc_m: float = 0.04,
                min_depth_m: float = 0.0, max_depth_m: float = 3.0, min_weight: float = 1.0) -> TriangleMesh:
    """Fuse (Frame, camera-to-world pose) pairs into one mesh (see :class:`TSDFVolume`)."""
    vol = TSDFVolume(voxel_m=voxel_m, trunc_m=trunc_m, min_depth_m=min_depth_m, max_depth_m=max_depth_m)
    for frame, pose in frames:
        vol.integrate_frame(frame, pose)
    return vol.extract_mesh(min_weight=min_weight)
