"""Point-cloud file writing (and reading) speed: 300k coloured points.

depthcloud's writers (PLY binary/ASCII, PCD binary/binary_compressed) against ``np.savetxt`` of the
same points and colours, Open3D's ``write_point_cloud`` (in its own process: it has its own thread
pool) and plyfile. Reading a binary PLY is measured the same way. Ratios are against depthcloud's
binary PLY writer (and reader). Target: binary PLY write ≥ 50× faster than ``np.savetxt``.

Usage: python bench/bench_ply_write.py [--points N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, run_isolated, timeit, versions, write_results

N_DEFAULT = 300_000


def make_arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024)
    pts = (rng.standard_normal((n, 3)) * 2 + [0, 0, 3]).astype(np.float32)
    cols = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    return pts, cols


def slow_timeit(fn: Any) -> dict[str, float]:
    """For calls that take a second or more: no warm-up beyond one, three runs."""
    return timeit(fn, warmup=1, min_time_s=0.0, max_runs=3)


def peer_open3d(n: int, folder: Path) -> dict[str, Any]:
    import open3d as o3d

    pts, cols = make_arrays(n)
    pc = o3d.geometry.PointCloud()
    pc.points = o3d.utility.Vector3dVector(pts.astype(np.float64))
    pc.colors = o3d.utility.Vector3dVector(cols.astype(np.float64) / 255.0)
    path = str(folder / "o3d.ply")
    write = timeit(lambda: o3d.io.write_point_cloud(path, pc, write_ascii=False))
    read = timeit(lambda: o3d.io.read_point_cloud(path))
    return {"write": write, "read": read}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=N_DEFAULT)
    ap.add_argument("--peer", choices=["open3d"], help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer == "open3d":
        print(json.dumps(peer_open3d(args.points, Path(args.folder))))
        return 0

    import plyfile

    from depthcloud.cloud import PointCloud
    from depthcloud.io import read_ply, write_pcd, write_ply

    n = args.points
    pts, cols = make_arrays(n)
    cloud = PointCloud(pts, cols)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_ply_") as tmp:
        folder = Path(tmp)
        ply_bin, ply_txt = folder / "bin.ply", folder / "ascii.ply"
        results["write_ply binary"] = timeit(lambda: write_ply(ply_bin, cloud, overwrite=True))
        results["write_ply ascii"] = slow_timeit(lambda: write_ply(ply_txt, cloud, binary=False, overwrite=True))
        results["write_pcd binary"] = timeit(lambda: write_pcd(folder / "b.pcd", cloud, overwrite=True))
        results["write_pcd binary_compressed"] = timeit(
            lambda: write_pcd(folder / "c.pcd", cloud, data="binary_compressed", overwrite=True))
        table = np.hstack([pts.astype(np.float64), cols.astype(np.float64)])
        results["np.savetxt ascii"] = slow_timeit(
            lambda: np.savetxt(folder / "s.txt", table, fmt=["%.9g"] * 3 + ["%d"] * 3))

        def plyfile_write() -> None:
            # Same input as ours (points and colours arrays), so building its record array counts too.
            vert = np.empty(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                      ("red", "u1"), ("green", "u1"), ("blue", "u1")])
            for i, name in enumerate(("x", "y", "z")):
                vert[name] = pts[:, i]
            for i, name in enumerate(("red", "green", "blue")):
                vert[name] = cols[:, i]
            plyfile.PlyData([plyfile.PlyElement.describe(vert, "vertex")]).write(str(folder / "pf.ply"))

        def plyfile_read() -> None:
            # plyfile memory-maps the body; stacking the columns makes it read them, as read_ply does.
            v = plyfile.PlyData.read(str(ply_bin))["vertex"].data
            np.stack([v["x"], v["y"], v["z"]], axis=1)
            np.stack([v["red"], v["green"], v["blue"]], axis=1)

        results["plyfile write binary"] = timeit(plyfile_write)
        o3d = run_isolated(__file__, ["--peer", "open3d", "--points", str(n), "--folder", tmp])
        if "error" in o3d:
            results["open3d write_point_cloud binary"] = {"error": o3d["error"]}  # type: ignore[dict-item]
        else:
            results["open3d write_point_cloud binary"] = o3d["write"]

        reads: dict[str, dict[str, float]] = {
            "read_ply binary": timeit(lambda: read_ply(ply_bin)),
            "plyfile read binary": timeit(plyfile_read),
            "read_ply ascii": slow_timeit(lambda: read_ply(ply_txt)),
        }
        reads["open3d read_point_cloud binary"] = o3d.get("read", {"error": o3d.get("error", "failed")})
        sizes = {"ply binary bytes": ply_bin.stat().st_size, "ply ascii bytes": ply_txt.stat().st_size,
                 "pcd binary_compressed bytes": (folder / "c.pcd").stat().st_size}

    base_w = results["write_ply binary"]["median_ms"]
    base_r = reads["read_ply binary"]["median_ms"]
    rows = []
    for group, data, base in (("write", results, base_w), ("read", reads, base_r)):
        for name, r in data.items():
            if "median_ms" in r:
                rows.append([group, name, r["median_ms"], r["p10_ms"], r["p90_ms"], r["median_ms"] / base])
            else:
                rows.append([group, name, "error", "", "", str(r.get("error"))])
    savetxt_ratio = results["np.savetxt ascii"]["median_ms"] / base_w
    md = md_table(["op", "what", "median ms", "p10 ms", "p90 ms", "× depthcloud binary"], rows)
    md += (f"\n{n} points with colours. np.savetxt / write_ply binary = **{savetxt_ratio:.0f}×** "
           f"(target ≥ 50×: {'met' if savetxt_ratio >= 50 else 'NOT met'}).\n")
    write_results("bench_ply_write", {
        "points": n, "write": results, "read": reads, "sizes": sizes,
        "savetxt_over_write_ply_binary": savetxt_ratio, "target_met": savetxt_ratio >= 50,
        "versions": versions("numpy", "open3d", "plyfile", "numba"),
    }, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
