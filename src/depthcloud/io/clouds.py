"""Read and write point clouds by file extension: .ply .pcd .xyz .csv .txt .npz .las .laz .mcap.

This module only dispatches; each format lives in its own module. LAS/LAZ and MCAP need the
``export`` extra and are imported only when such a file is read or written.
"""

from __future__ import annotations

from pathlib import Path

from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import PathArg, write_atomic
from depthcloud.io.npz import encode_npz, read_npz
from depthcloud.io.pcd import encode_pcd, read_pcd
from depthcloud.io.ply import encode_ply, read_ply, write_ply
from depthcloud.io.xyz import encode_xyz, read_xyz

__all__ = ["CLOUD_EXTENSIONS", "encode_cloud", "read_cloud", "write_cloud"]

CLOUD_EXTENSIONS = (".ply", ".pcd", ".xyz", ".csv", ".txt", ".npz", ".las", ".laz", ".mcap")


def _suffix(path: PathArg) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in CLOUD_EXTENSIONS:
        raise FormatError(f"unknown point-cloud extension {suffix or '(none)'!r}; known: "
                          f"{' '.join(CLOUD_EXTENSIONS)}", path=Path(path).name)
    return suffix


def read_cloud(path: PathArg) -> PointCloud:
    """Read a point cloud, choosing the reader by extension (case-insensitive)."""
    suffix = _suffix(path)
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".pcd":
        return read_pcd(path)
    if suffix == ".npz":
        return read_npz(path)
    if suffix in (".las", ".laz"):
        from depthcloud.io.las import read_las

        return read_las(path)
    if suffix == ".mcap":
        from depthcloud.io.mcap import read_mcap

        return read_mcap(path)
    return read_xyz(path)


def encode_cloud(cloud: PointCloud, suffix: str, *, ascii: bool = False) -> bytes:
    """The bytes :func:`write_cloud` would write to a file with this suffix (``.ply``, ``.laz``, …)."""
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    suffix = _suffix(f"cloud{suffix}")
    if suffix == ".ply":
        return encode_ply(cloud, binary=not ascii)
    if suffix == ".pcd":
        return encode_pcd(cloud, data="ascii" if ascii else "binary")
    if suffix == ".npz":
        return encode_npz(cloud)
    if suffix in (".las", ".laz"):
        from depthcloud.io.las import encode_las

        return encode_las(cloud, compress=suffix == ".laz")
    if suffix == ".mcap":
        from depthcloud.io.mcap import encode_mcap

        return encode_mcap(cloud)
    return encode_xyz(cloud, csv=suffix == ".csv")


def write_cloud(path: PathArg, cloud: PointCloud, *, overwrite: bool = False, ascii: bool = False) -> Path:
    """Write ``cloud`` in the format its extension names; returns the path.

    ``ascii`` picks the text variant of PLY and PCD (binary otherwise); .xyz/.csv/.txt are always text
    and .npz, .las, .laz (compressed) and .mcap always binary. Refuses an existing file unless
    ``overwrite`` (:class:`OutputExistsError`).
    """
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    suffix = _suffix(path)
    if suffix == ".ply":  # header and body go out as two buffers, without joining them first
        return write_ply(path, cloud, binary=not ascii, overwrite=overwrite)
    return write_atomic(path, encode_cloud(cloud, suffix, ascii=ascii), overwrite=overwrite)
