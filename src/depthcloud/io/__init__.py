"""File formats: one module per format (clouds, depth images, calibration files)."""

from depthcloud.io.clouds import CLOUD_EXTENSIONS, read_cloud, write_cloud
from depthcloud.io.depthimage import read_color, read_depth, read_disparity_png, write_depth_png, write_png
from depthcloud.io.npz import read_npz, write_npz
from depthcloud.io.pcd import decode_pcd, encode_pcd, read_pcd, write_pcd
from depthcloud.io.pfm import read_pfm, write_pfm
from depthcloud.io.ply import decode_ply, encode_ply, read_ply, write_ply
from depthcloud.io.xyz import read_xyz, write_xyz

__all__ = [
    "CLOUD_EXTENSIONS",
    "decode_pcd",
    "decode_ply",
    "encode_pcd",
    "encode_ply",
    "read_cloud",
    "read_color",
    "read_depth",
    "read_disparity_png",
    "read_npz",
    "read_pcd",
    "read_pfm",
    "read_ply",
    "read_xyz",
    "write_cloud",
    "write_depth_png",
    "write_npz",
    "write_pcd",
    "write_pfm",
    "write_ply",
    "write_png",
    "write_xyz",
]
