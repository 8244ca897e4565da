"""The browser viewer (/view) in headless Chromium with software WebGL2, against an in-process server.

The synthetic scene (sources/synthetic.py) is seen from the camera's own viewpoint after a reset:
with a 424×240 camera on an 848×480 page, canvas pixel = 2 × camera pixel, so each object's colour
is asserted where the camera projects it, and the page background where the depth range cut
everything away.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from browser import ServerThread, canvas_pixels, chromium, is_background, patch, stat, wait_until
from depthcloud.serve.config import ServeConfig
from depthcloud.serve.server import CloudServer
from depthcloud.sources.synthetic import default_intrinsics

pytestmark = pytest.mark.slow
VIEWPORT = {"width": 848, "height": 480}
CAM = default_intrinsics(424, 240)


def live(**options: Any) -> ServerThread:
    cfg = ServeConfig(**{"source": "synthetic:424x240@15", "host": "127.0.0.1", "port": 0, **options})
    return ServerThread(lambda: CloudServer(cfg))


def canvas_xy(point: tuple[float, float, float]) -> tuple[float, float]:
    """Where an optical-frame point lands on the page in the reset (camera) view."""
    x, y, z = point
    u = CAM.fx * x / z + CAM.cx
    v = CAM.fy * y / z + CAM.cy
    return 2 * u + 1, 2 * v + 1  # pixel centres: camera pixel i covers canvas 2i .. 2i+1


def received_in_status(page: Any) -> int:
    m = re.search(r"frames (\d+)", page.inner_text("#status"))
    return int(m.group(1)) if m else -1


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def open_view(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport=VIEWPORT)
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.on("websocket", lambda ws: seen.append(ws.url))
    response = page.goto(url)
    if response is not None:
        seen.append(f"status:{response.status}")
    return page, seen


def test_live_scene_colours_where_its_objects_are_and_restart_is_recovered(browser, tmp_path):
    # Depth ≤ 4 m: the back wall (5 m) and the far floor are cut, so the page background shows above.
    with live(max_depth_m=4.0) as srv:
        origin = srv.http
        page, seen = open_view(browser, f"{origin}/view?grid=0")
        assert "status:200" in seen
        wait_until(lambda: (stat(page, "drawn") or 0) >= 3, what="three frames drawn")
        assert stat(page, "encoding") == "compact"
        rgb = canvas_pixels(page, tmp_path / "live.png")
        sphere = patch(rgb, *canvas_xy((0.6, 0.2, 2.2)))          # blue (60, 140, 230), shaded
        box = patch(rgb, *canvas_xy((-0.7, 0.89, 2.5)), r=2)      # the box's front face, orange
        floor = patch(rgb, *canvas_xy((1.2, 1.2, 3.0)))           # (150, 170, 120), green-grey
        sky = patch(rgb, *canvas_xy((-1.5, -1.0, 4.5)))           # nothing within 4 m there
        assert sphere[2] > sphere[0] + 40 and sphere[2] > sphere[1], sphere
        assert box[0] > box[2] + 60 and box[0] > box[1], box
        assert floor[1] > floor[2] + 15 and floor[1] >= floor[0], floor
        assert is_background(sky), sky

        # the status line counts received frames, and the count rises
        first = wait_until(lambda: received_in_status(page) > 0, what="status line")
        wait_until(lambda: received_in_status(page) > first + 3, what="received count rising")
        status = wait_until(lambda: next((t for t in [page.inner_text("#status")] if "source running" in t), None),
                            what="source state from /health")
        assert "compact" in status and "pts" in status and "KiB/frame" in status and "no_frame" not in status

        # the server goes away and comes back on the same port: the page reconnects by itself
        port = srv.port
        srv.stop()
        wait_until(lambda: str(stat(page, "state")).startswith("reconnecting"), what="page sees the restart")
        before = stat(page, "received")
        restarted = ServerThread(lambda: CloudServer(ServeConfig(source="synthetic:424x240@15", port=port,
                                                                 max_depth_m=4.0)))
        with restarted:
            wait_until(lambda: stat(page, "state") == "connected" and stat(page, "received") > before + 2,
                       timeout_s=60, what="frames after the restart")
            assert stat(page, "reconnects") >= 1
        page.close()
    # nothing but the server's own origin was asked for (HTTP and websocket)
    asked = [u for u in seen if not u.startswith("status:")]
    assert asked and all(re.match(rf"(http|ws)://127\.0\.0\.1:{port}/", u) or u.startswith("data:") for u in asked), asked
    assert any(u.startswith("ws://") for u in asked) and any(u.endswith("/view/viewer.js") for u in asked)


def test_colour_by_depth_and_height_change_the_picture(browser):
    with live(max_depth_m=4.0) as srv:
        # deflate: what the page asks for over a network, inflated by the browser itself
        page, _ = open_view(browser, f"{srv.http}/view?grid=0&colorby=depth&compress=deflate")
        wait_until(lambda: (stat(page, "drawn") or 0) >= 2, what="frames drawn")
        assert stat(page, "errors") == 0 and stat(page, "bytes") < 30_000  # 212×120 compact: 63 kB, deflated 16 kB
        by_depth = canvas_pixels(page)
        page.select_option("#colorby", "rgb")
        page.wait_for_timeout(500)
        by_rgb = canvas_pixels(page)
        sphere = canvas_xy((0.6, 0.2, 2.2))
        # the ramp is not the sphere's blue texture; the far floor is warmer than the near floor
        assert np.abs(patch(by_depth, *sphere) - patch(by_rgb, *sphere)).max() > 20
        near, far = patch(by_depth, *canvas_xy((1.8, 1.2, 2.8))), patch(by_depth, *canvas_xy((1.8, 1.2, 3.8)))
        assert far[0] > near[0] + 60 and near[2] > far[2], (near, far)
        page.close()


def test_token_is_needed_by_the_page_and_its_stream(browser):
    with live(token="s3cret") as srv:
        page, seen = open_view(browser, f"{srv.http}/view")
        assert "status:401" in seen
        page.close()
        page, seen = open_view(browser, f"{srv.http}/view?token=wrong")
        assert "status:401" in seen
        page.close()
        page, seen = open_view(browser, f"{srv.http}/view?token=s3cret")
        assert "status:200" in seen
        wait_until(lambda: (stat(page, "drawn") or 0) >= 2, what="frames drawn with the token")
        assert any(u.startswith("ws://") and "token=s3cret" in u for u in seen)
        assert (stat(page, "source") or {}).get("state") == "running"  # /health answered with the token
        page.close()


def test_page_falls_back_to_points_where_compact_is_refused(browser):
    # a voxel grid is not a per-pixel operation: the server refuses compact, the page asks for f32
    with live(voxel_m=0.05) as srv:
        page, _ = open_view(browser, f"{srv.http}/view?grid=0")
        wait_until(lambda: (stat(page, "drawn") or 0) >= 2, what="frames drawn as points")
        assert stat(page, "encoding") == "f32" and stat(page, "errors") == 0
        rgb = canvas_pixels(page)
        assert not is_background(patch(rgb, 424, 240, r=20))  # something drawn in the middle
        page.close()
