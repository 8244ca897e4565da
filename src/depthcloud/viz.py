"""Pictures: colour-mapped depth and disparity, colour bars, side-by-side figures, cloud renders.

Every function returns an (H, W, 3) uint8 **RGB** image (never BGR); :func:`save_png` converts to
OpenCV's BGR order when writing, so colours on disk are right. Cloud renders are a software z-buffer
splat (no display, no OpenGL), so they work on a headless machine and in tests.

This module must not import sources, the server or the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthcloud import _validate as v
from depthcloud._jit import HAVE_NUMBA
from depthcloud.cloud import FRAMES, PointCloud
from depthcloud.errors import FormatError, InputError, OutputExistsError

__all__ = [
    "CMAPS",
    "VIEWS",
    "colorbar",
    "colorize",
    "render_cloud",
    "render_views",
    "save_png",
    "side_by_side",
    "value_range",
    "with_colorbar",
]

#: Colour map names accepted by ``cmap``: OpenCV's maps plus ``gray``.
CMAPS: tuple[str, ...] = ("gray", *sorted(n[len("COLORMAP_"):].lower() for n in dir(cv2) if n.startswith("COLORMAP_")))

_FONT = cv2.FONT_HERSHEY_SIMPLEX

# The z-buffer splat has a compiled kernel; the numpy path gives the same picture, slower.
_HAVE_NUMBA = HAVE_NUMBA
if _HAVE_NUMBA:
    from numba import njit

    @njit(cache=True, nogil=True)
    def _splat_numba(u, vv, z, colors, ps, img):  # type: ignore[no-untyped-def]
        h, w = img.shape[0], img.shape[1]
        zbuf = np.full((h, w), np.inf)
        half = (ps - 1) // 2
        for i in range(u.shape[0]):
            for dy in range(-half, ps - half):
                y = vv[i] + dy
                if y < 0 or y >= h:
                    continue
                for dx in range(-half, ps - half):
                    x = u[i] + dx
                    if x < 0 or x >= w:
                        continue
                    if z[i] < zbuf[y, x]:  # strictly nearer: on ties the earlier point stays
                        zbuf[y, x] = z[i]
                        img[y, x, 0] = colors[i, 0]
                        img[y, x, 1] = colors[i, 1]
                        img[y, x, 2] = colors[i, 2]


def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 RGB table of a colour map; index 0 is the low end."""
    if not isinstance(cmap, str) or cmap.lower() not in CMAPS:
        raise InputError(f"cmap: expected one of {', '.join(CMAPS)}, got {cmap!r}")
    ramp = np.arange(256, dtype=np.uint8)
    if cmap.lower() == "gray":
        return np.repeat(ramp[:, None], 3, axis=1)
    code = getattr(cv2, "COLORMAP_" + cmap.upper())
    bgr = cv2.applyColorMap(ramp.reshape(1, 256), code).reshape(256, 3)
    return np.ascontiguousarray(bgr[:, ::-1])


def _rgb_triplet(name: str, value: Any) -> np.ndarray:
    arr = v.array(name, value, shape=(3,), kinds="iuf", expected="(R, G, B)")
    if not (np.all(arr >= 0) and np.all(arr <= 255)):
        raise InputError(f"{name}: expected three values in 0..255, got {arr.tolist()}")
    return arr.astype(np.uint8)


