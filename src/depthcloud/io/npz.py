"""NumPy ``.npz`` point clouds: the arrays themselves, exactly, with the frame and stamp.

Arrays: ``points`` (N, 3) float32, optional ``colors`` (N, 3) uint8 and ``normals`` (N, 3) float32,
``frame`` (a 0-d string array) and optional ``stamp`` (0-d float64). Files are read without pickle.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from depthcloud.cloud import PointCloud
from depthcloud.errors import DepthcloudError, FormatError, InputError
from depthcloud.io._files import PathArg, read_input, write_atomic
from depthcloud.io.limits import check_npy_header

__all__ = ["decode_npz", "encode_npz", "read_npz", "write_npz"]


def decode_npz(data: bytes, *, path: PathArg | None = None, max_pixels: int | None = None) -> PointCloud:
    """A cloud from the bytes of an ``.npz`` written by :func:`encode_npz` (or by hand with the same keys).

    Every array's header is checked against the size limit before any array is read (a few compressed
    bytes may declare gigabytes): see :mod:`depthcloud.io.limits` for ``max_pixels``.
    """
    _check_members(data, None if path is None else str(path), max_pixels)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, zlib and numpy's header parser raise many types
        raise FormatError(f"not a readable .npz file ({exc})", path=path) from exc
    if "points" not in arrays:
        raise FormatError(f"no 'points' array (found: {', '.join(sorted(arrays)) or 'none'})", path=path)
    frame = "optical"
    if "frame" in arrays:
        f = arrays["frame"]
        if f.ndim != 0 or f.dtype.kind != "U":
            raise FormatError("'frame' must be a 0-d string array", path=path, key="frame")
        frame = str(f)
    stamp = None
    if "stamp" in arrays:
        s = arrays["stamp"]
        if s.ndim != 0 or s.dtype.kind not in "fiu":
            raise FormatError("'stamp' must be a 0-d number", path=path, key="stamp")
        stamp = float(s)
    try:
        return PointCloud(arrays["points"], arrays.get("colors"), arrays.get("normals"), frame=frame, stamp=stamp)
    except DepthcloudError as exc:
        raise FormatError(exc.message, path=path) from exc


def _check_members(data: bytes, path: str | None, max_pixels: int | None) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as member:
                    check_npy_header(member, path=path, key=info.filename[:-4], limit=max_pixels)
    except FormatError:
        raise
    except Exception as exc:  # zipfile and zlib raise many types for a damaged archive
        raise FormatError(f"not a readable .npz file ({exc})", path=path) from exc


def read_npz(path: PathArg) -> PointCloud:
    """Read a cloud from an ``.npz`` file (see the module docstring)."""
    return decode_npz(read_input(path), path=Path(path).name)


def encode_npz(cloud: PointCloud) -> bytes:
    """The bytes of an ``.npz`` holding ``cloud``'s arrays, frame and stamp (uncompressed)."""
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    arrays: dict[str, np.ndarray] = {"points": cloud.points, "frame": np.array(cloud.frame)}
    if cloud.colors is not None:
        arrays["colors"] = cloud.colors
    if cloud.normals is not None:
        arrays["normals"] = cloud.normals
    if cloud.stamp is not None:
        arrays["stamp"] = np.array(float(cloud.stamp))
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def write_npz(path: PathArg, cloud: PointCloud, *, overwrite: bool = False) -> Path:
    """Write ``cloud`` as ``.npz``; refuses an existing file unless ``overwrite``; whole or not at all."""
    return write_atomic(path, encode_npz(cloud), overwrite=overwrite)
