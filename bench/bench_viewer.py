"""The browser viewer: bytes per frame of each stream encoding, and frames drawn per second in
headless Chromium (SwiftShader, software WebGL2) for an 848×480 source at 30 fps.

1. Bytes/frame of one 848×480 synthetic frame (the default scene at t = 0, colour included where the
   encoding carries it): ``compact`` (uint16 depth + JPEG colour + intrinsics; plain, deflated as the
   page asks over a network, zstd) against ``f32`` points (+ rgb), ``f16``, ``i16mm``, and the
   compatible-mode JSON (points only), at decimation 1 and 2.
2. The page against an in-process ``serve --source synthetic:848x480@30`` for a few seconds per
   stream: frames received and drawn per second (the page's own counters), frames it dropped as stale,
   the source's rate; for the compatible JSON, which the page does not draw, how many replies a
   script in the same browser receives and parses per second (an upper bound for a JSON viewer).
3. A screenshot for docs/viewer.md (docs/img/viewer.png).

Usage: python bench/bench_viewer.py [--quick] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _common import md_table, versions, write_results  # noqa: E402
from depthcloud.geometry import Unprojector  # noqa: E402
from depthcloud.serve import protocol  # noqa: E402
from depthcloud.sources.synthetic import default_intrinsics, render_scene  # noqa: E402

SOURCE = "synthetic:848x480@30"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SCREENSHOT = HERE.parent / "docs" / "img" / "viewer.png"


def sizes() -> list[dict[str, Any]]:
    from depthcloud.filters import FilterChain
    from depthcloud.frame import Frame

    intr = default_intrinsics(848, 480)
    depth, color = render_scene(intr, 0.0)
    rows = []
    for m in (1, 2):
        f = Frame(depth, intr, color)
        if m > 1:
            f = FilterChain.from_options(decimation=m).apply(f)  # as the server decimates, colour too
        d, i, c = f.depth, f.intrinsics, f.color
        cloud = Unprojector(i)(d, color=c)
        f32 = len(protocol.encode_cloud(cloud, seq=1, encoding="f32", colors=True))
        entries = {
            "compact": len(protocol.encode_compact(d, i, seq=1, color=c)),
            "compact+deflate": len(protocol.encode_compact(d, i, seq=1, color=c, compress="deflate")),
            "compact+zstd": len(protocol.encode_compact(d, i, seq=1, color=c, compress="zstd")),
            "f32": f32,
            "f32 (no rgb)": len(protocol.encode_cloud(cloud, seq=1, encoding="f32")),
            "f16": len(protocol.encode_cloud(cloud, seq=1, encoding="f16", colors=True)),
            "i16mm": len(protocol.encode_cloud(cloud, seq=1, encoding="i16mm", colors=True)),
            "compat JSON (no rgb)": len(protocol.encode_compat(cloud.points)),
        }
        for name, n in entries.items():
            rows.append({"decimation": m, "encoding": name, "points": len(cloud), "bytes": n,
                         "vs_f32": n / f32, "mbit_s_at_30fps": n * 8 * 30 / 1e6})
    return rows


class Server:
    """``serve --source synthetic:848x480@30`` in this process, on its own thread and loop."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from depthcloud.serve.config import ServeConfig
        from depthcloud.serve.server import CloudServer

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with CloudServer(ServeConfig(source=SOURCE, port=0, decimation=1)) as srv:
            self.port = srv.port
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Server:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def counters(page: Any) -> dict[str, Any]:
    return page.evaluate("(() => { const s = window.depthcloudViewer.stats; return {received: s.received, "
                         "drawn: s.drawn, dropped: s.dropped, bytes: s.bytes, points: s.points, "
                         "source: s.source, latency: s.latencyMs, ingest: s.ingestMs, encoding: s.encoding}; })()")


def measure_page(browser: Any, url: str, seconds: float) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(url)
    deadline = time.monotonic() + 60
    while (counters(page)["drawn"] or 0) < 3:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no frames drawn from {url}")
        time.sleep(0.2)
    a, t0 = counters(page), time.monotonic()
    time.sleep(seconds)
    b, t1 = counters(page), time.monotonic()
    dt = t1 - t0
    page.close()
    src = b["source"] or {}
    return {"received_fps": (b["received"] - a["received"]) / dt, "drawn_fps": (b["drawn"] - a["drawn"]) / dt,
            "dropped_per_s": (b["dropped"] - a["dropped"]) / dt, "bytes_per_frame": b["bytes"],
            "points": b["points"], "source_fps": src.get("fps"), "recv_to_draw_ms": b["latency"],
            "decode_upload_ms": b["ingest"]}


