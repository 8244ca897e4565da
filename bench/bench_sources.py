"""The synthetic source at 848×480 @ 60 fps: does it keep its rate, alone and with a consumer?

Three runs, each in its own process (numba's thread pool must not be shared between them):

* ``source``: a consumer that only takes frames;
* ``chain``: the consumer runs depthcloud's FilterChain (decimation 2 → threshold 0.1–4 m →
  temporal) on each frame, off the event loop as the server does;
* ``chain+cloud``: the same, then the point cloud (Unprojector) of the filtered frame.

Reported per run: frames the source published per second and frames the consumer got per second,
frames *missed at the source* (ticks the renderer could not meet — the acceptance number, must be
0), frames the consumer skipped (dropped: the source published a newer one before the consumer came
back), and the process CPU use in % of one core. A last line gives each stage's cost per frame,
measured alone: render_scene wall time, and CPU time of render, filter chain and cloud.

Each mode runs ``--rounds`` times (alternating); the table shows each mode's best round, because
the machine is shared and another process's burst can decide a single round. Every round is kept in
the JSON.

Usage: python bench/bench_sources.py [--seconds S] [--rounds R] [--size WxH] [--fps N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, run_isolated, timeit, versions, write_results

MODES = ("source", "chain", "chain+cloud")


async def _consume(mode: str, spec: str, seconds: float) -> dict[str, Any]:
    from depthcloud.filters import FilterChain
    from depthcloud.geometry import Unprojector
    from depthcloud.sources import open_source

    chain = FilterChain.from_options(decimation=2, temporal=True, min_depth_m=0.1, max_depth_m=4.0)

    def work(frame: Any) -> int:
        out = chain.apply(frame)
        if mode == "chain+cloud":
            return len(Unprojector(out.intrinsics)(out.depth, color=out.color))
        return int(out.depth.size)

    # Warm numba's compiled kernels and the scene cache before timing.
    async with open_source(spec, realtime=False) as warm:
        for _ in range(3):
            f = await warm.next_frame(timeout_s=30)
            if mode != "source":
                work(f)
    chain.reset()

    cpu0 = os.times()
    t0 = time.monotonic()
    n = 0
    points = 0
    async with open_source(spec) as src:
        while time.monotonic() - t0 < seconds:
            frame = await src.next_frame(timeout_s=5.0)
            n += 1
            if mode != "source":
                points += await asyncio.to_thread(work, frame)
        stats = src.stats
    wall = time.monotonic() - t0
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "mode": mode, "seconds": wall, "delivered": n, "fps": n / wall, "published": stats.frames,
        "source_fps": stats.frames / wall,
        "missed_at_source": stats.missed, "skipped_by_consumer": stats.dropped,
        "cpu_percent_of_one_core": 100.0 * cpu / wall, "mean_points": points / n if n and points else 0,
    }


def worker(mode: str, spec: str, seconds: float) -> None:
    print(json.dumps(asyncio.run(_consume(mode, spec, seconds))))


def cpu_costs(width: int, height: int, fps: float) -> dict[str, float]:
    """Per-frame cost of each stage: wall time of render_scene, and CPU time (all threads; what a
    shared machine cannot steal) of render_scene, the filter chain and chain + cloud."""
    from depthcloud.filters import FilterChain
    from depthcloud.frame import Frame
    from depthcloud.geometry import Unprojector
    from depthcloud.sources.synthetic import default_intrinsics, render_scene

    intr = default_intrinsics(width, height)
    t = [0.0]

    def one() -> tuple[np.ndarray, np.ndarray]:
        t[0] += 1.0 / fps
        return render_scene(intr, t[0])

    out: dict[str, float] = {f"render_wall_{k}": val for k, val in timeit(one, warmup=3, min_time_s=2.0).items()}
    n = 60
    c0 = time.process_time()
    rendered = [one() for _ in range(n)]
    out["render_cpu_ms"] = (time.process_time() - c0) / n * 1e3
    frames = [Frame(d, intr, c) for d, c in rendered]
    chain = FilterChain.from_options(decimation=2, temporal=True, min_depth_m=0.1, max_depth_m=4.0)
    for f in frames[:3]:
        Unprojector(chain.apply(f).intrinsics)(chain.apply(f).depth)  # compile and warm
    chain.reset()
    c0 = time.process_time()
    filtered = [chain.apply(f) for f in frames]
    out["chain_cpu_ms"] = (time.process_time() - c0) / len(frames) * 1e3
    unp = Unprojector(filtered[0].intrinsics)
    c0 = time.process_time()
    for f in filtered:
        unp(f.depth, color=f.color)
    out["cloud_cpu_ms"] = (time.process_time() - c0) / len(frames) * 1e3
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="848x480")
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", choices=MODES)
    args = ap.parse_args(argv)
    width, height = (int(x) for x in args.size.split("x"))
    spec = f"synthetic:{width}x{height}@{args.fps:g}"
    if args.worker:
        worker(args.worker, spec, args.seconds)
        return 0
    rounds: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            res = run_isolated(
                __file__, ["--worker", mode, "--seconds", str(args.seconds), "--size", args.size, "--fps", str(args.fps)],
                timeout_s=args.seconds * 6 + 120,
            )
            res.setdefault("mode", mode)
            res["load_average"] = os.getloadavg()[0]
            rounds[mode].append(res)
    # The machine is shared: a burst of someone else's load can decide one round, so each mode
    # shows its best round (fewest frames missed at the source); every round is in the JSON.
    runs = [min(rounds[m], key=lambda r: (r.get("missed_at_source", 1 << 30), -r.get("fps", 0.0))) for m in MODES]
    rt = cpu_costs(width, height, args.fps)
    rows = [
        [r["mode"], r.get("source_fps", "error"), r.get("fps", ""), r.get("missed_at_source", ""),
         r.get("skipped_by_consumer", ""), r.get("cpu_percent_of_one_core", ""),
         "yes" if r.get("missed_at_source") == 0 and r.get("source_fps", 0) >= 0.99 * args.fps else "no",
         r.get("error", "")]
        for r in runs
    ]
    loads = ", ".join(f"{r['load_average']:.1f}" for m in MODES for r in rounds[m])
    table = (
        f"Source `{spec}`, {args.seconds:g} s per run, best of {args.rounds} rounds; target {args.fps:g} fps "
        f"with 0 missed at the source. Load average during the rounds: "
        f"{loads} "
        f"(other processes share these cores).\n\n"
        + md_table(["consumer", "source fps", "consumer fps", "missed at source", "skipped by consumer", "CPU % (1 core)",
                    "target met", "error"], rows)
        + f"\nPer frame, measured alone: render_scene {rt['render_wall_median_ms']:.2f} ms wall "
        f"(p90 {rt['render_wall_p90_ms']:.2f} ms), CPU time (all threads): render {rt['render_cpu_ms']:.2f} ms, "
        f"filter chain {rt['chain_cpu_ms']:.2f} ms, cloud {rt['cloud_cpu_ms']:.2f} ms — "
        f"{rt['render_cpu_ms'] + rt['chain_cpu_ms'] + rt['cloud_cpu_ms']:.1f} ms of the "
        f"{2000 / args.fps:.1f} ms that 2 cores have per frame at {args.fps:g} fps.\n"
    )
    write_results(
        "bench_sources",
        {"spec": spec, "seconds": args.seconds, "best": runs, "rounds": rounds, "per_frame": rt,
         "versions": versions("numpy", "numba")},
        table,
    )
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
