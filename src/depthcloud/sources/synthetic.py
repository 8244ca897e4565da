"""A synthetic moving scene with exact ground truth, and the frame source that streams it.

The scene is a handful of primitives (:class:`Plane`, :class:`Box`, :class:`Sphere`) in the camera's
optical frame (x right, y down, z forward, metres). :func:`render_scene` casts one ray per pixel centre
— the undistorted normalised ray (x̂, ŷ, 1), so the ray parameter of a hit *is* its depth z — and
returns the nearest positive hit per pixel, computed in float64 and rounded once to float32. The
colour is a texture of the hit point (coarse checkerboard + fine hashed noise) so stereo matchers
and eyes both find structure in it.

Speed: rays are cached per Intrinsics, and so is the render of the primitives that do not move; each
frame only the moving primitives are ray-cast, inside the pixel rectangle their bounds project to.

This module must not import the server or the CLI.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics
from depthcloud.errors import ConfigError, InputError
from depthcloud.frame import Frame
from depthcloud.geometry import HAVE_NUMBA, _pixel_rays
from depthcloud.sources.base import RateLimiter, ReconnectPolicy, ThreadedSource

if HAVE_NUMBA:
    from numba import njit

__all__ = [
    "Box",
    "Plane",
    "Scene",
    "Sphere",
    "SyntheticSource",
    "default_intrinsics",
    "default_scene",
    "open_synthetic",
    "render_scene",
]

RGB = tuple[int, int, int]
Vec3 = tuple[float, float, float]


def _vec3(name: str, value: Any) -> Vec3:
    arr = v.array(name, value, shape=(3,), kinds="fiu", expected="(3,)").astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: expected finite values, got {arr.tolist()}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _rgb(name: str, value: Any) -> RGB:
    arr = v.array(name, value, shape=(3,), kinds="iu", expected="(3,)")
    if arr.min() < 0 or arr.max() > 255:
        raise InputError(f"{name}: expected values 0..255, got {arr.tolist()}")
    return (int(arr[0]), int(arr[1]), int(arr[2]))


@dataclass(frozen=True)
class _Motion:
    """Sinusoidal motion: offset(t) = amplitude_m · sin(2π t / period_s + phase)."""

    amplitude_m: Vec3 = (0.0, 0.0, 0.0)
    period_s: float = 4.0
    phase: float = 0.0

    @property
    def moves(self) -> bool:
        return any(a != 0.0 for a in self.amplitude_m)

    def offset(self, t: float) -> np.ndarray:
        s = math.sin(2.0 * math.pi * t / self.period_s + self.phase)
        return np.asarray(self.amplitude_m, dtype=np.float64) * s


@dataclass(frozen=True)
class Plane:
    """The plane n̂·X = offset_m: ``normal`` is normalised on construction, so ``offset_m`` is the
    signed distance of the plane from the camera centre along n̂. Textured with ``cell_m`` checkers in ``color``. Planes do not move."""

    normal: Vec3
    offset_m: float
    color: RGB = (200, 200, 200)
    cell_m: float = 0.25

    def __post_init__(self) -> None:
        n = np.asarray(_vec3("plane.normal", self.normal))
        norm = float(np.linalg.norm(n))
        if not norm > 0:
            raise InputError("plane.normal: expected a non-zero vector")
        object.__setattr__(self, "normal", tuple(float(x) for x in n / norm))
        object.__setattr__(self, "offset_m", v.number("plane.offset_m", self.offset_m))
        object.__setattr__(self, "color", _rgb("plane.color", self.color))
        object.__setattr__(self, "cell_m", v.number("plane.cell_m", self.cell_m, positive=True))

    @property
    def moves(self) -> bool:
        return False


@dataclass(frozen=True)
class Box:
    """An axis-aligned box (in the camera frame) centred at ``center_m`` with ``size_m`` = (dx, dy, dz),
    moving by ``amplitude_m`` · sin(2π t / ``period_s`` + ``phase``)."""

    center_m: Vec3
    size_m: Vec3
    color: RGB = (220, 120, 40)
    cell_m: float = 0.1
    amplitude_m: Vec3 = (0.0, 0.0, 0.0)
    period_s: float = 4.0
    phase: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "center_m", _vec3("box.center_m", self.center_m))
        size = _vec3("box.size_m", self.size_m)
        if min(size) <= 0:
            raise InputError(f"box.size_m: expected positive sizes, got {list(size)}")
        object.__setattr__(self, "size_m", size)
        object.__setattr__(self, "color", _rgb("box.color", self.color))
        object.__setattr__(self, "cell_m", v.number("box.cell_m", self.cell_m, positive=True))
        object.__setattr__(self, "amplitude_m", _vec3("box.amplitude_m", self.amplitude_m))
        object.__setattr__(self, "period_s", v.number("box.period_s", self.period_s, positive=True))

    @property
    def moves(self) -> bool:
        return _Motion(self.amplitude_m, self.period_s, self.phase).moves

    def at(self, t: float) -> Box:
        """This box where it is at time ``t`` (seconds), without motion."""
        off = _Motion(self.amplitude_m, self.period_s, self.phase).offset(t)
        c = np.asarray(self.center_m) + off
        return replace(self, center_m=(float(c[0]), float(c[1]), float(c[2])), amplitude_m=(0.0, 0.0, 0.0))


@dataclass(frozen=True)
class Sphere:
    """A sphere of ``radius_m`` centred at ``center_m``, moving like :class:`Box`; its texture moves with it."""

    center_m: Vec3
    radius_m: float
    color: RGB = (60, 140, 230)
    cell_m: float = 0.08
    amplitude_m: Vec3 = (0.0, 0.0, 0.0)
    period_s: float = 4.0
    phase: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "center_m", _vec3("sphere.center_m", self.center_m))
        object.__setattr__(self, "radius_m", v.number("sphere.radius_m", self.radius_m, positive=True))
        object.__setattr__(self, "color", _rgb("sphere.color", self.color))
        object.__setattr__(self, "cell_m", v.number("sphere.cell_m", self.cell_m, positive=True))
        object.__setattr__(self, "amplitude_m", _vec3("sphere.amplitude_m", self.amplitude_m))
        object.__setattr__(self, "period_s", v.number("sphere.period_s", self.period_s, positive=True))

    @property
    def moves(self) -> bool:
        return _Motion(self.amplitude_m, self.period_s, self.phase).moves

    def at(self, t: float) -> Sphere:
        """This sphere where it is at time ``t`` (seconds), without motion."""
        off = _Motion(self.amplitude_m, self.period_s, self.phase).offset(t)
        c = np.asarray(self.center_m) + off
        return replace(self, center_m=(float(c[0]), float(c[1]), float(c[2])), amplitude_m=(0.0, 0.0, 0.0))


Primitive = Plane | Box | Sphere


@dataclass(frozen=True)
class Scene:
    """Primitives in the camera's optical frame; the nearest positive hit along each ray is seen."""

    primitives: tuple[Primitive, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        prims = tuple(self.primitives)
        for i, p in enumerate(prims):
            if not isinstance(p, (Plane, Box, Sphere)):
                raise InputError(f"scene.primitives[{i}]: expected Plane, Box or Sphere, got {type(p).__name__}")
        object.__setattr__(self, "primitives", prims)

    def at(self, t: float) -> Scene:
        """The scene frozen at time ``t``: every moving primitive placed where it is then."""
        return Scene(tuple(p if isinstance(p, Plane) else p.at(t) for p in self.primitives))

    @property
    def static(self) -> tuple[Primitive, ...]:
        return tuple(p for p in self.primitives if not p.moves)

    @property
    def moving(self) -> tuple[Primitive, ...]:
        return tuple(p for p in self.primitives if p.moves)


def default_scene() -> Scene:
    """A floor 1.2 m below the camera, a back wall 5 m ahead, a box and a sphere that sway slowly.

    At t = 0: the box (0.6 × 0.6 × 0.6 m) is centred at (-0.7, 0.89, 2.8) — 1 cm above the floor, so
    no pixel is a tie between two surfaces — and moves ±0.3 m along x
    with a 6 s period; the sphere (radius 0.4 m) is centred at (0.6, 0.2, 2.2) and moves ±0.25 m
    along z with a 4 s period (sin(0) = 0, so both are at these centres at t = 0).
    """
    return Scene(
        (
            Plane((0.0, 1.0, 0.0), 1.2, color=(150, 170, 120), cell_m=0.25),
            Plane((0.0, 0.0, 1.0), 5.0, color=(210, 200, 180), cell_m=0.3),
            Box((-0.7, 0.89, 2.8), (0.6, 0.6, 0.6), amplitude_m=(0.3, 0.0, 0.0), period_s=6.0),
            Sphere((0.6, 0.2, 2.2), 0.4, amplitude_m=(0.0, 0.0, 0.25), period_s=4.0),
        )
    )


_DEFAULT_SCENE = default_scene()


def default_intrinsics(width: int = 848, height: int = 480) -> Intrinsics:
    """An ideal pinhole like a RealSense D435 depth stream: 87° horizontal field of view."""
    w = v.integer("width", width, low=1, high=16384)
    h = v.integer("height", height, low=1, high=16384)
    return Intrinsics.from_fov(w, h, 87.0)


# -- ray casting ----------------------------------------------------------------------------------
# Each caster returns (t, hit_point_local) on the given rays: t float64 with inf where missed.


class _Rays:
    """Per-pixel ray directions (x̂, ŷ, 1) of one Intrinsics: x, y float64 (H, W)."""

    def __init__(self, intr: Intrinsics) -> None:
        rays = _pixel_rays(intr)
        self.x = np.ascontiguousarray(rays[..., 0])
        self.y = np.ascontiguousarray(rays[..., 1])
        self.intr = intr


def _cast_plane(p: Plane, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    nx, ny, nz = p.normal
    nd = nx * x + ny * y + nz
    with np.errstate(divide="ignore", invalid="ignore"):
        t = p.offset_m / nd
    t[~(t > 0)] = np.inf
    t[~np.isfinite(t)] = np.inf
    return t


def _cast_sphere(s: Sphere, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cx, cy, cz = s.center_m
    a = x * x + y * y + 1.0
    b = x * cx + y * cy + cz
    c = cx * cx + cy * cy + cz * cz - s.radius_m * s.radius_m
    disc = b * b - a * c
    hit = disc >= 0
    root = np.sqrt(np.where(hit, disc, 0.0))
    t = (b - root) / a
    t_far = (b + root) / a
    # Inside the sphere the near root is behind the camera: the far root is what is seen.
    t = np.where(t > 0, t, t_far)
    t[~hit | ~(t > 0)] = np.inf
    return t


def _cast_box(bx: Box, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    lo = np.asarray(bx.center_m) - np.asarray(bx.size_m) / 2
    hi = np.asarray(bx.center_m) + np.asarray(bx.size_m) / 2
    t_near = np.full(x.shape, max(lo[2], 0.0))
    t_far = np.full(x.shape, hi[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        for d, i in ((x, 0), (y, 1)):
            t1 = lo[i] / d
            t2 = hi[i] / d
            tmin = np.minimum(t1, t2)
            tmax = np.maximum(t1, t2)
            # A ray parallel to the slab (d = 0) is inside it iff lo <= 0 <= hi.
            par = d == 0
            inside = lo[i] <= 0.0 <= hi[i]
            tmin[par] = -np.inf if inside else np.inf
            tmax[par] = np.inf if inside else -np.inf
            np.maximum(t_near, tmin, out=t_near)
            np.minimum(t_far, tmax, out=t_far)
    # Inside the box (t_near clamped to 0) the exit face is what is seen.
    t = np.where(t_near > 0, t_near, t_far)
    t[~((t_near <= t_far) & (t > 0))] = np.inf
    return t


def _cast(p: Primitive, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if isinstance(p, Plane):
        return _cast_plane(p, x, y)
    if isinstance(p, Sphere):
        return _cast_sphere(p, x, y)
    return _cast_box(p, x, y)


_FINE_M = 0.02  # size of the hashed-noise cells: a few pixels at working distances


def _texture(p: Primitive, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colours of hit points (camera frame, metres) on primitive ``p``."""
    if not isinstance(p, Plane):
        cx, cy, cz = p.center_m
        px, py, pz = px - cx, py - cy, pz - cz
    # Half a cell of offset keeps planes through 0 off the cell boundaries.
    h = 0.5 * p.cell_m
    checker = (np.floor((px + h) / p.cell_m) + np.floor((py + h) / p.cell_m) + np.floor((pz + h) / p.cell_m)) % 2
    ix = np.floor(px / _FINE_M).astype(np.int64).astype(np.uint32)
    iy = np.floor(py / _FINE_M).astype(np.int64).astype(np.uint32)
    iz = np.floor(pz / _FINE_M).astype(np.int64).astype(np.uint32)
    hsh = ix * np.uint32(0x9E3779B1) + iy * np.uint32(0x85EBCA77) + iz * np.uint32(0xC2B2AE3D)
    hsh ^= hsh >> np.uint32(15)
    hsh *= np.uint32(0x2C1B3C6D)
    hsh ^= hsh >> np.uint32(12)
    noise = (hsh & np.uint32(255)).astype(np.float32) / np.float32(255.0)
    shade = np.float32(0.4) + np.float32(0.35) * checker.astype(np.float32) + np.float32(0.25) * noise
    base = np.asarray(p.color, dtype=np.float32)
    return np.clip(shade[:, None] * base[None, :] + np.float32(0.5), 0, 255).astype(np.uint8)


def _params(p: Primitive) -> tuple[int, np.ndarray]:
    """The kernel's view of a primitive: a kind code and a float64 parameter vector
    (geometry…, texture cell, texture origin x/y/z, base colour r/g/b)."""
    geo: tuple[float, ...]
    if isinstance(p, Plane):
        kind, geo, origin = 0, (*p.normal, p.offset_m, 0.0, 0.0), (0.0, 0.0, 0.0)
    elif isinstance(p, Box):
        half = tuple(s / 2 for s in p.size_m)
        kind, geo, origin = 1, (*p.center_m, *half), p.center_m
    else:
        kind, geo, origin = 2, (*p.center_m, p.radius_m, 0.0, 0.0), p.center_m
    return kind, np.array([*geo, p.cell_m, *origin, *p.color], dtype=np.float64)


if HAVE_NUMBA:
    _U32 = np.uint64(0xFFFFFFFF)

    @njit(cache=True, nogil=True, fastmath=False)
    def _paint_kernel(kind, prm, x, y, depth, color):  # type: ignore[no-untyped-def]
        # The scalar twin of _cast_* + _texture (same float64/float32 operations, same hash).
        h, w = x.shape
        cell = prm[6]
        hc = 0.5 * cell
        for i in range(h):
            for j in range(w):
                xx = x[i, j]
                yy = y[i, j]
                t = np.inf
                if kind == 0:
                    nd = prm[0] * xx + prm[1] * yy + prm[2]
                    if nd != 0.0:
                        t = prm[3] / nd
                    if not t > 0 or not np.isfinite(t):
                        t = np.inf
                elif kind == 2:
                    a = xx * xx + yy * yy + 1.0
                    b = xx * prm[0] + yy * prm[1] + prm[2]
                    c = prm[0] * prm[0] + prm[1] * prm[1] + prm[2] * prm[2] - prm[3] * prm[3]
                    disc = b * b - a * c
                    if disc >= 0:
                        root = np.sqrt(disc)
                        t = (b - root) / a
                        if not t > 0:
                            t = (b + root) / a
                        if not t > 0:
                            t = np.inf
                else:
                    tn = max(prm[2] - prm[5], 0.0)
                    tf = prm[2] + prm[5]
                    for ax in range(2):
                        d = xx if ax == 0 else yy
                        lo = prm[ax] - prm[3 + ax]
                        hi = prm[ax] + prm[3 + ax]
                        if d == 0.0:
                            if not (lo <= 0.0 <= hi):
                                tn = np.inf
                                tf = -np.inf
                        else:
                            t1 = lo / d
                            t2 = hi / d
                            tn = max(tn, min(t1, t2))
                            tf = min(tf, max(t1, t2))
                    t = tn if tn > 0 else tf
                    if not (tn <= tf and t > 0):
                        t = np.inf
                if not t < depth[i, j]:
                    continue
                depth[i, j] = t
                px = xx * t - prm[7]
                py = yy * t - prm[8]
                pz = t - prm[9]
                chk = (np.floor((px + hc) / cell) + np.floor((py + hc) / cell) + np.floor((pz + hc) / cell)) % 2
                ix = np.uint64(np.int64(np.floor(px / _FINE_M)) & 0xFFFFFFFF)
                iy = np.uint64(np.int64(np.floor(py / _FINE_M)) & 0xFFFFFFFF)
                iz = np.uint64(np.int64(np.floor(pz / _FINE_M)) & 0xFFFFFFFF)
                hs = (ix * np.uint64(0x9E3779B1) + iy * np.uint64(0x85EBCA77) + iz * np.uint64(0xC2B2AE3D)) & _U32
                hs ^= hs >> np.uint64(15)
                hs = (hs * np.uint64(0x2C1B3C6D)) & _U32
                hs ^= hs >> np.uint64(12)
                noise = np.float32(hs & np.uint64(255)) / np.float32(255.0)
                shade = np.float32(0.4) + np.float32(0.35) * np.float32(chk) + np.float32(0.25) * noise
                for k in range(3):
                    val = shade * np.float32(prm[10 + k]) + np.float32(0.5)
                    val = min(max(val, np.float32(0.0)), np.float32(255.0))
                    color[i, j, k] = np.uint8(val)


def _composite(
    prims: tuple[Primitive, ...], x: np.ndarray, y: np.ndarray, depth: np.ndarray, color: np.ndarray
) -> None:
    """Ray-cast ``prims`` on rays (x, y) and write nearer hits into ``depth`` (float64, inf = none) and
    ``color`` (uint8) in place. Compiled when numba is there; the numpy path computes the same."""
    for p in prims:
        if HAVE_NUMBA:
            kind, prm = _params(p)
            _paint_kernel(kind, prm, x, y, depth, color)
            continue
        t = _cast(p, x, y)
        nearer = t < depth
        if not nearer.any():
            continue
        tn = t[nearer]
        depth[nearer] = tn
        color[nearer] = _texture(p, x[nearer] * tn, y[nearer] * tn, tn)


class _Renderer:
    """Cached rays and static background of one (Intrinsics, static primitives) pair."""

    def __init__(self, intr: Intrinsics, static: tuple[Primitive, ...]) -> None:
        self.rays = _Rays(intr)
        depth = np.full(intr.shape, np.inf)
        color = np.zeros((*intr.shape, 3), dtype=np.uint8)
        _composite(static, self.rays.x, self.rays.y, depth, color)
        self.depth = depth.astype(np.float32)
        self.color = color
        self.has_misses = bool(np.isinf(self.depth).any())

    def _rect(self, p: Box | Sphere) -> tuple[slice, slice]:
        """The pixel rectangle that contains the projection of ``p`` (the whole image when unsure)."""
        intr = self.rays.intr
        full = (slice(0, intr.height), slice(0, intr.width))
        if intr.is_distorted or intr.skew != 0.0:
            return full
        half = np.asarray(p.size_m) / 2 if isinstance(p, Box) else np.full(3, p.radius_m)
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        corners = np.asarray(p.center_m) + half * signs
        if corners[:, 2].min() <= 1e-6:
            return full
        u = intr.fx * corners[:, 0] / corners[:, 2] + intr.cx
        r = intr.fy * corners[:, 1] / corners[:, 2] + intr.cy
        u0 = min(intr.width, max(0, math.floor(u.min()) - 1))
        u1 = max(u0, min(intr.width, math.ceil(u.max()) + 2))
        r0 = min(intr.height, max(0, math.floor(r.min()) - 1))
        r1 = max(r0, min(intr.height, math.ceil(r.max()) + 2))
        return slice(r0, r1), slice(u0, u1)

    def render(self, moving: tuple[Box | Sphere, ...]) -> tuple[np.ndarray, np.ndarray]:
        depth = self.depth.copy()
        color = self.color.copy()
        for p in moving:
            rs, cs = self._rect(p)
            if rs.stop == rs.start or cs.stop == cs.start:
                continue
            sub = depth[rs, cs].astype(np.float64)
            # color[rs, cs] is a view: _composite paints the nearer hits straight into the frame.
            _composite((p,), self.rays.x[rs, cs], self.rays.y[rs, cs], sub, color[rs, cs])
            depth[rs, cs] = sub
        if self.has_misses:
            depth[np.isinf(depth)] = 0.0
        return depth, color


@functools.lru_cache(maxsize=8)
def _renderer(intr: Intrinsics, static: tuple[Primitive, ...]) -> _Renderer:
    return _Renderer(intr, static)


def render_scene(
    intrinsics: Intrinsics, t: float = 0.0, *, scene: Scene | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``scene`` (default: :func:`default_scene`) at time ``t`` seconds through ``intrinsics``.

    Returns ``depth`` (H, W) float32 metres — the z of the nearest surface hit by the ray through each
    pixel centre, exact up to one float32 rounding, 0 where nothing is hit — and ``color`` (H, W, 3)
    uint8 RGB, a texture of the hit point (black where nothing is hit). Distorted intrinsics cast the
    undistorted ray of each pixel, so unprojecting the depth with the same intrinsics lands on the
    surfaces exactly.
    """
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    tt = v.number("t", t)
    sc = _DEFAULT_SCENE if scene is None else scene
    if not isinstance(sc, Scene):
        raise InputError(f"scene: expected Scene, got {type(sc).__name__}")
    renderer = _renderer(intrinsics, sc.static)
    return renderer.render(tuple(p.at(tt) for p in sc.moving if not isinstance(p, Plane)))


# -- the source -----------------------------------------------------------------------------------


class SyntheticSource(ThreadedSource):
    """Streams :func:`render_scene` at ``fps``: frame ``seq`` shows the scene at t = seq / fps, stamped t.

    realtime: pace frames at ``fps`` on the wall clock (ticks that cannot be met are skipped and counted
    as ``missed``); False renders every frame as fast as the consumer takes them (none skipped). frames: stop after this many
    (None = endless).
    """

    def __init__(
        self,
        intrinsics: Intrinsics | None = None,
        *,
        fps: float = 30.0,
        scene: Scene | None = None,
        realtime: bool = True,
        frames: int | None = None,
        frame_id: str = "synthetic",
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        intr = intrinsics or default_intrinsics(640, 480)
        if not isinstance(intr, Intrinsics):
            raise InputError(f"intrinsics: expected Intrinsics, got {type(intr).__name__}")
        rate = v.number("fps", fps, positive=True, high=1000.0)
        super().__init__(f"synthetic:{intr.width}x{intr.height}@{rate:g}", reconnect=reconnect)
        self.intrinsics = intr
        self.fps = rate
        self.scene = scene or _DEFAULT_SCENE
        if not isinstance(self.scene, Scene):
            raise InputError(f"scene: expected Scene, got {type(self.scene).__name__}")
        self.realtime = bool(realtime)
        self.lossless = not self.realtime
        self.limit = None if frames is None else v.integer("frames", frames, low=1)
        self.frame_id = frame_id
        self._limiter: RateLimiter | None = None
        self._tick = -1

    def _open(self) -> None:
        # Warm the cache so the first frame is not late.
        _renderer(self.intrinsics, self.scene.static)
        self._limiter = RateLimiter(self.fps) if self.realtime else None

    def _read(self) -> Frame | None:
        step = 1
        if self._limiter is not None:
            missed = self._limiter.wait(self._stop_event)
            if missed < 0:
                return None
            self._count_missed(missed)
            step += missed
        self._tick += step
        if self.limit is not None and self._tick >= self.limit:
            return None
        t = self._tick / self.fps
        depth, color = render_scene(self.intrinsics, t, scene=self.scene)
        return Frame(depth, self.intrinsics, color, seq=self._tick, stamp=t, frame_id=self.frame_id)

    def _close(self) -> None:
        self._limiter = None


_SIZE_RE = re.compile(r"^(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?$")


def open_synthetic(arg: str = "", *, intrinsics: Intrinsics | None = None, **options: Any) -> SyntheticSource:
    """The ``synthetic[:WxH[@FPS]]`` source spec (default 640x480@30); ``intrinsics`` replaces the
    default camera; ``options`` go to :class:`SyntheticSource` (realtime, frames, scene, frame_id,
    reconnect)."""
    m = _SIZE_RE.match(arg.strip())
    if m is None:
        raise ConfigError(f"synthetic: expected 'synthetic[:WxH[@FPS]]' (e.g. synthetic:640x480@30), got {arg!r}")
    w, h, fps = m.group(1), m.group(2), m.group(3)
    width, height = (int(w), int(h)) if w else (640, 480)
    if width < 1 or height < 1:
        raise ConfigError(f"synthetic: size must be at least 1x1, got {width}x{height}")
    rate = float(fps) if fps else float(options.pop("fps", 30.0))
    if not 0 < rate <= 1000:
        raise ConfigError(f"synthetic: fps must be in (0, 1000], got {rate:g}")
    intr = intrinsics or default_intrinsics(width, height)
    return SyntheticSource(intr, fps=rate, **options)
