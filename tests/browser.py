"""Helpers for the viewer's browser tests: a server in its own thread, headless Chromium, pixels.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``) driven by Playwright, drawing
WebGL2 with SwiftShader (software). Tests skip with the reason when either is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def need_browser() -> Any:
    """Playwright's sync API, or skip when it or Chromium is absent."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("playwright is not installed (pip install 'depthcloud[dev]')")
    return sync_api


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    sync_api = need_browser()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class ServerThread:
    """Runs ``make()`` (an async context manager yielding a server with ``.port``) on its own loop."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self.port = 0
        self.server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> ServerThread:
        self._ready.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the server did not start in time")
        if self._error is not None:
            raise self._error
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with self._make() as server:
                self.server, self.port = server, server.port
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)
        self._thread = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stat(page: Any, key: str) -> Any:
    """One of the page's counters (window.depthcloudViewer.stats); evaluated over CDP, so the page's
    strict Content-Security-Policy (no eval) does not get in the way."""
    return page.evaluate(f"window.depthcloudViewer ? window.depthcloudViewer.stats[{key!r}] : null")


def wait_until(cond: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met in {timeout_s:g} s")
        time.sleep(0.1)


def canvas_pixels(page: Any, path: Path | None = None) -> np.ndarray:
    """The page as an (H, W, 3) uint8 RGB screenshot (written to ``path`` too when given)."""
    import cv2

    png = page.screenshot(path=None if path is None else str(path))
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[..., ::-1])


def patch(rgb: np.ndarray, x: float, y: float, r: int = 3) -> np.ndarray:
    """Median colour of the (2r+1)² patch around canvas pixel (x, y), as int RGB."""
    xi, yi = round(x), round(y)
    assert r <= xi < rgb.shape[1] - r and r <= yi < rgb.shape[0] - r, f"({x:.0f}, {y:.0f}) is off the page"
    return np.median(rgb[yi - r:yi + r + 1, xi - r:xi + r + 1].reshape(-1, 3), axis=0).astype(int)


BACKGROUND = np.array([23, 25, 29])  # viewer.js BACKGROUND


def is_background(c: np.ndarray) -> bool:
    return bool(np.abs(c - BACKGROUND).max() <= 6)
