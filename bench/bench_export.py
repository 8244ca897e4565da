"""Export throughput and memory: `depthcloud export` of 848×480 depth frames to binary PLY.

Measured in one run:

* frames/s with 1 worker (in this process, no Dask; once as ``--workers 1`` runs, numba's parallel
  loops on every core, and once with the kernels on one thread, the work of one core) and with 2
  workers (a dask.distributed cluster of 2 spawned processes, already started: its start-up is
  reported on its own; each runs its kernels on one thread) → scaling against one core (goal: ≥ 1.8×
  on 2 cores);
* per-task overhead of Dask (a round trip of an empty task) against the work of one frame and of one
  task (up to 32 frames);
* peak RSS of an in-process export of 100 and of 1000 frames (each in a fresh process; goal: equal
  within 10 %);
* LAZ writing: depthcloud's writer against laspy's documented path (``LasData`` + ``write``) for the
  same coloured cloud.

Timings depend on what else the machine runs; the numbers in bench/results were measured on a shared,
loaded machine unless the .md says otherwise.

Usage: python bench/bench_export.py [--frames N] [--rss-frames 100,1000] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, run_isolated, timeit, versions, write_results

W, H = 848, 480


def make_folder(folder: Path, n: int) -> Path:
    from depthcloud.io.calibfiles import save_camera
    from depthcloud.io.depthimage import write_depth_png
    from depthcloud.sources.synthetic import default_intrinsics, render_scene

    intr = default_intrinsics(W, H)
    (folder / "frames").mkdir(parents=True)
    for i in range(n):
        write_depth_png(folder / "frames" / f"{i:05d}.png", render_scene(intr, i / 30.0)[0])
    save_camera(folder / "camera.yaml", intr)
    return folder


def export_fps(src: Path, out: Path, *, workers: int = 1, scheduler: str | None = None,
               client: Any = None) -> dict[str, float]:
    """Frames/s of one export, and CPU seconds per frame: this process's (in-process runs) or the
    workers' (``client`` given): CPU time does not depend on what else the machine runs."""
    from depthcloud.export import Exporter, open_frames

    def cpu() -> float:
        if client is None:
            return time.process_time()
        return float(sum(client.run(time.process_time).values()))

    sets = [open_frames(str(src / "frames"), camera=src / "camera.yaml")]
    exporter = Exporter(sets, out, fmt="ply", workers=workers, scheduler=scheduler, overwrite=True)
    c0, t0 = cpu(), time.perf_counter()
    summary = exporter.run()
    seconds, cpu_s = time.perf_counter() - t0, cpu() - c0
    assert summary.ok and summary.written == exporter.total, summary
    return {"frames": summary.written, "seconds": seconds, "fps": summary.written / seconds,
            "cpu_ms_per_frame": 1000 * cpu_s / summary.written}


