"""One peer of bench_cloud_ops, timed in its own process.

Usage: python bench/_peer_cloud_ops.py PEER [--min-time S] WxH [WxH ...]
Prints one JSON document: {"WxH": {"median_ms": ..., "points_in": N, "points_out": M}, ...}.

The clouds are the valid points of the benchmark depth scene (``_peer_depth_to_points.scene``) with
their colours — a realistic indoor cloud, ~0.3 M points at 640×480 and ~1.8 M at 1920×1080.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import timeit
from _peer_depth_to_points import camera, scene

VOXEL_M = 0.02
NEIGHBORS, STD_RATIO = 20, 2.0


def cloud_arrays(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    from depthcloud import Intrinsics, depth_to_points

    depth, color = scene(w, h)
    c = depth_to_points(depth, Intrinsics(*camera(w, h), w, h), color=color)
    assert c.colors is not None
    return c.points, c.colors


def _ours_voxel(pts: np.ndarray, cols: np.ndarray) -> Callable[[], Any]:
    from depthcloud import PointCloud

    cloud = PointCloud(pts, cols)
    return lambda: len(cloud.voxel_downsample(VOXEL_M))


def _unique_voxel(pts: np.ndarray, cols: np.ndarray) -> Callable[[], Any]:
    """The first version of voxel_downsample (row-wise np.unique + np.add.at), for reference."""

    def run() -> int:
        keys = np.floor(pts.astype(np.float64) / VOXEL_M).astype(np.int64)
        _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        sums = np.zeros((counts.shape[0], 3))
        np.add.at(sums, inverse, pts.astype(np.float64))
        csum = np.zeros((counts.shape[0], 3))
        np.add.at(csum, inverse, cols.astype(np.float64))
        _ = (sums / counts[:, None]).astype(np.float32), np.rint(csum / counts[:, None]).astype(np.uint8)
        return int(counts.shape[0])

    return run


def _o3d_cloud(pts: np.ndarray, cols: np.ndarray) -> Any:
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
    pc.colors = o3d.utility.Vector3dVector(cols.astype(np.float64) / 255.0)
    return pc


def _o3d_voxel(pts: np.ndarray, cols: np.ndarray) -> Callable[[], Any]:
    pc = _o3d_cloud(pts, cols)
    return lambda: len(pc.voxel_down_sample(VOXEL_M).points)


def _ours_outliers(pts: np.ndarray, cols: np.ndarray) -> Callable[[], Any]:
    from depthcloud import PointCloud

    cloud = PointCloud(pts, cols).voxel_downsample(VOXEL_M)  # outlier removal runs on thinned clouds
    return lambda: len(cloud.remove_statistical_outliers(neighbors=NEIGHBORS, std_ratio=STD_RATIO))


def _o3d_outliers(pts: np.ndarray, cols: np.ndarray) -> Callable[[], Any]:
    from depthcloud import PointCloud

    thin = PointCloud(pts, cols).voxel_downsample(VOXEL_M)
    pc = _o3d_cloud(thin.points, thin.colors)  # type: ignore[arg-type]
    # Open3D counts the point itself as a neighbour: nb_neighbors = NEIGHBORS + 1 keeps the same points
    return lambda: len(pc.remove_statistical_outlier(nb_neighbors=NEIGHBORS + 1, std_ratio=STD_RATIO)[1])


PEERS: dict[str, Callable[[np.ndarray, np.ndarray], Callable[[], Any]]] = {
    "ours_voxel": _ours_voxel,
    "unique_add_at_voxel": _unique_voxel,
    "o3d_voxel": _o3d_voxel,
    "ours_outliers": _ours_outliers,
    "o3d_outliers": _o3d_outliers,
}


def main(argv: list[str]) -> int:
    peer, sizes = argv[0], argv[1:]
    min_time = 1.0
    if sizes and sizes[0] == "--min-time":
        min_time, sizes = float(sizes[1]), sizes[2:]
    results: dict[str, Any] = {}
    for size in sizes:
        w, h = (int(s) for s in size.split("x"))
        pts, cols = cloud_arrays(w, h)
        fn = PEERS[peer](pts, cols)
        out = fn()
        results[size] = {**timeit(fn, warmup=1, min_time_s=min_time, max_runs=50), "points_in": len(pts),
                         "points_out": int(out)}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
