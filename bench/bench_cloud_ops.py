"""Point-cloud operations: depthcloud's voxel grid and statistical outlier removal against Open3D.

Also times the first version of ``voxel_downsample`` (row-wise ``np.unique`` + ``np.add.at``) to
show what the rewrite bought. Clouds: the valid points of the benchmark depth scene at 640×480
(~0.28 M points) and 1920×1080 (~1.9 M points), coloured; voxel 2 cm; outliers on the voxelised
cloud with 20 neighbours and std ratio 2 (Open3D: nb_neighbors 21, as it counts the point itself).
Each peer runs in its own process. Run: ``python bench/bench_cloud_ops.py [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import md_table, run_isolated, versions, write_results  # noqa: E402

PEER_SCRIPT = HERE / "_peer_cloud_ops.py"
SIZES = ["640x480", "1920x1080"]
GROUPS = {
    "voxel_downsample (2 cm)": ("ours_voxel", ["o3d_voxel", "unique_add_at_voxel"]),
    "statistical outliers (k=20, 2σ)": ("ours_outliers", ["o3d_outliers"]),
}


def main(argv: list[str]) -> int:
    sizes = SIZES[:1] if "--quick" in argv else SIZES
    results: dict[str, Any] = {}
    for ours, peers in GROUPS.values():
        for peer in [ours, *peers]:
            print(f"  {peer} ...", flush=True)
            results[peer] = run_isolated(PEER_SCRIPT, [peer, "--min-time", "1.0", *sizes], timeout_s=600)

    rows = []
    for op, (ours, peers) in GROUPS.items():
        for peer in [ours, *peers]:
            r = results[peer]
            if "error" in r:
                rows.append([op, peer, *(["error: " + str(r["error"])[:60]] * len(sizes)), *([""] * len(sizes))])
                continue
            cells = [f"{r[s]['median_ms']:.1f} ({r[s]['points_in']} → {r[s]['points_out']})" for s in sizes]
            base = results[ours]
            rel = [f"{r[s]['median_ms'] / base[s]['median_ms']:.2f}" if "error" not in base else "" for s in sizes]
            rows.append([op, peer, *cells, *rel])
    table = md_table(["operation", "implementation", *[f"{s} ms (points in → out)" for s in sizes],
                      *[f"{s} × ours" for s in sizes]], rows)
    table += (
        "\n`× ours` = time / depthcloud's time (higher = depthcloud faster). Open3D aligns its voxel grid to"
        " the cloud's minimum, depthcloud to the frame origin, so voxel counts differ slightly.\n"
    )
    write_results("cloud_ops", {"sizes": sizes, "results": results,
                                "versions": versions("numpy", "numba", "scipy", "open3d")}, table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
