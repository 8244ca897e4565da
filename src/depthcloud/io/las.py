"""LAS 1.4 and LAZ point clouds (laspy, with the lazrs backend for LAZ).

Written one way: point format 7 (x y z, intensity, GPS time, 16-bit RGB), coordinates stored as
integers of 0.1 mm (``SCALE_M``) about offsets chosen from the data (the centre of the cloud's bounds,
rounded to a whole metre, so any cloud within ±200 km of its centre fits), RGB scaled 8 → 16 bit by
×257 (the LAS convention: 255 → 65535) and read back with >> 8 (exact for ours, right for writers
that use ×256), GPS time = the cloud's stamp for every point. Normals travel as three float32 extra
bytes dimensions (``nx ny nz``), and the depthcloud frame name (and whether there were colours) in a
small VLR, so a cloud reads back in the frame it was written in. Files from other writers are read whatever their point format;
colours come back when the format has RGB.

laspy and lazrs are optional: a missing one raises MissingDependencyError naming the ``export`` extra.
This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError, MissingDependencyError
from depthcloud.io._files import PathArg, read_input, write_atomic

__all__ = ["POINT_FORMAT", "SCALE_M", "decode_las", "encode_las", "read_las", "write_las"]

SCALE_M = 1e-4  # 0.1 mm: the integer step of stored coordinates
POINT_FORMAT = 7  # x y z, GPS time, RGB (LAS 1.4)
_VLR_USER = "depthcloud"
_VLR_FRAME = 1
_INT32 = 2**31 - 1


def _laspy() -> Any:
    try:
        import laspy
    except ImportError as exc:
        raise MissingDependencyError.for_extra("laspy", "export") from exc
    return laspy


def _laz_backend(laspy: Any) -> Any:
    available = laspy.LazBackend.detect_available()
    for backend in (laspy.LazBackend.LazrsParallel, laspy.LazBackend.Lazrs):
        if backend in available:
            return backend
    raise MissingDependencyError.for_extra("lazrs (laspy's LAZ backend)", "export")


def _offsets(points: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return np.zeros(3)
    lo = points.min(axis=0).astype(np.float64)
    hi = points.max(axis=0).astype(np.float64)
    offsets = np.round((lo + hi) / 2.0) + 0.0  # + 0.0: no negative zeros in the header
    reach = np.maximum(hi - offsets, offsets - lo) / SCALE_M
    if np.any(reach > _INT32):
        raise InputError(f"cloud: its extent {np.round(hi - lo, 1).tolist()} m is too large for LAS integers of "
                         f"{SCALE_M * 1000:g} mm (at most ±{_INT32 * SCALE_M / 1000:.0f} km about the centre)")
    return offsets


def encode_las(cloud: PointCloud, *, compress: bool) -> bytes:
    """The bytes of a LAS 1.4 file (LAZ when ``compress``) holding ``cloud``; see the module docstring."""
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    laspy = _laspy()
    header = laspy.LasHeader(point_format=POINT_FORMAT, version="1.4")
    header.scales = np.full(3, SCALE_M)
    header.offsets = _offsets(cloud.points)
    header.generating_software = "depthcloud"
    header.system_identifier = "depthcloud"
    if cloud.normals is not None:
        header.add_extra_dims([laspy.ExtraBytesParams(name=n, type=np.float32) for n in ("nx", "ny", "nz")])
    header.vlrs.append(laspy.VLR(user_id=_VLR_USER, record_id=_VLR_FRAME, description="depthcloud frame",
                                 record_data=json.dumps({"frame": cloud.frame, "colors": cloud.colors is not None}).encode()))
    n = len(cloud)
    # One structured array in the file's own record layout, filled column by column: cheaper than
    # setting dimensions one by one on a LasData.
    rec = np.zeros(n, dtype=header.point_format.dtype())
    p = cloud.points.astype(np.float64)
    for i, name in enumerate("XYZ"):
        rec[name] = np.rint((p[:, i] - header.offsets[i]) / SCALE_M).astype(np.int32)
    if cloud.colors is not None:
        c16 = cloud.colors.astype(np.uint16) * np.uint16(257)
        rec["red"], rec["green"], rec["blue"] = c16[:, 0], c16[:, 1], c16[:, 2]
    rec["gps_time"] = 0.0 if cloud.stamp is None else float(cloud.stamp)
    if cloud.normals is not None:
        for i, name in enumerate(("nx", "ny", "nz")):
            rec[name] = cloud.normals[:, i]
    header.point_count = n
    points = laspy.PackedPointRecord(rec, header.point_format)
    las = laspy.LasData(header, points=points)
    buf = io.BytesIO()
    if compress:
        las.write(buf, do_compress=True, laz_backend=_laz_backend(laspy))
    else:
        las.write(buf, do_compress=False)
    return buf.getvalue()


def write_las(path: PathArg, cloud: PointCloud, *, overwrite: bool = False, compress: bool | None = None) -> Path:
    """Write ``cloud`` as LAS 1.4, or LAZ when ``compress`` (default: when the suffix is ``.laz``)."""
    squeeze = Path(path).suffix.lower() == ".laz" if compress is None else bool(compress)
    return write_atomic(path, encode_las(cloud, compress=squeeze), overwrite=overwrite)


def decode_las(data: bytes, *, name: str = "<bytes>") -> PointCloud:
    """A PointCloud from the bytes of a LAS or LAZ file (any point format).

    points: scaled coordinates as float32 metres; colors: 16-bit RGB >> 8 when the format has RGB;
    normals from ``nx ny nz`` extra bytes; frame (``optical`` otherwise) and whether the cloud had
    colours from depthcloud's VLR;
    stamp: the first point's GPS time when the format has one.
    """
    laspy = _laspy()
    try:
        las = laspy.read(io.BytesIO(data))
    except Exception as exc:  # laspy's own errors, lazrs's LazrsError, and plain ones for cut files
        raise FormatError(f"not a readable LAS/LAZ file ({type(exc).__name__}: {exc})", path=name) from exc
    dims = set(las.point_format.dimension_names)
    # x, y, z are float64 (integer × scale + offset); finite by construction.
    points = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1).astype(np.float32)
    colors = None
    if {"red", "green", "blue"} <= dims:
        rgb = np.stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)], axis=1)
        colors = (rgb.astype(np.uint16) >> 8).astype(np.uint8)
    normals = None
    if {"nx", "ny", "nz"} <= dims:
        normals = np.stack([np.asarray(las["nx"]), np.asarray(las["ny"]), np.asarray(las["nz"])],
                           axis=1).astype(np.float32)
    frame = "optical"
    for vlr in las.header.vlrs:
        if vlr.user_id == _VLR_USER and vlr.record_id == _VLR_FRAME:
            try:
                note = json.loads(bytes(vlr.record_data).decode())
                frame = str(note["frame"])
            except (ValueError, KeyError, TypeError) as exc:
                raise FormatError("the depthcloud frame record is damaged", path=name) from exc
            if note.get("colors") is False:  # point format 7 always has RGB; ours says when it means none
                colors = None
    stamp = float(las.gps_time[0]) if "gps_time" in dims and len(las.points) else None
    return PointCloud(np.ascontiguousarray(points), colors, normals, frame=frame, stamp=stamp)


def read_las(path: PathArg) -> PointCloud:
    """Read a LAS or LAZ file (see :func:`decode_las`)."""
    return decode_las(read_input(path), name=Path(path).name)
