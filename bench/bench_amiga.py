"""Amiga OAK disparity → point cloud: depthcloud's table + compiled unprojection against the kornia path
of farm-ng's camera pointcloud example (depth_from_disparity, depth_to_3d, a range mask), same frame.

Usage: python bench/bench_amiga.py            (contenders take turns, 3 rounds, each in a fresh process)
       python bench/bench_amiga.py WHICH      (one contender; prints one JSON line)

The frame: 640×400 8-bit disparity as an OAK-D sends it (planes from 0.5 to 6 m, a tenth of the pixels
invalid), the camera of calib_oak_d_bw1098obc in ../shared/data/oak_depthai when present, else its
numbers. Points kept: 0.2–7.5 m. Acceptance: ours ≤ 2 ms and ≥ 20× faster than kornia.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import md_table, run_isolated, timeit, versions, write_results  # noqa: E402

W, H = 640, 400
FX, CX, CY, BASELINE_M = 427.30, 322.60, 203.67, 0.0755  # right camera at 640x400, bw1098obc
MIN_M, MAX_M = 0.2, 7.5


def frame() -> np.ndarray:
    rng = np.random.default_rng(7)
    d = np.zeros((H, W), np.uint8)
    depths = np.linspace(0.5, 6.0, 8)
    edges = np.linspace(0, W, len(depths) + 1).astype(int)
    for z, a, b in zip(depths, edges[:-1], edges[1:], strict=True):
        d[:, a:b] = round(FX * BASELINE_M / z)
    d[rng.random((H, W)) < 0.1] = 0
    return d


def run_ours() -> dict[str, object]:
    from depthcloud.amiga.client import DisparityModel
    from depthcloud.amiga.messages import decode_disparity, encode_disparity
    from depthcloud.camera import Intrinsics

    d = frame()
    model = DisparityModel(Intrinsics(FX, FX, CX, CY, W, H), BASELINE_M)
    n = len(model.cloud(d, min_depth_m=MIN_M, max_depth_m=MAX_M).points)
    jpeg = encode_disparity(d, quality=95)
    return {
        "points": n,
        "cloud": timeit(lambda: model.cloud(d, min_depth_m=MIN_M, max_depth_m=MAX_M)),
        "jpeg_decode_and_cloud": timeit(
            lambda: model.cloud(decode_disparity(jpeg), min_depth_m=MIN_M, max_depth_m=MAX_M)),
    }


def run_kornia(threads: int | None = None) -> dict[str, object]:
    import torch
    from kornia.geometry.depth import depth_from_disparity, depth_to_3d

    if threads:
        torch.set_num_threads(threads)

    d = frame()
    K = torch.tensor([[[FX, 0.0, CX], [0.0, FX, CY], [0.0, 0.0, 1.0]]])

    def cloud() -> np.ndarray:
        # The example's path: float disparity, depth = B·f/d, 3-D points, keep MIN ≤ Z ≤ MAX.
        disparity = torch.from_numpy(d).float()[None, None]
        depth = depth_from_disparity(disparity, BASELINE_M, FX)
        points = depth_to_3d(depth, K).permute(0, 2, 3, 1).reshape(-1, 3)
        valid = (disparity.reshape(-1) > 0) & (points[:, 2] >= MIN_M) & (points[:, 2] <= MAX_M)
        return points[valid].numpy()

    with torch.inference_mode():
        n = len(cloud())
        return {"points": n, "cloud": timeit(cloud), "threads": torch.get_num_threads()}


ROUNDS = 3


def _best(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    return min(ok, key=lambda r: r["cloud"]["median_ms"]) if ok else results[-1]


def main(argv: list[str]) -> int:
    if argv:
        result = {"ours": run_ours, "ours-generic": run_ours, "kornia": run_kornia,
                  "kornia-1thread": lambda: run_kornia(1)}[argv[0]]()
        print(json.dumps(result))
        return 0
    # Other work on a shared machine slows whichever contender runs at that moment: run them in
    # turns, each in a fresh process, and keep each one's fastest median. torch's thread pool can
    # stall badly when the cores are busy, so kornia also runs on one thread; the faster counts.
    # "ours-generic" is the same code compiled for numba's portable target (no AVX): the claims must
    # hold there too, not only on the CPU the kernels were tuned on.
    runs: dict[str, list[dict]] = {"ours": [], "ours-generic": [], "kornia": [], "kornia-1thread": []}
    for _ in range(ROUNDS):
        for name in runs:
            env = {"NUMBA_CPU_NAME": "generic"} if name == "ours-generic" else None
            runs[name].append(run_isolated(__file__, [name], env=env))
    ours = _best(runs["ours"])
    generic = _best(runs["ours-generic"])
    peer = _best(runs["kornia"] + runs["kornia-1thread"])
    rows = []
    data: dict[str, object] = {"frame": f"{W}x{H} uint8 disparity", "range_m": [MIN_M, MAX_M], "rounds": ROUNDS,
                               "ours": ours, "ours_generic": generic, "kornia": peer, "all_runs": runs,
                               "versions": versions("numpy", "numba", "torch", "kornia")}
    if "error" in ours:
        print(f"ours failed: {ours['error']}", file=sys.stderr)
        return 1
    t_ours = ours["cloud"]["median_ms"]
    rows.append(["depthcloud DisparityModel.cloud", t_ours, ours["cloud"]["p90_ms"], ours["points"], 1.0])
    rows.append(["depthcloud JPEG decode + cloud", ours["jpeg_decode_and_cloud"]["median_ms"],
                 ours["jpeg_decode_and_cloud"]["p90_ms"], ours["points"], ""])
    t_gen = generic["cloud"]["median_ms"] if "error" not in generic else float("nan")
    rows.append(["depthcloud DisparityModel.cloud, NUMBA_CPU_NAME=generic", t_gen,
                 generic.get("cloud", {}).get("p90_ms", ""), generic.get("points", ""), t_gen / t_ours])
    if "error" not in peer:
        t_peer = peer["cloud"]["median_ms"]
        data["speedup_vs_kornia"] = t_peer / t_ours
        data["speedup_vs_kornia_generic"] = t_peer / t_gen
        label = f"kornia depth_from_disparity + depth_to_3d ({peer['threads']} thread(s))"
        rows.append([label, t_peer, peer["cloud"]["p90_ms"], peer["points"], t_peer / t_ours])
    else:
        rows.append(["kornia", "error: " + str(peer["error"]), "", "", ""])
    data["pass_2ms"] = t_ours <= 2.0
    data["pass_20x"] = bool(data.get("speedup_vs_kornia", 0) >= 20 and data.get("speedup_vs_kornia_generic", 0) >= 20)
    table = md_table(["path", "median ms", "p90 ms", "points", "time ÷ depthcloud"], rows)
    table += (f"\nAcceptance: ≤ 2 ms: {'yes' if data['pass_2ms'] else 'NO'}; "
              f"≥ 20× kornia (native and generic): {'yes' if data['pass_20x'] else 'NO'}\n")
    write_results("bench_amiga", data, table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
