"""One peer of bench_fuse, in its own process: TSDF fusion of the 5 Redwood test frames + mesh extraction.

Usage: python bench/_peer_fuse.py PEER DATA_ROOT OUT.npy [--min-time S]
PEER: ours (numba; the numpy fallback when DEPTHCLOUD_NO_NUMBA=1) or open3d (tensor VoxelBlockGrid).
Prints one JSON document: timing of one whole fusion (volume creation, 5 integrations, mesh
extraction; frames decoded beforehand), the peak resident memory the first fusion added over the
process before it, and counts; writes the mesh vertices to OUT.npy for the quality comparison.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import timeit

VOXEL, TRUNC, MAX_DEPTH = 0.01, 0.04, 3.0


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _log(path: Path) -> list[np.ndarray]:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    return [np.array(rows[i + 1 : i + 5], float) for i in range(0, len(rows), 5)]


def ours(root: Path) -> tuple[Any, Any]:
    from depthcloud.surface.datasets import load_camera, open_rgbd, read_trajectory
    from depthcloud.surface.tsdf import TSDFVolume

    frames = list(open_rgbd(root / "RGBD", camera=load_camera(root / "camera_primesense.json")))
    poses = read_trajectory(root / "RGBD" / "trajectory.log").for_frames(len(frames))

    def run() -> Any:
        vol = TSDFVolume(voxel_m=VOXEL, trunc_m=TRUNC, max_depth_m=MAX_DEPTH)
        for f, p in zip(frames, poses, strict=True):
            vol.integrate_frame(f, p)
        return vol.extract_mesh(min_weight=1.0).vertices

    # numba kernels are compiled (or loaded from the cache) on a one-frame volume first
    warm = TSDFVolume(voxel_m=0.05, trunc_m=0.15)
    warm.integrate_frame(frames[0], poses[0])
    warm.extract_mesh()
    return run, frames


def open3d(root: Path) -> tuple[Any, Any]:
    import open3d as o3d

    c = o3d.core
    K = c.Tensor(np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]]))
    poses = _log(root / "RGBD" / "trajectory.log")
    exts = [c.Tensor(np.linalg.inv(p)) for p in poses]
    frames = [(o3d.t.io.read_image(str(root / "RGBD" / "depth" / f"{k:05d}.png")),
               o3d.t.io.read_image(str(root / "RGBD" / "color" / f"{k:05d}.jpg"))) for k in range(len(poses))]

    def run() -> Any:
        # 1000 blocks of 16³ hold the ~520 this scene needs (the hash map grows if not)
        vbg = o3d.t.geometry.VoxelBlockGrid(("tsdf", "weight", "color"), (c.float32, c.float32, c.float32),
                                            ((1), (1), (3)), VOXEL, 16, 1000, c.Device("CPU:0"))
        for (depth, color), ext in zip(frames, exts, strict=True):
            blocks = vbg.compute_unique_block_coordinates(depth, K, ext, 1000.0, MAX_DEPTH, TRUNC / VOXEL)
            vbg.integrate(blocks, depth, color, K, K, ext, 1000.0, MAX_DEPTH, TRUNC / VOXEL)
        mesh = vbg.extract_triangle_mesh(weight_threshold=0.0)
        return mesh.vertex.positions.numpy()

    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        run()  # first call loads Open3D's kernels
    return run, frames


def main(argv: list[str]) -> int:
    peer, root, out = argv[0], Path(argv[1]), Path(argv[2])
    min_time = float(argv[argv.index("--min-time") + 1]) if "--min-time" in argv else 2.0
    run, _frames = {"ours": ours, "open3d": open3d}[peer](root)
    before = _status_kb("VmRSS")
    verts = run()
    peak_added_mb = max(0, _status_kb("VmHWM") - before) / 1024
    stats = timeit(run, warmup=0, min_time_s=min_time, max_runs=20)
    np.save(out, np.asarray(verts, np.float32))
    print(json.dumps({**stats, "peak_added_mb": peak_added_mb, "vertices": len(verts)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
