"""Pictures of meshes without a display: a shaded, coloured software rasteriser.

The virtual camera is the one :func:`depthcloud.viz.render_cloud` uses (same views, same framing), so
a mesh and the cloud it came from are drawn alike. Each triangle is filled with its vertices' colours
(interpolated), times a Lambert term lit from the viewer's side, slightly above and to the left,
plus some ambient light; both sides of a triangle are lit. The nearest triangle wins each pixel
(z-buffer; the earlier triangle on ties). Colours come from the mesh, else a turbo map of distance.

This module must not import sources, the server or the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from depthcloud import _validate as v
from depthcloud._jit import HAVE_NUMBA
from depthcloud.cloud import FRAMES
from depthcloud.errors import InputError
from depthcloud.surface.mesh import TriangleMesh
from depthcloud.viz import VIEWS, _rgb_triplet, colorize, side_by_side, view_pixels

__all__ = ["render_mesh", "render_mesh_views"]

AMBIENT = 0.25
# Towards the light in each view camera's frame (x right, y down, z into the scene): from the viewer,
# a little above and to the left.
_LIGHT = np.array([-0.3, -0.5, -1.0]) / np.linalg.norm([-0.3, -0.5, -1.0])

_HAVE_NUMBA = HAVE_NUMBA
if _HAVE_NUMBA:
    from numba import njit

    @njit(cache=True, nogil=True)
    def _raster_numba(x, y, z, faces, shade, img):  # type: ignore[no-untyped-def]
        """Fill triangles in order; a pixel centre is inside when its three barycentric weights are
        ≥ 0. Depth is interpolated as 1/z (linear on the screen), colour linearly."""
        h, w = img.shape[0], img.shape[1]
        zbuf = np.full((h, w), -np.inf)  # holds 1/z: larger is nearer
        for t in range(faces.shape[0]):
            a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
            area = (x[b] - x[a]) * (y[c] - y[a]) - (x[c] - x[a]) * (y[b] - y[a])
            if area == 0.0:
                continue
            x0 = max(int(np.ceil(min(x[a], x[b], x[c]))), 0)
            x1 = min(int(np.floor(max(x[a], x[b], x[c]))), w - 1)
            y0 = max(int(np.ceil(min(y[a], y[b], y[c]))), 0)
            y1 = min(int(np.floor(max(y[a], y[b], y[c]))), h - 1)
            for py in range(y0, y1 + 1):
                for px in range(x0, x1 + 1):
                    wa = ((x[b] - px) * (y[c] - py) - (x[c] - px) * (y[b] - py)) / area
                    wb = ((x[c] - px) * (y[a] - py) - (x[a] - px) * (y[c] - py)) / area
                    wc = 1.0 - wa - wb
                    if wa < 0.0 or wb < 0.0 or wc < 0.0:
                        continue
                    iz = wa / z[a] + wb / z[b] + wc / z[c]
                    if iz > zbuf[py, px]:
                        zbuf[py, px] = iz
                        for k in range(3):
                            val = wa * shade[a, k] + wb * shade[b, k] + wc * shade[c, k]
                            img[py, px, k] = min(max(np.rint(val), 0.0), 255.0)


def _raster_numpy(x: np.ndarray, y: np.ndarray, z: np.ndarray, faces: np.ndarray, shade: np.ndarray,
                  img: np.ndarray) -> None:
    """The same pixels as the compiled kernel: every (triangle, pixel of its box) pair at once, the
    inside ones kept, then the nearest (earliest on ties) per pixel."""
    h, w = img.shape[:2]
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    area = (x[b] - x[a]) * (y[c] - y[a]) - (x[c] - x[a]) * (y[b] - y[a])
    x0 = np.maximum(np.ceil(np.minimum(np.minimum(x[a], x[b]), x[c])), 0).astype(np.int64)
    x1 = np.minimum(np.floor(np.maximum(np.maximum(x[a], x[b]), x[c])), w - 1).astype(np.int64)
    y0 = np.maximum(np.ceil(np.minimum(np.minimum(y[a], y[b]), y[c])), 0).astype(np.int64)
    y1 = np.minimum(np.floor(np.maximum(np.maximum(y[a], y[b]), y[c])), h - 1).astype(np.int64)
    bw, bh = np.maximum(x1 - x0 + 1, 0), np.maximum(y1 - y0 + 1, 0)
    n = np.where(area != 0, bw * bh, 0)
    tri = np.repeat(np.arange(len(faces)), n)
    if tri.size == 0:
        return
    k = np.arange(tri.size) - np.repeat(np.cumsum(n) - n, n)  # index within each triangle's box
    px = x0[tri] + k % bw[tri]
    py = y0[tri] + k // bw[tri]
    ta, tb, tc = a[tri], b[tri], c[tri]
    ar = area[tri]
    wa = ((x[tb] - px) * (y[tc] - py) - (x[tc] - px) * (y[tb] - py)) / ar
    wb = ((x[tc] - px) * (y[ta] - py) - (x[ta] - px) * (y[tc] - py)) / ar
    wc = 1.0 - wa - wb
    inside = (wa >= 0) & (wb >= 0) & (wc >= 0)
    tri, px, py, wa, wb, wc = tri[inside], px[inside], py[inside], wa[inside], wb[inside], wc[inside]
    ta, tb, tc = a[tri], b[tri], c[tri]
    iz = wa / z[ta] + wb / z[tb] + wc / z[tc]
    lin = py * w + px
    order = np.lexsort((tri, -iz, lin))  # by pixel, nearest first, earliest triangle on ties
    lin_s = lin[order]
    first = np.ones(lin_s.shape, bool)
    first[1:] = lin_s[1:] != lin_s[:-1]
    pick = order[first]
    val = (wa[pick, None] * shade[ta[pick]] + wb[pick, None] * shade[tb[pick]] + wc[pick, None] * shade[tc[pick]])
    img.reshape(-1, 3)[lin[pick]] = np.clip(np.rint(val), 0, 255).astype(np.uint8)


def _mesh_in_optical(mesh: TriangleMesh) -> TriangleMesh:
    if mesh.frame in FRAMES and mesh.frame != "optical":
        return mesh.to_frame("optical")
    return mesh


def render_mesh(
    mesh: TriangleMesh,
    *,
    view: str = "front",
    width: int = 640,
    height: int = 480,
    background: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """A shaded picture of a mesh from the virtual camera of :func:`depthcloud.viz.render_cloud`.

    view: ``front``, ``left``, ``right`` or ``top`` (sides of the optical frame; meshes in another named
    frame are converted first). Returns (height, width, 3) uint8 RGB; ``background`` where no
    triangle is.
    """
    if not isinstance(mesh, TriangleMesh):
        raise InputError(f"mesh: expected a TriangleMesh, got {type(mesh).__name__}")
    if view not in VIEWS:
        raise InputError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
    w = v.integer("width", width, low=1)
    h = v.integer("height", height, low=1)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = _rgb_triplet("background", background)
    if mesh.is_empty:
        return img
    m = _mesh_in_optical(mesh.remove_unused_vertices())
    x, y, zc, front = view_pixels(m.vertices, view, w, h)
    faces = m.faces[front[m.faces].all(axis=1)]  # a triangle with a corner behind the camera is not drawn
    if m.colors is not None:
        base = m.colors.astype(np.float64)
    else:
        rng = np.linalg.norm(m.vertices, axis=1)
        base = colorize(rng.reshape(1, -1) + 1e-12, cmap="turbo").reshape(-1, 3).astype(np.float64)
    nrm = (m.normals if m.normals is not None else m.compute_vertex_normals()).astype(np.float64)
    light = VIEWS[view].T @ _LIGHT  # the light direction in the optical frame
    lambert = np.abs(nrm @ light)   # both sides lit
    shade = base * (AMBIENT + (1.0 - AMBIENT) * lambert)[:, None]
    args = (x, y, np.where(front, zc, 1.0), np.ascontiguousarray(faces, np.int64), shade, img)
    if _HAVE_NUMBA:
        _raster_numba(*args)
    else:
        _raster_numpy(*args)
    return img


def render_mesh_views(
    mesh: TriangleMesh,
    views: Sequence[str] = ("front", "left", "right"),
    *,
    width: int = 480,
    height: int = 360,
    background: Sequence[int] = (255, 255, 255),
    labels: bool = True,
) -> np.ndarray:
    """Several :func:`render_mesh` views in one captioned row (like :func:`depthcloud.viz.render_views`)."""
    if isinstance(views, str) or len(views) == 0:
        raise InputError(f"views: expected a non-empty list of view names, got {views!r}")
    imgs = [render_mesh(mesh, view=name, width=width, height=height, background=background) for name in views]
    return side_by_side(imgs, labels=list(views) if labels else None)
