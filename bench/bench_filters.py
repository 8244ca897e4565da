"""Depth filter chain + point cloud at 848×480: depthcloud against librealsense, same frames, same run.

The chain is decimation (magnitude 2) → threshold (0.1–4 m) → temporal (librealsense defaults) →
cloud (the acceptance chain; a "full chain" row adds spatial in the disparity domain and nearest
hole filling, as librealsense's viewer runs them): depthcloud's ``FilterChain`` + ``Unprojector`` against ``rs.decimation_filter`` +
``rs.threshold_filter`` + ``rs.temporal_filter`` + ``rs.pointcloud.calculate``. librealsense runs in
its own process (``run_isolated``); its frames come from a software device, pushed before timing so
that only the filters and the cloud are timed. Both sides also report each stage alone. The two
sides alternate for ``--rounds`` rounds and each reports its best round's median, because the
machine is shared and a burst of load in one round would otherwise decide the ratio.

Usage: python bench/bench_filters.py [--frames N] [--rounds R]
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

W, H, DU, BASELINE_MM = 848, 480, 0.001, 50.0
FX, FY, PPX, PPY = 421.7, 420.9, 425.3, 238.6
MIN_M, MAX_M = 0.1, 4.0
CLOUD_FRAMES = 4


def make_frames(n: int) -> np.ndarray:
    """(n, H, W) uint16 z16 frames: slanted wall, boxes, 3 mm noise, 6 % holes and moving stripes."""
    rng = np.random.default_rng(3)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    base = 2.5 + 0.8 * (v / H) - 0.3 * (u / W)
    base[100:260, 120:330] = 1.2
    base[300:420, 500:700] = 0.8
    out = np.empty((n, H, W), dtype=np.uint16)
    for i in range(n):
        z = base + rng.normal(0.0, 0.003 * base)
        holes = rng.random(z.shape) < 0.06
        holes[(v.astype(int) + 7 * i) % 97 < 2] = True
        z[holes] = 0.0
        out[i] = np.clip(np.rint(z / DU), 0, 65535).astype(np.uint16)
    return out


# -- librealsense side (runs in its own process) ----------------------------------------------


def librealsense_worker(path: str) -> dict[str, Any]:
    import pyrealsense2 as rs

    frames_z16 = np.load(path)
    dev = rs.software_device()
    sensor = dev.add_sensor("Depth")
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, FX, FY, PPX, PPY
    intr.model, intr.coeffs = rs.distortion.brown_conrady, [0.0] * 5
    vs = rs.video_stream()
    vs.type, vs.fmt, vs.index, vs.uid, vs.width, vs.height, vs.bpp, vs.fps = (
        rs.stream.depth, rs.format.z16, 0, 1, W, H, 2, 30)
    vs.intrinsics = intr
    profile = sensor.add_video_stream(vs)
    sensor.add_read_only_option(rs.option.depth_units, DU)
    sensor.add_read_only_option(rs.option.stereo_baseline, BASELINE_MM)
    queue = rs.frame_queue(len(frames_z16) + 2, keep_frames=True)
    sensor.open(profile)
    sensor.start(queue)
    frames = []
    for i, z in enumerate(frames_z16):
        f = rs.software_video_frame()
        f.pixels = np.ascontiguousarray(z)
        f.bpp, f.stride, f.timestamp, f.frame_number = 2, W * 2, i * 16.7, i + 1
        f.domain = rs.timestamp_domain.hardware_clock
        f.profile = profile.as_video_stream_profile()
        f.depth_units = DU
        sensor.on_video_frame(f)
        frames.append(queue.wait_for_frame(5000))

    dec = rs.decimation_filter(2)
    thr = rs.threshold_filter(MIN_M, MAX_M)
    tmp = rs.temporal_filter()
    pc = rs.pointcloud()
    state = {"i": 0}

    def next_index() -> int:
        state["i"] = (state["i"] + 1) % len(frames)
        return state["i"]

    def next_frame() -> object:
        return frames[next_index()]

    def chain() -> None:
        pc.calculate(tmp.process(thr.process(dec.process(next_frame()))))

    viewer = [rs.decimation_filter(2), rs.threshold_filter(MIN_M, MAX_M), rs.disparity_transform(True),
              rs.spatial_filter(), rs.temporal_filter(), rs.disparity_transform(False), rs.hole_filling_filter(2)]

    def full_chain() -> None:
        f = next_frame()
        for block in viewer:
            f = block.process(f)
        pc.calculate(f)

    # librealsense keeps the last cloud per frame, so the cloud stage cycles through distinct frames.
    # (a few: every processing block has a small frame pool)
    smalls = [rs.temporal_filter().process(thr.process(dec.process(f))) for f in frames[:CLOUD_FRAMES]]
    results = {
        "chain": timeit(chain, warmup=5, min_time_s=2.0, max_runs=2000),
        "full chain": timeit(full_chain, warmup=5, min_time_s=1.0, max_runs=2000),
        "decimation": timeit(lambda: dec.process(next_frame()), min_time_s=0.7, max_runs=2000),
        "threshold": timeit(lambda: thr.process(next_frame()), min_time_s=0.7, max_runs=2000),
        "temporal": timeit(lambda: tmp.process(dec.process(next_frame())), min_time_s=0.7, max_runs=2000),
        "cloud": timeit(lambda: pc.calculate(smalls[next_index() % CLOUD_FRAMES]), min_time_s=0.7, max_runs=2000),
    }
    sensor.stop()
    sensor.close()
    return results


# -- depthcloud side --------------------------------------------------------------------------


def depthcloud_run(frames_z16: np.ndarray) -> dict[str, Any]:
    from depthcloud import filters as F
    from depthcloud.camera import Intrinsics
    from depthcloud.frame import Frame
    from depthcloud.geometry import Unprojector

    intr = Intrinsics(FX, FY, PPX, PPY, W, H)
    frames = [Frame(z.astype(np.float32) * np.float32(DU), intr, seq=i) for i, z in enumerate(frames_z16)]
    chain = F.FilterChain.from_options(decimation=2, temporal=True, min_depth_m=MIN_M, max_depth_m=MAX_M)
    unproject = Unprojector(chain.apply(frames[0]).intrinsics)
    state = {"i": 0}

    def next_index() -> int:
        state["i"] = (state["i"] + 1) % len(frames)
        return state["i"]

    def next_frame() -> Frame:
        return frames[next_index()]

    def run_chain() -> None:
        unproject(chain.apply(next_frame()).depth)

    viewer = F.FilterChain.from_options(decimation=2, spatial=True, temporal=True, min_depth_m=MIN_M,
                                        max_depth_m=MAX_M, holes="nearest", baseline_m=BASELINE_MM / 1000)

    def run_full_chain() -> None:
        unproject(viewer.apply(next_frame()).depth)

    tf = F.TemporalFilter()
    smalls = [F.decimate(f.depth, intr, 2)[0] for f in frames[:CLOUD_FRAMES]]
    return {
        "chain": timeit(run_chain, warmup=5, min_time_s=2.0, max_runs=2000),
        "full chain": timeit(run_full_chain, warmup=5, min_time_s=1.0, max_runs=2000),
        "decimation": timeit(lambda: F.decimate(next_frame().depth, intr, 2), min_time_s=0.7, max_runs=2000),
        "threshold": timeit(lambda: F.threshold(next_frame().depth, min_m=MIN_M, max_m=MAX_M),
                            min_time_s=0.7, max_runs=2000),
        "temporal": timeit(lambda: tf.apply(F.decimate(next_frame().depth, intr, 2)[0]),
                           min_time_s=0.7, max_runs=2000),
        "cloud": timeit(lambda: unproject(smalls[next_index() % CLOUD_FRAMES]), min_time_s=0.7, max_runs=2000),
    }


def best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stage, the timing of the round with the lowest median (an error if every round failed)."""
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return rounds[0]
    return {stage: min((r[stage] for r in ok), key=lambda t: t["median_ms"]) for stage in ok[0]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--librealsense", metavar="NPY", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.librealsense:
        print(json.dumps(librealsense_worker(args.librealsense)))
        return 0
    frames = make_frames(args.frames)
    rs_rounds: list[dict[str, Any]] = []
    our_rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames)
        for _ in range(max(1, args.rounds)):
            rs_rounds.append(run_isolated(__file__, ["--librealsense", str(path)]))
            our_rounds.append(depthcloud_run(frames))
    rs_res = best(rs_rounds)
    ours = best(our_rounds)
    rows, ratios = [], {}
    for stage in ("chain", "full chain", "decimation", "threshold", "temporal", "cloud"):
        a = ours[stage]["median_ms"]
        b = rs_res.get(stage, {}).get("median_ms") if "error" not in rs_res else None
        ratio = a / b if b else float("nan")
        ratios[stage] = ratio
        rows.append([stage, a, b if b else "n/a", ratio])
    note = ("\nchain = decimation 2 → threshold 0.1–4 m → temporal (0.4, 20, 3) → cloud, 848×480 z16 frames; "
            "full chain = librealsense's viewer chain: decimation 2 → threshold → disparity → spatial → temporal → "
            "depth → nearest hole fill → cloud. The temporal stage includes its decimation. Ratio = depthcloud / librealsense (lower is faster); "
            "acceptance: chain ratio ≤ 1.5.\n")
    table = md_table(["stage", "depthcloud ms", "librealsense ms", "ratio"], rows) + note
    write_results(
        "bench_filters",
        {"size": [W, H], "frames": args.frames, "rounds": args.rounds, "depthcloud": ours, "librealsense": rs_res, "ratios": ratios,
         "versions": versions("numpy", "numba", "pyrealsense2")},
        table,
    )
    if "error" in rs_res:
        print(f"librealsense run failed: {rs_res['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
