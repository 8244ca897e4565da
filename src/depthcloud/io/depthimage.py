"""Depth, disparity and colour images on disk, converted once to depthcloud's units.

* Depth: float32 metres, 0 = invalid. 16-bit PNG with ``depth_scale`` metres per unit (RealSense
  z16 and Open3D's Redwood frames: 0.001), TUM RGB-D PNG (``kind="tum"``: metres = value / 5000),
  and float images already in metres (PFM, NPY, EXR where OpenCV was built with OpenEXR).
* Legacy Middlebury disparity PNG/PGM: 8-bit, disparity pixels = value / scale, 0 = unknown.
* Colour: (H, W, 3) uint8 **RGB**. OpenCV decodes BGR; the one conversion happens here.

Errors: a missing file is an :class:`InputError`; a file that cannot be decoded, or whose bit depth
does not fit the asked kind, is a :class:`FormatError` naming the file.
This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import PathArg, read_input, write_atomic
from depthcloud.io.limits import check_image_bytes, check_npy_header
from depthcloud.io.pfm import decode_pfm

__all__ = ["DEPTH_KINDS", "TUM_DEPTH_SCALE", "read_color", "read_depth", "read_disparity", "read_disparity_png",
           "write_depth_png", "write_png"]

TUM_DEPTH_SCALE = 1.0 / 5000.0
DEPTH_KINDS = ("auto", "png", "tum", "pfm", "npy", "exr")
_KIND_BY_SUFFIX = {".png": "png", ".pgm": "png", ".pfm": "pfm", ".npy": "npy", ".exr": "exr"}


def _decode_image(data: bytes, name: str, flags: int, max_pixels: int | None = None) -> np.ndarray:
    check_image_bytes(data, path=name, limit=max_pixels)  # before OpenCV allocates what the header says
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:
        raise FormatError(f"cannot decode the image ({str(exc).strip().splitlines()[-1]})", path=name) from exc
    if img is None:
        raise FormatError("cannot decode the image (not an image, truncated, or an unsupported codec)", path=name)
    return img


def _float_metres(depth: np.ndarray) -> np.ndarray:
    out = np.asarray(depth, dtype=np.float32).copy()
    out[~np.isfinite(out) | (out < 0)] = 0.0
    return out


def read_depth(path: PathArg, *, depth_scale: float | None = None, kind: str = "auto",
               max_pixels: int | None = None) -> np.ndarray:
    """Read a depth image as (H, W) float32 metres, 0 = invalid.

    kind: ``auto`` (by suffix: .png/.pgm → ``png``, .pfm, .npy, .exr), ``png`` (16-bit, metres =
    value × ``depth_scale``, default 0.001), ``tum`` (16-bit, value / 5000; ``depth_scale`` must not
    be given), ``npy`` (integer arrays are sensor units like a PNG: metres = value × ``depth_scale``,
    default 0.001; float arrays are metres, × ``depth_scale`` when given), ``pfm``/``exr`` (float
    metres). Non-finite and negative values → 0. max_pixels: the size limit checked before decoding
    (see :mod:`depthcloud.io.limits`; default ``$DEPTHCLOUD_MAX_PIXELS`` or 2**26).
    """
    if kind not in DEPTH_KINDS:
        raise InputError(f"kind: expected one of {', '.join(DEPTH_KINDS)}, got {kind!r}")
    name = Path(path).name
    if kind == "auto":
        suffix = Path(path).suffix.lower()
        if suffix not in _KIND_BY_SUFFIX:
            raise InputError(f"unknown depth image suffix {suffix or '(none)'!r}; expected one of "
                             f"{' '.join(_KIND_BY_SUFFIX)}", path=name)
        kind = _KIND_BY_SUFFIX[suffix]
    if kind == "tum":
        if depth_scale is not None:
            raise InputError("depth_scale: TUM depth is fixed at 1/5000 m per unit; do not pass depth_scale")
        scale = TUM_DEPTH_SCALE
    else:
        scale = 0.001 if depth_scale is None else v.number("depth_scale", depth_scale, positive=True)
        if kind not in ("png", "npy") and depth_scale is not None:
            raise InputError(f"depth_scale: {kind} depth is already in metres; depth_scale applies to PNG and NPY only")
    data = read_input(path)
    if kind == "pfm":
        img = decode_pfm(data, path=name)
        if img.ndim != 2:
            raise FormatError(f"expected a one-channel (Pf) depth map, got {img.shape[2]} channels", path=name)
        return _float_metres(img)
    if kind == "npy":
        check_npy_header(io.BytesIO(data), path=name, limit=max_pixels)
        try:
            img = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as exc:  # numpy's header parser raises several types
            raise FormatError(f"not a readable .npy file ({exc})", path=name) from exc
        if not isinstance(img, np.ndarray) or img.ndim != 2 or img.dtype.kind not in "fiu":
            raise FormatError(f"expected a numeric (H, W) array, got {getattr(img, 'shape', type(img).__name__)}",
                              path=name)
        if img.dtype.kind in "iu":
            # Integer depth is in sensor units, like a 16-bit PNG: millimetres unless depth_scale says.
            return _float_metres(img.astype(np.float64) * scale)
        return _float_metres(img if depth_scale is None else img.astype(np.float64) * scale)
    if kind == "exr":
        try:
            img = _decode_image(data, name, cv2.IMREAD_UNCHANGED, max_pixels)
        except FormatError as exc:
            raise FormatError(f"{exc.message}; OpenCV reads EXR only when built with OpenEXR and run with "
                              "OPENCV_IO_ENABLE_OPENEXR=1 (or store depth as PFM or NPY)", path=name) from exc
        if img.ndim == 3:
            img = img[:, :, 0]  # depth EXRs repeat Z in every channel; take the first
        return _float_metres(img)
    img = _decode_image(data, name, cv2.IMREAD_UNCHANGED, max_pixels)
    if img.ndim != 2 or img.dtype != np.uint16:
        got = f"{img.dtype} with {1 if img.ndim == 2 else img.shape[2]} channel(s)"
        raise FormatError(f"expected a 16-bit one-channel depth PNG, got {got}", path=name)
    # Scale in float64, round once: 3000 units × 0.001 must give float32(3.0), not the next float up.
    return (img.astype(np.float64) * scale).astype(np.float32)


def write_depth_png(path: PathArg, depth_m: np.ndarray, *, depth_scale: float = 0.001,
                    overwrite: bool = False) -> Path:
    """Write (H, W) float metres as a 16-bit PNG of units of ``depth_scale`` metres (rounded).

    Invalid values (0, negative, NaN, inf) are written as 0. A valid depth that does not fit in 16 bits
    (above 65535 × depth_scale metres) is an :class:`InputError`; one that rounds to 0 units is clipped to 1.
    """
    depth = v.image("depth_m", depth_m, kinds="fiu")
    scale = v.number("depth_scale", depth_scale, positive=True)
    d = depth.astype(np.float64)
    valid = np.isfinite(d) & (d > 0)
    units = np.zeros(d.shape, dtype=np.float64)
    units[valid] = np.rint(d[valid] / scale)
    if valid.any() and units.max() > 65535:
        raise InputError(f"depth_m: max depth {d[valid].max():.6g} m does not fit in 16 bits at depth_scale "
                         f"{scale:g} m (limit {65535 * scale:.6g} m)")
    units[valid] = np.maximum(units[valid], 1)  # a valid depth must not become 'invalid'
    ok, buf = cv2.imencode(".png", units.astype(np.uint16))
    if not ok:
        raise FormatError("OpenCV could not encode the PNG", path=Path(path).name)
    return write_atomic(path, buf.tobytes(), overwrite=overwrite)


def read_disparity_png(path: PathArg, *, scale: float) -> np.ndarray:
    """Read a legacy Middlebury disparity image (8-bit PNG/PGM) as (H, W) float32 pixels.

    disparity = value / ``scale`` (Tsukuba 16, Venus 8, Cones 4, 2005/2006 ThirdSize 3); 0 = unknown
    stays 0. A three-channel file must be grey (equal channels).
    """
    s = v.number("scale", scale, positive=True)
    name = Path(path).name
    img = _decode_image(read_input(path), name, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        if img.shape[2] not in (3, 4) or not (np.array_equal(img[:, :, 0], img[:, :, 1])
                                              and np.array_equal(img[:, :, 0], img[:, :, 2])):
            raise FormatError("expected a grey disparity image, got colour channels that differ", path=name)
        img = img[:, :, 0]
    if img.dtype != np.uint8:
        raise FormatError(f"expected an 8-bit disparity image, got {img.dtype}", path=name)
    return (img.astype(np.float64) / s).astype(np.float32)


def read_disparity(path: PathArg, *, scale: float | None = None) -> np.ndarray:
    """A disparity image as (H, W) float32 pixels: PFM (inf = unknown), NPY, or an 8-bit PNG/PGM/TIFF
    divided by ``scale`` (:func:`read_disparity_png`; required for those)."""
    name = Path(path).name
    ext = Path(path).suffix.lower()
    if scale is not None and ext not in (".png", ".pgm", ".tif", ".tiff"):
        raise InputError(f"--disparity-scale applies to PNG disparity only; {ext} disparity is already in pixels",
                         path=path)
    if ext == ".pfm":
        d = decode_pfm(read_input(path), path=name)
    elif ext == ".npy":
        data = read_input(path)
        check_npy_header(io.BytesIO(data), path=name, limit=None)
        try:
            d = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FormatError(f"not a readable .npy array ({exc})", path=name) from exc
    elif ext in (".png", ".pgm", ".tif", ".tiff"):
        if scale is None:
            raise InputError(f"{path}: a disparity PNG needs --disparity-scale (stored value / scale = pixels)")
        d = read_disparity_png(path, scale=scale)
    else:
        raise FormatError("unknown disparity format; expected .pfm, .npy or .png", path=name)
    if d.ndim == 3:
        d = d[..., 0]
    if d.ndim != 2:
        raise FormatError(f"expected a single-channel disparity image, got shape {d.shape}", path=name)
    return d.astype(np.float32, copy=False)


def read_color(path: PathArg, *, max_pixels: int | None = None) -> np.ndarray:
    """Read a colour image as (H, W, 3) uint8 RGB (grey is repeated to 3 channels, alpha dropped,
    16-bit reduced to 8). max_pixels: as for :func:`read_depth`."""
    name = Path(path).name
    img = _decode_image(read_input(path), name, cv2.IMREAD_COLOR, max_pixels)
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def write_png(path: PathArg, rgb_or_gray: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write an image as PNG: (H, W, 3) uint8 RGB, or (H, W) uint8/uint16 grey. Colours land as given
    (RGB in, RGB in the file)."""
    img = v.array("rgb_or_gray", rgb_or_gray, ndim=(2, 3), kinds="u", expected="(H, W) or (H, W, 3)")
    if img.ndim == 3:
        if img.shape[2] != 3 or img.dtype != np.uint8:
            raise InputError(f"rgb_or_gray: expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    elif img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"rgb_or_gray: expected a uint8 or uint16 grey image, got {img.dtype}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise FormatError("OpenCV could not encode the PNG", path=Path(path).name)
    return write_atomic(path, buf.tobytes(), overwrite=overwrite)