def child_rss(frames: int, folder: str) -> dict[str, Any]:
    """In a fresh process: export `frames` synthetic 848x480 frames in process; report peak RSS."""
    from depthcloud.export import Exporter, open_frames
    from depthcloud.pipeline import CloudOptions

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sets = [open_frames(f"synthetic:{W}x{H}", stop=frames)]
    # a 5 cm voxel grid keeps 1000 files small on disk; the frames are full size all the same
    exporter = Exporter(sets, folder, fmt="ply", frames=(0, frames), options=CloudOptions(voxel_m=0.05),
                        workers=1, overwrite=True)
    t0 = time.perf_counter()
    summary = exporter.run()
    return {"frames": summary.written, "seconds": time.perf_counter() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": before / 1024}


def laz_cloud(n: int) -> Any:
    from depthcloud.cloud import PointCloud

    rng = np.random.default_rng(7)
    pts = (rng.standard_normal((n, 3)) * [2, 1, 1] + [0, 0, 3]).astype(np.float32)
    return PointCloud(pts, rng.integers(0, 256, (n, 3), dtype=np.uint8), stamp=12.5)


def laspy_documented(cloud: Any, compress: bool) -> bytes:
    """laspy's documented way: a LasHeader, a LasData, coordinates and colours set, write()."""
    import laspy

    header = laspy.LasHeader(point_format=7, version="1.4")
    header.offsets = np.floor(cloud.points.min(axis=0))
    header.scales = np.array([1e-4, 1e-4, 1e-4])
    las = laspy.LasData(header)
    las.x, las.y, las.z = cloud.points[:, 0], cloud.points[:, 1], cloud.points[:, 2]
    las.red, las.green, las.blue = (cloud.colors[:, i].astype(np.uint16) * 257 for i in range(3))
    las.gps_time = np.full(len(cloud), cloud.stamp)
    buf = io.BytesIO()
    las.write(buf, do_compress=compress)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=96, help="frames of the throughput runs")
    ap.add_argument("--rss-frames", default="100,1000")
    ap.add_argument("--points", type=int, default=300_000, help="points of the LAZ comparison")
    ap.add_argument("--quick", action="store_true", help="fewer frames (48) for a first look")
    ap.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_rss:
        print(json.dumps(child_rss(args.child_rss, args.folder)))
        return 0
    n = 48 if args.quick else args.frames
    data: dict[str, Any] = {"versions": versions("dask", "distributed", "laspy", "lazrs", "numpy"),
                            "frames": n, "size": f"{W}x{H}", "format": "ply (binary)"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = make_folder(root / "src", n)
        export_fps(src, root / "warm", workers=1)  # numba caches, page cache
        own = export_fps(src, root / "own", workers=1)  # in process: numba's loops on every core
        import numba

        threads = numba.get_num_threads()
        numba.set_num_threads(1)  # one core's worth: the baseline a worker process is compared with
        one = export_fps(src, root / "o1", workers=1)
        numba.set_num_threads(threads)

        import dask
        from distributed import Client, LocalCluster

        t0 = time.perf_counter()
        with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                              "distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=40)
        startup = time.perf_counter() - t0
        try:
            with Client(cluster) as client:
                export_fps(src, root / "warm2", scheduler=cluster.scheduler_address)  # workers import, compile
                two = export_fps(src, root / "o2", scheduler=cluster.scheduler_address, client=client)
                rtt = timeit(lambda: client.submit(int, 1, pure=False).result(), min_time_s=1.0, max_runs=100)
                # what idle workers spend (heartbeats, system monitor), per second of wall time
                c0 = sum(client.run(time.process_time).values())
                time.sleep(5.0)
                idle_cpu_ms_per_s = 1000 * (sum(client.run(time.process_time).values()) - c0) / 5.0
        finally:
            cluster.close()
        same = all((root / "o1" / p.name).read_bytes() == p.read_bytes() for p in (root / "o2").glob("*.ply"))

        rss = {}
        for k in (int(x) for x in args.rss_frames.split(",")):
            rss[k] = run_isolated(Path(__file__), ["--child-rss", str(k), "--folder", str(root / f"rss{k}")],
                                  timeout_s=3600)

    cloud = laz_cloud(args.points)
    from depthcloud.io.las import encode_las

    laz_ours = timeit(lambda: encode_las(cloud, compress=True), warmup=1, min_time_s=2.0, max_runs=10)
    laz_peer = timeit(lambda: laspy_documented(cloud, True), warmup=1, min_time_s=2.0, max_runs=10)
    las_ours = timeit(lambda: encode_las(cloud, compress=False), warmup=1, min_time_s=1.0, max_runs=20)
    las_peer = timeit(lambda: laspy_documented(cloud, False), warmup=1, min_time_s=1.0, max_runs=20)

    ms_frame = 1000.0 / one["fps"]
    scaling = two["fps"] / one["fps"]
    busy = two["cpu_ms_per_frame"] - idle_cpu_ms_per_s * two["seconds"] / two["frames"]
    data.update({"idle_worker_cpu_ms_per_s": idle_cpu_ms_per_s, "worker_cpu_ms_per_frame_less_idle": busy,
                 "in_process_all_threads": own, "one_worker": one, "two_workers": two, "scaling": scaling, "same_bytes": same,
                 "cluster_startup_s": startup, "task_round_trip": rtt, "ms_per_frame_one_worker": ms_frame,
                 "rss": rss, "laz": {"points": args.points, "ours": laz_ours, "laspy": laz_peer},
                 "las": {"ours": las_ours, "laspy": las_peer}})
    rows = [
        ["export, --workers 1 (in process, numba on every core)", f"{own['fps']:.1f} frames/s", "",
         f"CPU {own['cpu_ms_per_frame']:.1f} ms/frame"],
        ["export, 1 worker, kernels on 1 thread", f"{one['fps']:.1f} frames/s", f"{ms_frame:.1f} ms/frame",
         f"CPU {one['cpu_ms_per_frame']:.1f} ms/frame"],
        ["export, 2 workers (Dask, started)", f"{two['fps']:.1f} frames/s", f"scaling {scaling:.2f}x (goal 1.8x)",
         f"CPU {two['cpu_ms_per_frame']:.1f} ms/frame in the workers; "
         + ("outputs byte-identical" if same else "OUTPUTS DIFFER")],
        ["CPU efficiency (1 thread / 2 workers, per frame)", f"{one['cpu_ms_per_frame'] / two['cpu_ms_per_frame']:.2f}",
         "the ceiling of the scaling on 2 idle cores is 2x this", ""],
        ["idle workers' own CPU (heartbeats, monitor)", f"{idle_cpu_ms_per_s:.0f} ms per s", "",
         f"less that: {busy:.1f} ms/frame in the workers, efficiency {one['cpu_ms_per_frame'] / busy:.2f}"],
        ["local cluster start-up", f"{startup:.1f} s", "", ""],
        ["Dask task round trip (empty task)", f"{rtt['median_ms']:.1f} ms",
         f"{100 * rtt['median_ms'] / ms_frame:.0f} % of one frame's work",
         f"{100 * rtt['median_ms'] / (32 * ms_frame):.1f} % of a 32-frame task"],
    ]
    for k, r in rss.items():
        rows.append([f"peak RSS, {k} frames in process", f"{r.get('peak_rss_mb', float('nan')):.0f} MB",
                     f"{r.get('frames', '?')} frames in {r.get('seconds', float('nan')):.0f} s", r.get("error", "")])
    if len(rss) == 2:
        a, b = (rss[k].get("peak_rss_mb", np.nan) for k in sorted(rss))
        rows.append(["peak RSS ratio (most / fewest frames)", f"{b / a:.3f}", "goal: within 10 %", ""])
    rows += [
        [f"LAZ write, {args.points} coloured points: depthcloud", f"{laz_ours['median_ms']:.0f} ms",
         f"laspy LasData+write {laz_peer['median_ms']:.0f} ms", f"{laz_peer['median_ms'] / laz_ours['median_ms']:.2f}x"],
        ["LAS (uncompressed) write: depthcloud", f"{las_ours['median_ms']:.0f} ms",
         f"laspy LasData+write {las_peer['median_ms']:.0f} ms", f"{las_peer['median_ms'] / las_ours['median_ms']:.2f}x"],
    ]
    write_results("bench_export", data, md_table(["what", "value", "against", "note"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
