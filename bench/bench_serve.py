"""The point-cloud server under load, on loopback, bounded in time (about 2 minutes).

Each part starts ``depthcloud serve`` in its own process on 127.0.0.1 (port 0) and drives it from
this process with asyncio websocket clients:

1. load: 50 clients, half compatible mode ("2", as Grasshopper sends it), half binary ``get`` (f32 with
   colours), request as fast as they can for 30 s from ``synthetic:848x480@30`` — errors, p50/p99
   latency per protocol, replies/s, server RSS: idle base, peak, at the end, and after it has been
   idle a few seconds. Goals (issue 14): p99 ≤ 3 × p50 for each protocol; peak RSS ≤ base + clients ×
   one encoded cloud (the larger reply); back within 20 % of base when idle.
2. slow reader: 10 clients, in runs that alternate without and with one more client that sends
   requests and never reads (3 + 3 runs, 12 s each kind) — the p50 and replies/s of the others, median
   over runs. Goal: the stalled client costs the others under 5 % of their replies.
3. vanishing clients: 50 clients send a request and drop the TCP connection mid-reply, three times;
   the server's asyncio tasks and open file descriptors (from /metrics) before and after.
4. speed: compatible-mode JSON of a 100k-point cloud against ``json.dumps(points.tolist())`` in this
   process; binary f32 ``get`` of a 300k-point cloud over loopback, p50 over sequential requests.

The machine's load at the start and end is recorded (os.getloadavg): on a shared machine the
latencies follow it.

Usage: python bench/bench_serve.py [--quick]   (--quick: 5 s load, for a smoke run)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, timeit, versions, write_results
from depthcloud.serve import protocol

REPO = Path(__file__).resolve().parents[1]


class Server:
    """``depthcloud serve`` in a child process; the URL is read from its first line of output."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "depthcloud", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"(ws://127\.0\.0\.1:\d+)/ ", line)
        if m is None:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = m.group(1)
        self.ps = psutil.Process(self.proc.pid)

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def close(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


async def http_get(url: str, path: str) -> bytes:
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    return raw.partition(b"\r\n\r\n")[2]


async def metrics(url: str) -> dict[str, float]:
    body = (await http_get(url, "/metrics")).decode()
    return {ln.split()[0]: float(ln.split()[1]) for ln in body.splitlines() if ln and not ln.startswith("#")}


async def wait_ready(url: str) -> None:
    for _ in range(300):
        doc = json.loads(await http_get(url, "/health"))
        if doc["status"] == "ok":
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"server not ready: {doc}")


BINARY_GET = json.dumps({"op": "get", "encoding": "f32", "colors": True})


async def hammer(url: str, n_clients: int, duration_s: float, *, message: str = "2",
                 slow_reader: bool = False, mixed: bool = False) -> dict[str, Any]:
    """n_clients request back to back for duration_s; latency per reply, errors counted.

    mixed: every other client speaks the binary protocol (``get`` f32 with colours) instead.
    """
    from websockets.asyncio.client import connect

    latencies: dict[str, list[float]] = {"compat": [], "binary": []}
    sizes: dict[str, int] = {"compat": 0, "binary": 0}
    samples: dict[str, list[bytes]] = {"compat": [], "binary": []}
    errors: list[str] = []
    checked = 0
    stop_at = time.monotonic() + duration_s

    async def one(i: int) -> None:
        binary = mixed and i % 2 == 1
        kind = "binary" if binary else "compat"
        try:
            async with connect(url + ("/v1" if binary else "/"), max_size=None, compression=None,
                               open_timeout=30) as ws:
                while time.monotonic() < stop_at:
                    t0 = time.perf_counter()
                    await ws.send(BINARY_GET if binary else message)
                    reply = await asyncio.wait_for(ws.recv(decode=False), 30)  # kept as bytes
                    latencies[kind].append((time.perf_counter() - t0) * 1e3)
                    sizes[kind] = max(sizes[kind], len(reply))
                    if reply[:1] == b"{" or (not binary and not reply.startswith(b"[[")):
                        errors.append(reply[:200].decode("utf-8", "replace"))
                    elif len(latencies[kind]) % 97 == 0 and len(samples[kind]) < 5:
                        samples[kind].append(reply)  # parsed after the run: parsing here would stall every client
        except Exception as exc:
            errors.append(f"client {i}: {type(exc).__name__}: {exc}")

    async def stalled() -> None:
        # Sends requests and never reads: its replies pile up in its socket until the server blocks on it.
        ws = await connect(url + "/", max_size=None, compression=None, max_queue=1)
        for _ in range(20):
            await ws.send(message)  # the same request as the others: it costs the server no extra encoding
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        ws.transport.abort()

    tasks = [asyncio.create_task(one(i)) for i in range(n_clients)]
    if slow_reader:
        tasks.append(asyncio.create_task(stalled()))
    t0 = time.monotonic()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    for reply in samples["binary"]:
        protocol.decode_cloud(reply)
        checked += 1
    for reply in samples["compat"]:
        if not all(len(p) == 3 for p in json.loads(reply)):
            errors.append("malformed point")
        checked += 1
    return summarise(n_clients, elapsed, latencies, sizes, errors, checked)


def summarise(n_clients: int, elapsed: float, latencies: dict[str, list[float]], sizes: dict[str, int],
              errors: list[str], checked: int) -> dict[str, Any]:
    """Counts and percentiles of one load run (the raw latencies are kept for merging runs)."""
    every = latencies["compat"] + latencies["binary"]
    lat = np.asarray(every) if every else np.asarray([np.nan])
    out = {
        "clients": n_clients, "duration_s": round(elapsed, 1), "replies": len(every),
        "replies_per_s": len(every) / elapsed, "errors": len(errors), "first_errors": errors[:3],
        "parsed_checks": checked, "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
    }
    for kind, values in latencies.items():
        if values:
            arr = np.asarray(values)
            out[kind] = {"replies": len(values), "p50_ms": float(np.percentile(arr, 50)),
                         "p99_ms": float(np.percentile(arr, 99)),
                         "p99_over_p50": float(np.percentile(arr, 99) / np.percentile(arr, 50)),
                         "reply_mb": sizes[kind] / 2**20}
    out["raw"] = {"latencies": latencies, "sizes": sizes, "errors": errors, "checked": checked, "elapsed": elapsed}
    return out


def _hammer_in_process(url: str, n_clients: int, duration_s: float) -> dict[str, Any]:
    return asyncio.run(hammer(url, n_clients, duration_s, mixed=True))


async def hammer_processes(url: str, n_clients: int, duration_s: float, processes: int = 2) -> dict[str, Any]:
    """hammer() split over client processes, so that the clients' own event loop (receiving ~300 MB/s
    of replies in Python) is not what the latencies measure; the runs are merged."""
    import concurrent.futures
    import multiprocessing

    per = [n_clients // processes + (1 if i < n_clients % processes else 0) for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        loop = asyncio.get_running_loop()
        runs = await asyncio.gather(*(loop.run_in_executor(pool, _hammer_in_process, url, n, duration_s) for n in per))
    raw = [r["raw"] for r in runs]
    return summarise(
        n_clients, max(r["elapsed"] for r in raw),
        {k: [x for r in raw for x in r["latencies"][k]] for k in ("compat", "binary")},
        {k: max(r["sizes"][k] for r in raw) for k in ("compat", "binary")},
        [e for r in raw for e in r["errors"]], sum(r["checked"] for r in raw),
    )


async def part_load(duration_s: float, idle_s: float = 6.0) -> dict[str, Any]:
    srv = Server("--source", "synthetic:848x480@30", "--decimation", "2")
    try:
        await wait_ready(srv.url)
        # The base: serving frames, one client's worth of each reply made once, then idle (released).
        await hammer(srv.url, 2, 1.0, mixed=True)
        await asyncio.sleep(idle_s)
        rss = [srv.rss_mb()]
        start_rss = rss[0]

        async def sample() -> None:
            while True:
                await asyncio.sleep(0.5)
                rss.append(srv.rss_mb())

        sampler = asyncio.create_task(sample())
        cpu0, wall0 = sum(srv.ps.cpu_times()[:2]), time.monotonic()
        result = await hammer_processes(srv.url, 50, duration_s)
        del result["raw"]
        server_cpu = (sum(srv.ps.cpu_times()[:2]) - cpu0) / (time.monotonic() - wall0)
        end_rss = srv.rss_mb()
        await asyncio.sleep(idle_s)  # idle: the server releases its caches and gives memory back
        sampler.cancel()
        one_cloud = max(result.get(k, {}).get("reply_mb", 0.0) for k in ("compat", "binary"))
        m = await metrics(srv.url)
        result.update(server_cpu_cores=server_cpu, rss_start_mb=start_rss, rss_peak_mb=max(rss), rss_end_mb=end_rss,
                      rss_idle_mb=srv.rss_mb(), one_encoded_cloud_mb=one_cloud,
                      rss_budget_mb=start_rss + 50 * one_cloud,
                      cache_hits=m.get("depthcloud_encode_cache_hits_total"),
                      cache_misses=m.get("depthcloud_encode_cache_misses_total"),
                      server_errors=sum(v for k, v in m.items() if k.startswith("depthcloud_errors_total")))
        return result
    finally:
        srv.close()


async def part_slow_reader(duration_s: float, rounds: int = 3) -> dict[str, Any]:
    """Runs without and with the stalled client alternate, so drifting machine load hits both alike."""
    srv = Server("--source", "synthetic:848x480@30", "--decimation", "2")
    try:
        await wait_ready(srv.url)
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for _ in range(rounds):
            for slow in (False, True):
                runs[slow].append(await hammer(srv.url, 10, duration_s / rounds, slow_reader=slow))
                await drained(srv.url)

        def pooled(key: str, slow: bool) -> float:
            return float(np.median([r[key] for r in runs[slow]]))

        out = {"rounds": rounds, "errors": sum(r["errors"] for rs in runs.values() for r in rs)}
        for slow, tag in ((False, "without"), (True, "with")):
            out[f"{tag}_p50_ms"] = pooled("p50_ms", slow)
            out[f"{tag}_replies_per_s"] = pooled("replies_per_s", slow)
            out[f"{tag}_p50_per_round_ms"] = [r["p50_ms"] for r in runs[slow]]
        out["p50_ratio"] = out["with_p50_ms"] / out["without_p50_ms"]
        out["replies_lost"] = 1.0 - out["with_replies_per_s"] / out["without_replies_per_s"]
        return out
    finally:
        srv.close()


async def part_vanish(rounds: int = 3, n: int = 50) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    srv = Server("--source", "synthetic:848x480@30", "--decimation", "1", "--max-clients", str(2 * n))
    try:
        await wait_ready(srv.url)
        async with connect(srv.url + "/", max_size=None) as ws:  # warm caches and thread pools
            await ws.send("1")
            await ws.recv()
        await asyncio.sleep(0.5)
        before = await metrics(srv.url)
        for r in range(rounds):
            conns = [await connect(srv.url + ("/v1" if i % 2 else "/"), max_size=None) for i in range(n)]
            for i, ws in enumerate(conns):
                await ws.send('{"op": "subscribe"}' if i % 2 else "1")
            await asyncio.sleep(0.02 * (r + 1))
            for ws in conns:
                ws.transport.abort()
            await drained(srv.url)
        await asyncio.sleep(0.5)
        after = await metrics(srv.url)
        return {
            "rounds": rounds, "clients_per_round": n,
            "tasks_before": before["depthcloud_asyncio_tasks"], "tasks_after": after["depthcloud_asyncio_tasks"],
            "fds_before": before["process_open_fds"], "fds_after": after["process_open_fds"],
            "clients_after": after["depthcloud_clients"],
        }
    finally:
        srv.close()


async def drained(url: str, timeout_s: float = 30.0) -> None:
    """Wait until the server has no websocket connection left."""
    deadline = time.monotonic() + timeout_s
    while (await metrics(url))["depthcloud_clients"] > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def part_compat_speed() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    pts = (rng.standard_normal((100_000, 3)) * 2.0).astype(np.float32)
    ours = timeit(lambda: protocol.encode_compat(pts), min_time_s=2.0)
    ref = timeit(lambda: json.dumps(pts.tolist()), min_time_s=2.0, max_runs=20)
    parsed = np.asarray(json.loads(protocol.encode_compat(pts)))
    return {"points": len(pts), "ours_ms": ours["median_ms"], "json_dumps_ms": ref["median_ms"],
            "speedup": ref["median_ms"] / ours["median_ms"],
            "max_abs_error_m": float(np.abs(parsed - pts.astype(np.float64)).max())}


async def part_binary_get(requests: int = 300, fps: int = 30) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    srv = Server("--source", f"synthetic:848x480@{fps}", "--decimation", "1")
    try:
        await wait_ready(srv.url)
        lat = []
        counts = set()
        async with connect(srv.url + "/v1", max_size=None, compression=None) as ws:
            request = json.dumps({"op": "get", "encoding": "f32", "max_points": 300_000})
            for i in range(requests + 10):
                t0 = time.perf_counter()
                await ws.send(request)
                reply = await ws.recv()
                dt = (time.perf_counter() - t0) * 1e3
                if i >= 10:
                    lat.append(dt)
                    if i % 50 == 0:
                        counts.add(protocol.decode_cloud(reply)[0].count)
        m = await metrics(srv.url)
        arr = np.asarray(lat)
        return {"points": sorted(counts), "requests": requests, "p50_ms": float(np.median(arr)),
                "p90_ms": float(np.percentile(arr, 90)), "p99_ms": float(np.percentile(arr, 99)),
                "message_mb": len(reply) / 2**20,
                "cache_hits": m["depthcloud_encode_cache_hits_total"],
                "cache_misses": m["depthcloud_encode_cache_misses_total"]}
    finally:
        srv.close()


async def main(quick: bool) -> None:
    load_s, slow_s = (5.0, 3.0) if quick else (30.0, 12.0)
    results: dict[str, Any] = {"versions": versions("websockets", "numpy", "numba"),
                               "loadavg_start": os.getloadavg()}
    results["compat_speed"] = part_compat_speed()
    # A source at 1 fps: nearly every request is served from the encoding cache (transport cost);
    # at 30 fps most requests meet a new frame and pay for its encoding too.
    results["binary_get_300k"] = await part_binary_get(100 if quick else 300, fps=1)
    results["binary_get_300k_live"] = await part_binary_get(100 if quick else 300, fps=30)
    results["load_50_clients"] = await part_load(load_s)
    results["slow_reader"] = await part_slow_reader(slow_s)
    results["vanishing_clients"] = await part_vanish()
    c, b, bl, ld, s, vz = (results[k] for k in ("compat_speed", "binary_get_300k", "binary_get_300k_live",
                                                "load_50_clients", "slow_reader", "vanishing_clients"))
    rows = [
        ["compat JSON, 100k points", f"{c['ours_ms']:.2f} ms vs json.dumps {c['json_dumps_ms']:.1f} ms",
         f"{c['speedup']:.1f}× (goal ≥ 15×); max error {c['max_abs_error_m']:.1e} m"],
        ["binary f32 get, 300k points, loopback, 1 fps source", f"p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms",
         f"goal p50 ≤ 10 ms; {b['message_mb']:.1f} MiB a reply; {b['cache_misses']:.0f} encodes"],
        ["same, 30 fps source (new frame most requests)", f"p50 {bl['p50_ms']:.2f} ms, p99 {bl['p99_ms']:.2f} ms",
         f"{bl['cache_misses']:.0f} encodes for {bl['requests']} requests"],
        *[[f"load: 50 clients × {ld['duration_s']} s, {kind} ({ld[kind]['replies']} replies)",
           f"p50 {ld[kind]['p50_ms']:.1f} ms, p99 {ld[kind]['p99_ms']:.1f} ms",
           f"p99/p50 {ld[kind]['p99_over_p50']:.2f} (goal ≤ 3); {ld[kind]['reply_mb']:.2f} MiB a reply"]
          for kind in ("compat", "binary") if kind in ld],
        ["load: the same, server side",
         f"{ld['replies_per_s']:.0f} replies/s, errors {ld['errors']}, CPU {ld['server_cpu_cores']:.2f} cores",
         f"cache {ld['cache_hits']:.0f} shared / {ld['cache_misses']:.0f} encodes"],
        ["load: RSS base → peak → end → idle",
         f"{ld['rss_start_mb']:.0f} → {ld['rss_peak_mb']:.0f} → {ld['rss_end_mb']:.0f} → {ld['rss_idle_mb']:.0f} MiB",
         f"goal peak ≤ base + 50 × {ld['one_encoded_cloud_mb']:.2f} MiB = {ld['rss_budget_mb']:.0f} MiB; "
         f"idle within 20 % of base ({1.2 * ld['rss_start_mb']:.0f} MiB)"],
        ["slow reader: 10 clients, without → with (median of alternating runs)",
         f"p50 {s['without_p50_ms']:.1f} → {s['with_p50_ms']:.1f} ms; "
         f"{s['without_replies_per_s']:.0f} → {s['with_replies_per_s']:.0f} replies/s",
         f"replies lost {100 * s['replies_lost']:.1f} % (goal < 5 %); errors {s['errors']}"],
        [f"vanishing: {vz['rounds']}×{vz['clients_per_round']} clients dropped mid-reply",
         f"tasks {vz['tasks_before']:.0f} → {vz['tasks_after']:.0f}, fds {vz['fds_before']:.0f} → {vz['fds_after']:.0f}",
         f"clients left {vz['clients_after']:.0f}"],
    ]
    results["loadavg_end"] = os.getloadavg()
    rows.append(["machine load (1-min average) start → end", f"{results['loadavg_start'][0]:.1f} → "
                 f"{results['loadavg_end'][0]:.1f}", f"{os.cpu_count()} cores, shared"])
    write_results("bench_serve", results, md_table(["what", "measured", "notes"], rows))


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv[1:]))