def _valid_mask(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isfinite(values) & (values != 0)
    return values != 0


def value_range(values: Any, *, vmin: float | None = None, vmax: float | None = None) -> tuple[float, float]:
    """The (vmin, vmax) that :func:`colorize` uses: given bounds, else the 1st and 99th percentiles
    of the valid values (0, NaN and inf are invalid). (0.0, 1.0) when nothing is valid."""
    vals = v.image("values", values, kinds="fiub")
    lo = None if vmin is None else v.number("vmin", vmin)
    hi = None if vmax is None else v.number("vmax", vmax)
    if lo is None or hi is None:
        good = vals[_valid_mask(vals)]
        if good.size:
            p1, p99 = np.percentile(good.astype(np.float64), [1.0, 99.0])
            lo = float(p1) if lo is None else lo
            hi = float(p99) if hi is None else hi
        else:
            lo = 0.0 if lo is None else lo
            hi = lo + 1.0 if hi is None else hi
    if lo > hi:
        raise InputError(f"vmin {lo} exceeds vmax {hi}")
    return lo, hi


def colorize(
    values: Any,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "turbo",
    invalid_color: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Colour-map a depth or disparity image.

    values: (H, W) float or integer (metres, pixels, anything); 0, NaN and ±inf are invalid.
    vmin, vmax: the values mapped to the low and high ends of ``cmap`` (clipped outside);
    by default the 1st and 99th percentiles of the valid values (see :func:`value_range`).
    cmap: a name from ``CMAPS`` (OpenCV's colour maps, or ``gray``).
    Returns (H, W, 3) uint8 RGB; invalid pixels get ``invalid_color``.
    """
    vals = v.image("values", values, kinds="fiub")
    lut = _lut(cmap)
    bad = _rgb_triplet("invalid_color", invalid_color)
    lo, hi = value_range(vals, vmin=vmin, vmax=vmax)
    valid = _valid_mask(vals)
    span = hi - lo
    x = vals.astype(np.float64)
    with np.errstate(invalid="ignore"):
        t = (x - lo) / span if span > 0 else np.where(x > lo, 1.0, 0.0)
    idx = np.rint(np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    out = lut[idx]
    out[~valid] = bad
    return out


def _text(img: np.ndarray, text: str, org: tuple[int, int], *, scale: float = 0.45,
          color: tuple[int, int, int] = (0, 0, 0)) -> None:
    cv2.putText(img, text, org, _FONT, scale, color, 1, cv2.LINE_AA)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def colorbar(
    height: int,
    *,
    vmin: float,
    vmax: float,
    cmap: str = "turbo",
    label: str | None = None,
    width: int = 80,
    background: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """A vertical colour bar: ``vmax`` at the top, ``vmin`` at the bottom, with tick labels.

    height, width: pixels (height ≥ 16, width ≥ 24). label: text written above the bar (e.g. "m").
    Returns (height, width, 3) uint8 RGB.
    """
    h = v.integer("height", height, low=_bar_min_height(label))
    w = v.integer("width", width, low=24)
    lo = v.number("vmin", vmin)
    hi = v.number("vmax", vmax)
    if lo > hi:
        raise InputError(f"vmin {lo} exceeds vmax {hi}")
    lut = _lut(cmap)
    bg = _rgb_triplet("background", background)
    out = np.empty((h, w, 3), np.uint8)
    out[:] = bg
    top = 18 if label else 6
    bottom = h - 6
    bar_w = min(16, max(4, w // 4))
    x0 = 4
    n = max(bottom - top, 1)
    ramp = np.linspace(255, 0, n).round().astype(np.uint8)  # top row is the high end
    out[top:top + n, x0:x0 + bar_w] = lut[ramp][:, None, :]
    if label:
        _text(out, str(label), (2, 12), scale=0.4)
    ticks = 5 if n >= 80 else 2
    for i in range(ticks):
        frac = i / (ticks - 1)
        y = top + round(frac * (n - 1))
        out[y, x0 + bar_w:x0 + bar_w + 3] = 0
        val = hi - frac * (hi - lo)
        _text(out, _fmt(val), (x0 + bar_w + 5, min(max(y + 4, 10), h - 2)), scale=0.35)
    return out


def _bar_min_height(label: str | None) -> int:
    # The label strip (18 px) and the 6 px margin below must leave a bar of at least 10 px.
    return 34 if label else 16


def with_colorbar(
    img: Any,
    *,
    vmin: float,
    vmax: float,
    cmap: str = "turbo",
    label: str | None = None,
    width: int = 80,
) -> np.ndarray:
    """``img`` (an (H, W, 3) uint8 RGB colour-mapped image) with a colour bar of the same height
    on its right. Returns (H, W + width, 3) uint8 RGB; the image is not modified."""
    rgb = v.color_image("img", img)
    bar = colorbar(max(rgb.shape[0], _bar_min_height(label)), vmin=vmin, vmax=vmax, cmap=cmap, label=label, width=width)
    if bar.shape[0] != rgb.shape[0]:  # tiny images: pad the image to the bar's minimum height
        pad = np.full((bar.shape[0] - rgb.shape[0], rgb.shape[1], 3), 255, np.uint8)
        rgb = np.concatenate([rgb, pad], axis=0)
    return np.concatenate([rgb, bar], axis=1)


def _as_rgb(name: str, img: Any) -> np.ndarray:
    arr = v.array(name, img, ndim=(2, 3), kinds="ub", expected="(H, W) or (H, W, 3)")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    return v.color_image(name, arr)


def side_by_side(
    images: Sequence[Any],
    *,
    labels: Sequence[str] | None = None,
    gap: int = 8,
    background: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """Images in one row, left to right, top-aligned; shorter ones padded with ``background``.

    images: (H, W) grey or (H, W, 3) RGB uint8 (bool masks become black/white), sizes may differ.
    labels: one caption per image, written in a strip above it. gap: pixels between images.
    Returns (max H [+ caption strip], sum W + gaps, 3) uint8 RGB.
    """
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence) or len(images) == 0:
        raise InputError("images: expected a non-empty list of images")
    rgbs = [_as_rgb(f"images[{i}]", im) for i, im in enumerate(images)]
    g = v.integer("gap", gap, low=0)
    bg = _rgb_triplet("background", background)
    if labels is not None and (isinstance(labels, str) or len(labels) != len(rgbs)):
        raise InputError(f"labels: expected {len(rgbs)} captions, one per image, got {labels!r}")
    strip = 22 if labels is not None else 0
    h = max(im.shape[0] for im in rgbs) + strip
    w = sum(im.shape[1] for im in rgbs) + g * (len(rgbs) - 1)
    out = np.empty((h, w, 3), np.uint8)
    out[:] = bg
    x = 0
    for i, im in enumerate(rgbs):
        out[strip:strip + im.shape[0], x:x + im.shape[1]] = im
        if labels is not None:
            _text(out, str(labels[i]), (x + 3, 15), scale=0.45)
        x += im.shape[1] + g
    return out


def grid(
    images: Sequence[Any],
    *,
    columns: int = 2,
    labels: Sequence[str] | None = None,
    gap: int = 8,
    background: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """Images in rows of ``columns``, left to right then top to bottom (each row a :func:`side_by_side`,
    rows stacked with ``gap`` between them and padded to one width). Returns uint8 RGB."""
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence) or len(images) == 0:
        raise InputError("images: expected a non-empty list of images")
    c = v.integer("columns", columns, low=1)
    g = v.integer("gap", gap, low=0)
    if labels is not None and (isinstance(labels, str) or len(labels) != len(images)):
        raise InputError(f"labels: expected {len(images)} captions, one per image, got {labels!r}")
    bg = _rgb_triplet("background", background)
    rows = [side_by_side(images[i:i + c], labels=None if labels is None else labels[i:i + c], gap=g,
                         background=background)
            for i in range(0, len(images), c)]
    w = max(r.shape[1] for r in rows)
    out = np.empty((sum(r.shape[0] for r in rows) + g * (len(rows) - 1), w, 3), np.uint8)
    out[:] = bg
    y = 0
    for r in rows:
        out[y:y + r.shape[0], :r.shape[1]] = r
        y += r.shape[0] + g
    return out


def hatch(img: Any, mask: Any, *, every_px: int = 6, color: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """``img`` (H, W, 3) uint8 RGB with diagonal stripes of ``color`` drawn over the pixels of ``mask``
    (H, W) bool, one stripe every ``every_px`` pixels; e.g. to mark values hole filling made up.
    Returns a new image; ``img`` is not modified."""
    rgb = v.color_image("img", img).copy()
    m = v.array("mask", mask, ndim=2, kinds="b")
    if m.shape != rgb.shape[:2]:
        raise InputError(f"mask: expected shape {rgb.shape[:2]}, got {m.shape}")
    k = v.integer("every_px", every_px, low=2)
    yy, xx = np.indices(m.shape)
    stripes = m & ((xx + yy) % k < max(1, k // 3))
    rgb[stripes] = _rgb_triplet("color", color)
    return rgb


# -- cloud renders --------------------------------------------------------------------------------

# Rotation from the optical frame into each view's camera frame (x right, y down, z into the scene).
VIEWS: dict[str, np.ndarray] = {
    # from the camera's side, looking forward (+z)
    "front": np.eye(3),
    # from the scene's left (−x), looking towards +x; the scene's forward (+z) appears on the left
    "left": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
    # from the scene's right (+x), looking towards −x; forward appears on the right
    "right": np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]),
    # from above (−y is up in the optical frame), looking down; forward (+z) at the top of the image
    "top": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
}

_HFOV_DEG = 40.0


_ROBUST_MIN_POINTS = 200


def _extent(a: np.ndarray) -> float:
    """Half-width of ``a`` about 0 that a picture must show: the 99.5th percentile of |a| for
    clouds large enough to have stray points, the maximum for small ones."""
    if a.size == 0:
        return 0.0
    if a.size < _ROBUST_MIN_POINTS:
        return float(np.abs(a).max())
    return float(np.quantile(np.abs(a), 0.995))


def _cloud_in_optical(cloud: PointCloud) -> PointCloud:
    if cloud.frame in FRAMES and cloud.frame != "optical":
        return cloud.to_frame("optical")
    return cloud


def view_pixels(points: np.ndarray, view: str, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Where the virtual camera of :func:`render_cloud` puts optical-frame ``points`` (N, 3).

    Returns float64 (N,) pixel columns, rows and depths along the view, and a bool mask of the
    points in front of the camera (the others have meaningless pixels). Shared by every render, so
    clouds and meshes of one scene are framed alike.
    """
    w, h = width, height
    R = VIEWS[view]
    # View-camera coordinates, centroid at the origin (column by column: no BLAS on a busy machine).
    c = points.mean(axis=0, dtype=np.float64)
    p = np.empty((points.shape[0], 3), np.float64)
    for i in range(3):
        p[:, i] = sum(R[i, j] * (points[:, j].astype(np.float64) - c[j]) for j in range(3))
    tan_half = math.tan(math.radians(_HFOV_DEG) / 2.0)
    ext_xy = max(_extent(p[:, 0]), _extent(p[:, 1]) * w / h)
    ext_z = _extent(p[:, 2])
    # Far enough to see the whole cloud, and never closer to its front than its depth, so that a
    # deep, narrow cloud is not drawn with an extreme perspective.
    dist = ext_z + max(ext_xy / tan_half, ext_z, 1e-6)
    zc = p[:, 2] + dist
    # A few stray points (outliers a sensor or matcher leaves) are fitted out of the picture, not
    # allowed to shrink everything else; they may fall behind the virtual camera, so drop those.
    front = zc > 1e-9 * dist
    xn, yn = p[:, 0] / np.where(front, zc, 1.0), p[:, 1] / np.where(front, zc, 1.0)
    # Fit: the (robust) largest normalised offset from the centroid reaches 95 % of the half-image.
    reach = max(_extent(xn[front]) / (w / 2.0), _extent(yn[front]) / (h / 2.0))
    f = 0.95 / reach if reach > 0 else 1.0
    return (w - 1) / 2.0 + f * xn, (h - 1) / 2.0 + f * yn, zc, front


def render_cloud(
    cloud: PointCloud,
    *,
    view: str = "front",
    width: int = 640,
    height: int = 480,
    point_size: int = 1,
    background: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """A picture of a point cloud from a virtual pinhole camera, with no display or OpenGL.

    The camera looks at the cloud's centroid from the side named by ``view`` (``front``: from the
    sensor's side looking forward; ``left``/``right``: from the scene's left/right; ``top``: from
    above, forward at the top), far enough that the whole cloud is in view; the centroid lands on
    the image centre and the focal length is chosen so the cloud's bounds fill the picture.
    Sides are those of the optical frame (x right, y down, z forward); clouds in another named
    frame are converted first. Points are square splats of ``point_size`` pixels; the nearest
    point wins each pixel (a z-buffer). Colours come from the cloud, else a turbo map of distance.
    Returns (height, width, 3) uint8 RGB.
    """
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    if view not in VIEWS:
        raise InputError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
    w = v.integer("width", width, low=1)
    h = v.integer("height", height, low=1)
    ps = v.integer("point_size", point_size, low=1, high=64)
    bg = _rgb_triplet("background", background)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    if len(cloud) == 0:
        return img
    cl = _cloud_in_optical(cloud)
    xp, yp, zc, front = view_pixels(cl.points, view, w, h)
    u = np.rint(xp).astype(np.int64)
    vv = np.rint(yp).astype(np.int64)
    if cl.colors is not None:
        colors = cl.colors
    else:
        rng = np.linalg.norm(cl.points, axis=1)
        colors = colorize(rng.reshape(1, -1) + 1e-12, cmap="turbo").reshape(-1, 3)
    if not front.all():
        u, vv, zc, colors = u[front], vv[front], zc[front], colors[front]
    _splat(u, vv, zc, np.ascontiguousarray(colors), ps, img)
    return img


def _splat(u: np.ndarray, vv: np.ndarray, z: np.ndarray, colors: np.ndarray, ps: int, img: np.ndarray) -> None:
    """Draw ``ps``×``ps`` squares at integer pixels (u, vv) into ``img``; the nearest z wins each pixel
    (the earlier point on ties)."""
    if _HAVE_NUMBA:
        _splat_numba(u, vv, z, colors, ps, img)
    else:
        _splat_numpy(u, vv, z, colors, ps, img)


def _splat_numpy(u: np.ndarray, vv: np.ndarray, z: np.ndarray, colors: np.ndarray, ps: int, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    half = (ps - 1) // 2
    lin_parts, z_parts, idx_parts = [], [], []
    point_idx = np.arange(len(z))
    for dy in range(-half, ps - half):
        for dx in range(-half, ps - half):
            uu, vy = u + dx, vv + dy
            ok = (uu >= 0) & (uu < w) & (vy >= 0) & (vy < h)
            lin_parts.append(vy[ok] * w + uu[ok])
            z_parts.append(z[ok])
            idx_parts.append(point_idx[ok])
    lin = np.concatenate(lin_parts)
    if lin.size == 0:
        return
    zs = np.concatenate(z_parts)
    idx = np.concatenate(idx_parts)
    order = np.lexsort((idx, zs, lin))  # by pixel, nearest first, earlier point first on ties
    lin_s = lin[order]
    first = np.empty(lin_s.shape, bool)
    first[0] = True
    np.not_equal(lin_s[1:], lin_s[:-1], out=first[1:])
    img.reshape(-1, 3)[lin_s[first]] = colors[idx[order][first]]


# Views are drawn on mid grey: white points (walls, paper) and the empty shadows that occlusions leave
# behind objects seen from the side both stay visible, which they do not on white.
VIEW_BACKGROUND = (96, 96, 104)


def render_views(
    cloud: PointCloud,
    views: Sequence[str] = ("front", "left", "right"),
    *,
    width: int = 640,
    height: int = 480,
    point_size: int = 2,
    background: Sequence[int] = VIEW_BACKGROUND,
    labels: bool = True,
) -> np.ndarray:
    """Several :func:`render_cloud` views in one captioned row (on a grey background, 2-pixel splats so
    a cloud from an image of about the render's size has no see-through grid). Returns uint8 RGB of
    height ``height`` (+ a caption strip) and width ``len(views)·width`` + gaps."""
    if isinstance(views, str) or len(views) == 0:
        raise InputError(f"views: expected a non-empty list of view names, got {views!r}")
    imgs = [render_cloud(cloud, view=name, width=width, height=height, point_size=point_size,
                         background=background) for name in views]
    return side_by_side(imgs, labels=list(views) if labels else None)


def save_png(path: str | Path, rgb: Any, *, overwrite: bool = False) -> Path:
    """Write an RGB (H, W, 3) or grey (H, W) uint8 image as PNG; refuses to replace an existing
    file unless ``overwrite``. Returns the path written."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError(f"expected a .png path, got suffix {p.suffix!r}", path=p)
    img = _as_rgb("rgb", rgb)
    if p.exists() and not overwrite:
        raise OutputExistsError("exists; pass --overwrite to replace it", path=p)
    if p.is_dir():
        raise InputError("is a folder, expected a file path", path=p)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        ok = cv2.imwrite(str(p), np.ascontiguousarray(img[:, :, ::-1]))
    except cv2.error as exc:
        raise FormatError(f"could not write PNG ({exc})", path=p) from exc
    if not ok:
        raise FormatError("could not write PNG", path=p)
    return p
