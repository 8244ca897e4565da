"""A known scene for the surface tests: a tilted plane with a sphere in front of it, seen by a camera
with asymmetric intrinsics (fx ≠ fy, off-centre principal point, H ≠ W), rendered analytically."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthcloud.camera import Intrinsics

INTR = Intrinsics(fx=300.0, fy=275.0, cx=170.3, cy=112.6, width=320, height=232)
# Plane n·X = d (n unit, pointing away from the camera): tilted 30° about the x axis, 2.5 m ahead.
_T = np.radians(30.0)
PLANE_N = np.array([0.0, np.sin(_T), np.cos(_T)])
PLANE_D = 2.5
SPHERE_C = np.array([-0.25, 0.1, 1.6])
SPHERE_R = 0.3
QUANT_M = 0.001  # depth stored in millimetres


def rays(u: np.ndarray, v: np.ndarray, intr: Intrinsics = INTR) -> np.ndarray:
    """(…, 3) rays with z = 1 through image points (u, v)."""
    return np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, dtype=np.float64)], -1)


def hits(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth (z) of the first surface along each ray, and whether it is the sphere."""
    t_plane = PLANE_D / (r @ PLANE_N)
    a = np.einsum("...i,...i->...", r, r)
    bh = r @ SPHERE_C
    disc = bh * bh - a * (SPHERE_C @ SPHERE_C - SPHERE_R**2)
    with np.errstate(invalid="ignore"):
        t_sphere = np.where(disc >= 0, (bh - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    on_sphere = t_sphere < t_plane
    return np.where(on_sphere, t_sphere, t_plane), on_sphere


@dataclass(frozen=True)
class Scene:
    depth: np.ndarray        # (H, W) float32 metres, exact
    depth_mm: np.ndarray     # (H, W) float32 metres, quantised to millimetres
    on_sphere: np.ndarray    # (H, W) bool
    color: np.ndarray        # (H, W, 3) uint8: sphere red, plane a green-blue gradient
    intr: Intrinsics


def scene() -> Scene:
    h, w = INTR.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z, on_sphere = hits(rays(u, v))
    color = np.zeros((h, w, 3), np.uint8)
    color[on_sphere] = (220, 30, 30)
    color[~on_sphere, 1] = (u[~on_sphere] / w * 200).astype(np.uint8)
    color[~on_sphere, 2] = 200
    return Scene(z.astype(np.float32), (np.round(z / QUANT_M) * QUANT_M).astype(np.float32), on_sphere, color, INTR)


def distance_to_plane(p: np.ndarray) -> np.ndarray:
    return np.abs(p.astype(np.float64) @ PLANE_N - PLANE_D)


def distance_to_sphere(p: np.ndarray) -> np.ndarray:
    return np.abs(np.linalg.norm(p.astype(np.float64) - SPHERE_C, axis=-1) - SPHERE_R)


def plane_normal_towards_camera() -> np.ndarray:
    return -PLANE_N


def sphere_normal(p: np.ndarray) -> np.ndarray:
    d = p.astype(np.float64) - SPHERE_C
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def visible_plane_area(step: float = 0.25) -> float:
    """Area (m²) of the plane seen inside the pixel-centre rectangle [0, W−1] × [0, H−1] and not
    hidden by the sphere: the plane's area element integrated over the image on a fine grid."""
    h, w = INTR.shape
    us = np.arange(step / 2, w - 1, step)
    total = 0.0
    eps = 1e-3
    for v0 in np.arange(step / 2, h - 1, step):
        u = us
        v = np.full_like(u, v0)
        _, on_sphere = hits(rays(u, v))

        def X(uu: np.ndarray, vv: np.ndarray) -> np.ndarray:
            r = rays(uu, vv)
            return r * (PLANE_D / (r @ PLANE_N))[:, None]

        du = (X(u + eps, v) - X(u - eps, v)) / (2 * eps)
        dv = (X(u, v + eps) - X(u, v - eps)) / (2 * eps)
        jac = np.linalg.norm(np.cross(du, dv), axis=1)
        total += float(jac[~on_sphere].sum()) * step * step
    return total
