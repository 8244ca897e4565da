"""Triangle meshes from depth images: each 2×2 block of neighbouring pixels becomes two triangles.

Convention: vertices are the pixels' points in the optical frame (x right, y down, z forward,
metres), in row-major pixel order; triangles wind counter-clockwise seen from the camera, so their
normals point towards it. Colours come from the colour image at the same pixels.

A block of four valid pixels is split along its shorter diagonal (in 3D); a block with three valid
pixels gives one triangle. A triangle is kept only when

* each of its three edges joins pixels on one surface — |z₁ − z₂| ≤ a·min(z₁, z₂) + b·z₁·z₂, with
  a = ``max_edge_rel`` and b = ``max_edge_disp_px``/(f·B), the edge rule described in
  :mod:`depthcloud.surface._organized` (a depth-relative jump, or a jump in disparity pixels for
  stereo, whose depth error grows as z²), and
* it is not seen almost edge-on: the angle between its normal and the ray from the camera to its
  centre is at most ``max_angle_deg`` (like PCL's ``OrganizedFastMesh``; off by default), which
  removes the skins that connect a foreground object to the background across a depth jump the edge
  rule lets through.

Pixels no kept triangle uses are not vertices. The compiled kernel runs in parallel over rows (count,
then write); the numpy path computes the same triangles in the same order.

This module must not import sources, the server or the CLI.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud._jit import HAVE_NUMBA
from depthcloud.errors import InputError
from depthcloud.surface._organized import edge_coefficients, edge_ok, organized_points
from depthcloud.surface.mesh import TriangleMesh

__all__ = ["DEFAULT_MAX_ANGLE_DEG", "DEFAULT_MAX_EDGE_DISP_PX", "DEFAULT_MAX_EDGE_REL", "mesh_from_depth", "stereo_mesh"]

#: Depth images: neighbours join when their depths differ by at most 5 % (5 cm at 1 m). A surface seen
#: at 80° from a camera of f = 600 px steps by about 1 % of its depth per pixel, so real surfaces stay
#: whole while jumps between objects a few centimetres apart per metre of range are cut.
DEFAULT_MAX_EDGE_REL = 0.05
#: Disparity sources: neighbours join when their disparities differ by at most 2 px — several times the
#: matching noise of SGBM (about ¼ px), and what a surface at 80° shows at 35 cm with a 12 cm baseline.
DEFAULT_MAX_EDGE_DISP_PX = 2.0
#: The view-angle test is off by default (90°). At 85° it removes the skins a small depth jump leaves
#: on clean depth (synthetic, time-of-flight), but on noisy far depth, where the noise exceeds the pixel
#: footprint, real surface looks edge-on too: it dropped 55 % of the triangles of bench_mesh's
#: RealSense-like 1280×720 frame.
DEFAULT_MAX_ANGLE_DEG = 90.0

_HAVE_NUMBA = HAVE_NUMBA

if _HAVE_NUMBA:
    from numba import njit, prange

    @njit(cache=True, nogil=True)
    def _joined(za, zb, a, b):  # type: ignore[no-untyped-def]
        return abs(za - zb) <= a * min(za, zb) + b * za * zb

    @njit(cache=True, nogil=True)
    def _tri_ok(P, r0, c0, r1, c1, r2, c2, a, b, cos_min):  # type: ignore[no-untyped-def]
        za, zb, zc = P[r0, c0, 2], P[r1, c1, 2], P[r2, c2, 2]
        if not (za > 0.0 and zb > 0.0 and zc > 0.0):  # NaN (invalid) fails every comparison
            return False
        if not (_joined(za, zb, a, b) and _joined(zb, zc, a, b) and _joined(za, zc, a, b)):
            return False
        ux, uy, uz = P[r1, c1, 0] - P[r0, c0, 0], P[r1, c1, 1] - P[r0, c0, 1], zb - za
        vx, vy, vz = P[r2, c2, 0] - P[r0, c0, 0], P[r2, c2, 1] - P[r0, c0, 1], zc - za
        nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        cx = P[r0, c0, 0] + P[r1, c1, 0] + P[r2, c2, 0]
        cy = P[r0, c0, 1] + P[r1, c1, 1] + P[r2, c2, 1]
        cz = za + zb + zc
        dot = nx * cx + ny * cy + nz * cz
        nn = nx * nx + ny * ny + nz * nz
        if nn == 0.0:
            return False
        return dot * dot >= cos_min * cos_min * nn * (cx * cx + cy * cy + cz * cz)

    @njit(cache=True, nogil=True)
    def _quad(P, r, c, a, b, cos_min):  # type: ignore[no-untyped-def]
        """Which triangles block (r, c) gives: a bit mask over the four candidates
        1: (00, 10, 01)  2: (01, 10, 11)  [split along 01–10]
        4: (00, 11, 01)  8: (00, 10, 11)  [split along 00–11]"""
        v00, v01 = P[r, c, 2] > 0.0, P[r, c + 1, 2] > 0.0
        v10, v11 = P[r + 1, c, 2] > 0.0, P[r + 1, c + 1, 2] > 0.0
        if v00 and v01 and v10 and v11:
            d1 = 0.0
            d2 = 0.0
            for k in range(3):
                e1 = P[r, c + 1, k] - P[r + 1, c, k]
                e2 = P[r, c, k] - P[r + 1, c + 1, k]
                d1 += e1 * e1
                d2 += e2 * e2
            split_a = d1 <= d2
        else:
            split_a = not (v00 and v11)
        mask = 0
        if split_a:
            if _tri_ok(P, r, c, r + 1, c, r, c + 1, a, b, cos_min):
                mask |= 1
            if _tri_ok(P, r, c + 1, r + 1, c, r + 1, c + 1, a, b, cos_min):
                mask |= 2
        else:
            if _tri_ok(P, r, c, r + 1, c + 1, r, c + 1, a, b, cos_min):
                mask |= 4
            if _tri_ok(P, r, c, r + 1, c, r + 1, c + 1, a, b, cos_min):
                mask |= 8
        return mask

    @njit(parallel=True, cache=True, nogil=True)
    def _mesh_count(P, a, b, cos_min, masks, counts):  # type: ignore[no-untyped-def]
        h, w = P.shape[0], P.shape[1]
        for r in prange(h - 1):
            n = 0
            for c in range(w - 1):
                m = _quad(P, r, c, a, b, cos_min)
                masks[r, c] = m
                n += (m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1) + ((m >> 3) & 1)
            counts[r] = n

    @njit(parallel=True, cache=True, nogil=True)
    def _mesh_write(masks, w, offsets, tris, faces):  # type: ignore[no-untyped-def]
        """Triangles as pixel numbers (row·w + column), block by block in row-major order; ``tris``
        lists each candidate's corners as 0: 00, 1: 01, 2: 10, 3: 11."""
        for r in prange(masks.shape[0]):
            t = offsets[r]
            for c in range(masks.shape[1]):
                m = masks[r, c]
                for j in range(4):
                    if m & (1 << j):
                        for k in range(3):
                            q = tris[j, k]
                            faces[t, k] = (r + q // 2) * w + c + q % 2
                        t += 1


# The four candidate triangles of a block (the bits of ``_quad``), as corners 0: 00, 1: 01, 2: 10, 3: 11.
_TRIS = np.array([[0, 2, 1], [1, 2, 3], [0, 3, 1], [0, 2, 3]], np.int64)


def _faces_numba(P: np.ndarray, a: float, b: float, cos_min: float) -> np.ndarray:
    h, w = P.shape[:2]
    masks = np.empty((h - 1, w - 1), np.uint8)
    counts = np.empty(h - 1, np.int64)
    _mesh_count(P, a, b, cos_min, masks, counts)
    offsets = np.zeros(h - 1, np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    faces = np.empty((int(counts.sum()), 3), np.int64)
    _mesh_write(masks, w, offsets, _TRIS, faces)
    return faces


def _faces_numpy(P: np.ndarray, a: float, b: float, cos_min: float) -> np.ndarray:
    h, w = P.shape[:2]
    P64 = P.astype(np.float64)
    z = P64[..., 2]
    valid = z > 0  # NaN is False
    pix = np.arange(h * w).reshape(h, w)
    corner = {"00": (slice(0, -1), slice(0, -1)), "01": (slice(0, -1), slice(1, None)),
              "10": (slice(1, None), slice(0, -1)), "11": (slice(1, None), slice(1, None))}
    Pq = {k: P64[s] for k, s in corner.items()}
    zq = {k: z[s] for k, s in corner.items()}
    vq = {k: valid[s] for k, s in corner.items()}
    all4 = vq["00"] & vq["01"] & vq["10"] & vq["11"]
    d1 = ((Pq["01"] - Pq["10"]) ** 2).sum(axis=2)
    d2 = ((Pq["00"] - Pq["11"]) ** 2).sum(axis=2)
    with np.errstate(invalid="ignore"):
        split_a = np.where(all4, d1 <= d2, ~(vq["00"] & vq["11"]))

    def ok(t: tuple[str, ...]) -> np.ndarray:
        p0, p1, p2 = (Pq[k] for k in t)
        z0, z1, z2 = (zq[k] for k in t)
        good = vq[t[0]] & vq[t[1]] & vq[t[2]]
        good &= edge_ok(z0, z1, a, b) & edge_ok(z1, z2, a, b) & edge_ok(z0, z2, a, b)
        n = np.cross(p1 - p0, p2 - p0)
        cen = p0 + p1 + p2
        dot = np.einsum("hwc,hwc->hw", n, cen)
        nn = np.einsum("hwc,hwc->hw", n, n)
        with np.errstate(invalid="ignore"):
            good &= (nn > 0) & (dot * dot >= cos_min * cos_min * nn * np.einsum("hwc,hwc->hw", cen, cen))
        return good

    names = ("00", "01", "10", "11")
    tris = [tuple(names[q] for q in t) for t in _TRIS]
    keep = np.stack([ok(tris[0]) & split_a, ok(tris[1]) & split_a, ok(tris[2]) & ~split_a, ok(tris[3]) & ~split_a],
                    axis=2)
    ids = np.stack([np.stack([pix[corner[k]] for k in t], axis=2) for t in tris], axis=2)  # (h-1, w-1, 4, 3)
    return ids[keep].astype(np.int64)


def mesh_from_depth(
    depth: np.ndarray,
    intrinsics: Any,
    *,
    color: np.ndarray | None = None,
    max_edge_rel: float = DEFAULT_MAX_EDGE_REL,
    max_edge_disp_px: float | None = None,
    baseline_m: float | None = None,
    max_angle_deg: float = DEFAULT_MAX_ANGLE_DEG,
    min_depth_m: float = 0.0,
    max_depth_m: float = np.inf,
    normals: bool = True,
    undistort: bool = True,
) -> TriangleMesh:
    """A triangle mesh of a depth image, cut at depth jumps (see the module docstring).

    depth: (H, W) float32 metres; 0, NaN, inf or outside [min_depth_m, max_depth_m] = invalid.
    intrinsics: the Intrinsics of ``depth``. color: (H, W, 3) uint8 RGB aligned with depth, or None.
    max_edge_rel: the largest depth step between joined neighbours, as a fraction of the nearer depth
    (``inf``: no limit). max_edge_disp_px, baseline_m: for depth from a rectified stereo pair, an added
    allowance of this many pixels of disparity (needs the rig's baseline; f is ``intrinsics.fx``);
    to test disparity steps alone pass ``max_edge_rel=0``. max_angle_deg: the largest angle (degrees,
    0 < · ≤ 90) between a triangle's normal and the ray to it; 90 keeps every triangle.
    normals: give the mesh area-weighted vertex normals. undistort: use distortion-aware rays.
    Returns a TriangleMesh in the optical frame; empty when no triangle survives.
    """
    P = organized_points(depth, intrinsics, min_depth_m=min_depth_m, max_depth_m=max_depth_m, undistort=undistort)
    a, b = edge_coefficients(intrinsics, max_edge_rel=max_edge_rel, max_edge_disp_px=max_edge_disp_px,
                             baseline_m=baseline_m)
    angle = v.number("max_angle_deg", max_angle_deg, positive=True, high=90.0)
    rgb = None if color is None else np.ascontiguousarray(v.color_image("color", color, P.shape[:2]))
    cos_min = 0.0 if angle >= 90.0 else math.cos(math.radians(angle))
    h, w = P.shape[:2]
    if h < 2 or w < 2:
        pix_faces = np.empty((0, 3), np.int64)
    elif _HAVE_NUMBA:
        pix_faces = _faces_numba(P, a, b, cos_min)
    else:
        pix_faces = _faces_numpy(P, a, b, cos_min)
    used = np.zeros(h * w, bool)
    used[pix_faces.ravel()] = True
    vertex_of = np.cumsum(used) - 1
    verts = np.ascontiguousarray(P.reshape(-1, 3)[used])
    cols = None if rgb is None else np.ascontiguousarray(rgb.reshape(-1, 3)[used])
    mesh = TriangleMesh._trusted(verts, vertex_of[pix_faces].astype(np.int32), cols, None, "optical")
    return mesh.with_vertex_normals() if normals else mesh


def stereo_mesh(
    result: Any,
    *,
    max_edge_disp_px: float = DEFAULT_MAX_EDGE_DISP_PX,
    max_angle_deg: float = DEFAULT_MAX_ANGLE_DEG,
    min_depth_m: float | None = None,
    max_depth_m: float | None = None,
) -> TriangleMesh:
    """The mesh of a :class:`depthcloud.stereo.StereoResult`: its matched pixels (those its cloud
    holds; hole-filled ones are left out), coloured from the rectified left image, joined where
    neighbouring disparities differ by at most ``max_edge_disp_px`` pixels. In the rectified left
    camera's optical frame; depth limits in metres (None: no limit)."""
    for name in ("depth", "matched", "left", "rig"):
        if not hasattr(result, name):
            raise InputError(f"result: expected a StereoResult, got {type(result).__name__}")
    depth = np.where(result.matched, result.depth, np.float32(0.0))
    return mesh_from_depth(depth, result.rig.left.undistorted(), color=result.left, max_edge_rel=0.0,
                           max_edge_disp_px=max_edge_disp_px, baseline_m=result.rig.baseline_m,
                           max_angle_deg=max_angle_deg, min_depth_m=min_depth_m or 0.0,
                           max_depth_m=np.inf if max_depth_m is None else max_depth_m)