def measure_compat(browser: Any, base: str, seconds: float) -> dict[str, Any]:
    page = browser.new_page()
    page.goto(f"{base}/view?grid=0")
    js = """async (seconds) => {
      const ws = new WebSocket(`ws://${location.host}/`);
      await new Promise((ok) => { ws.onopen = ok; });
      let n = 0, bytes = 0, points = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < seconds * 1000) {
        const text = await new Promise((ok) => { ws.onmessage = (e) => ok(e.data); ws.send("1"); });
        const pts = JSON.parse(text);
        n++; bytes = text.length; points = pts.length;
      }
      ws.close();
      return {n, bytes, points, seconds: (performance.now() - t0) / 1000};
    }"""
    r = page.evaluate(js, seconds)
    page.close()
    return {"received_fps": r["n"] / r["seconds"], "drawn_fps": None, "dropped_per_s": None,
            "bytes_per_frame": r["bytes"], "points": r["points"], "source_fps": None, "recv_to_draw_ms": None,
            "decode_upload_ms": None}


def screenshot(browser: Any, base: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(f"{base}/view?pointsize=3&decimation=2")
    deadline = time.monotonic() + 60
    while (counters(page)["drawn"] or 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    # orbit a little (the eye goes left and up) and step back, so the cloud shows its depth
    page.mouse.move(640, 400)
    page.mouse.down()
    page.mouse.move(740, 460, steps=8)
    page.mouse.up()
    page.mouse.wheel(0, 300)
    time.sleep(2.5)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    page.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 s per stream")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    seconds = 3.0 if args.quick else args.seconds
    load_start = os.getloadavg()
    size_rows = sizes()
    streams: dict[str, Any] = {}
    if Path(CHROMIUM).exists():
        from playwright.sync_api import sync_playwright

        with Server() as srv, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            base = f"http://127.0.0.1:{srv.port}"
            for label, query in (("compact", "encoding=compact&decimation=1"), ("f32", "encoding=f32&decimation=1"),
                                 ("compact+deflate", "encoding=compact&decimation=1&compress=deflate"),
                                 ("compact, decimation 2", "encoding=compact&decimation=2"),
                                 ("f32, decimation 2", "encoding=f32&decimation=2")):
                streams[label] = measure_page(browser, f"{base}/view?grid=0&{query}", seconds)
            streams["compat JSON (parse only)"] = measure_compat(browser, base, seconds)
            screenshot(browser, base)
            browser.close()
    load_end = os.getloadavg()
    rows = [[r["encoding"], r["decimation"], r["points"], r["bytes"], round(r["vs_f32"], 3),
             round(r["mbit_s_at_30fps"], 1)] for r in size_rows]
    table = md_table(["encoding", "decimation", "points", "bytes/frame", "÷ f32", "Mbit/s at 30 fps"], rows)
    if streams:
        srows = [[k, round(v["received_fps"], 1), "–" if v["drawn_fps"] is None else round(v["drawn_fps"], 1),
                  "–" if v["dropped_per_s"] is None else round(v["dropped_per_s"], 1), v["bytes_per_frame"],
                  v["points"], "–" if v["source_fps"] is None else v["source_fps"],
                  "–" if v["decode_upload_ms"] is None else round(v["decode_upload_ms"], 1),
                  "–" if v["recv_to_draw_ms"] is None else round(v["recv_to_draw_ms"])] for k, v in streams.items()]
        table += "\n" + md_table(["stream (848×480 @ 30 fps source)", "received fps", "drawn fps", "dropped/s",
                                  "bytes/frame", "points", "source fps", "decode+upload ms",
                                  "arrival→drawn ms"], srows)
    else:
        table += "\n(no chromium at /usr/bin/chromium: no browser measurements)\n"
    table += (f"\nLoad average (1 min) {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end; "
              f"{seconds:g} s per stream; Chromium with SwiftShader (software WebGL2), 1280×720 page. "
              "Decimation 1 = 407k points per frame. Sizes: the default synthetic scene at t = 0.\n")
    write_results("bench_viewer", {"sizes": size_rows, "streams": streams, "seconds": seconds,
                                   "load_start": load_start, "load_end": load_end,
                                   "versions": versions("playwright", "websockets", "numpy")}, table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
