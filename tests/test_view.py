"""`depthcloud view`: files read into items (clouds through read_cloud, PLY meshes with faces), the
file server's protocol, the command line, and the page in headless Chromium (red plane, blue sphere,
a mesh drawn as a surface)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from browser import ServerThread, canvas_pixels, chromium, is_background, patch, stat, wait_until
from conftest import REPO
from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError
from depthcloud.io import write_cloud
from depthcloud.serve import protocol
from depthcloud.serve.viewfiles import FileViewServer, load_item

VIEWPORT = {"width": 848, "height": 480}
RED, BLUE, GREEN = (230, 30, 30), (30, 60, 230), (40, 200, 60)


def plane_and_sphere(path: Path) -> Path:
    """A red 1 × 1 m square at z = 3 (x −1.2 … −0.2) and a blue sphere (r 0.4) centred at (0.6, 0, 3)."""
    g = np.arange(-0.5, 0.5001, 0.01)
    xx, yy = np.meshgrid(g - 0.7, g)
    plane = np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, 3.0)], axis=1)
    n = 20000
    k = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * k / n), math.pi * (1 + 5**0.5) * k
    sphere = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1) * 0.4
    sphere += [0.6, 0.0, 3.0]
    pts = np.concatenate([plane, sphere]).astype(np.float32)
    colors = np.concatenate([np.tile(RED, (len(plane), 1)), np.tile(BLUE, (n, 1))]).astype(np.uint8)
    return write_cloud(path, PointCloud(pts, colors))


def quad_mesh(path: Path, *, ascii: bool = False) -> Path:
    """A green 1 × 1 m square at z = 3 centred on x = 0.6, as 4 vertices and 2 triangles."""
    v = np.array([[0.1, -0.5, 3.0], [1.1, -0.5, 3.0], [1.1, 0.5, 3.0], [0.1, 0.5, 3.0]], np.float32)
    head = ["ply", f"format {'ascii' if ascii else 'binary_little_endian'} 1.0", "element vertex 4",
            "property float x", "property float y", "property float z", "property uchar red",
            "property uchar green", "property uchar blue", "element face 1",
            "property list uchar int vertex_indices", "end_header"]
    if ascii:
        rows = [f"{x} {y} {z} {GREEN[0]} {GREEN[1]} {GREEN[2]}" for x, y, z in v] + ["4 0 1 2 3"]
        path.write_text("\n".join(head + rows) + "\n")
    else:
        rec = np.zeros(4, dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3)])
        rec["xyz"], rec["rgb"] = v, GREEN
        face = np.uint8(4).tobytes() + np.array([0, 1, 2, 3], "<i4").tobytes()
        path.write_bytes(("\n".join(head) + "\n").encode() + rec.tobytes() + face)
    return path


# -- reading -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ascii", [False, True])
def test_ply_mesh_faces_are_read_and_fan_triangulated(tmp_path, ascii):
    item = load_item(quad_mesh(tmp_path / "quad.ply", ascii=ascii))
    assert item.faces is not None and item.faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert len(item.cloud) == 4 and item.cloud.colors is not None and item.cloud.colors.tolist()[0] == list(GREEN)


def test_clouds_come_through_read_cloud(tmp_path):
    ply = plane_and_sphere(tmp_path / "scene.ply")
    item = load_item(ply)
    assert item.faces is None and len(item.cloud) == 101 * 101 + 20000 and item.name == "scene.ply"
    xyz = tmp_path / "scene.xyz"
    write_cloud(xyz, item.cloud)
    assert len(load_item(xyz).cloud) == len(item.cloud)
    with pytest.raises(FormatError, match=r"unknown point-cloud or mesh extension '\.abc'"):
        (tmp_path / "x.abc").write_text("1 2 3\n")
        load_item(tmp_path / "x.abc")
    with pytest.raises(InputError, match="no such file"):
        load_item(tmp_path / "missing.ply")


async def test_file_server_sends_one_message_per_item_with_faces(tmp_path):
    items = [load_item(plane_and_sphere(tmp_path / "a.ply")), load_item(quad_mesh(tmp_path / "b.ply"))]
    async with FileViewServer(items, port=0) as srv, connect(f"ws://127.0.0.1:{srv.port}/v1", max_size=None) as ws:
        await ws.send(json.dumps({"op": "info"}))
        info = json.loads(await ws.recv())
        assert info["items"] == 2 and "compact" not in info["encodings"]
        await ws.send(json.dumps({"op": "subscribe", "encoding": "f32", "colors": True}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        first, second = await ws.recv(), await ws.recv()
        h1, cloud = protocol.decode_cloud(first)
        assert h1.extra == {"item": 0, "items": 2, "name": "a.ply"}
        assert np.array_equal(cloud.points, items[0].cloud.points)
        h2, fields = protocol.decode_fields(second)
        assert h2.extra["name"] == "b.ply" and fields["faces"].tolist() == [[0, 1, 2], [0, 2, 3]]
        await ws.send(json.dumps({"op": "get", "encoding": "compact"}))
        assert json.loads(await ws.recv())["code"] == "bad_request"


# -- the command line --------------------------------------------------------------------------------

@pytest.mark.slow
def test_view_command_prints_the_url_serves_the_page_and_stops_on_sigterm(tmp_path):
    ply = plane_and_sphere(tmp_path / "scene.ply")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "depthcloud", "view", str(ply), "--port", "0", "--token", "t0k"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/view\?token=t0k)", line)
        assert m and "1 file(s), 30201 points" in line, line
        with urllib.request.urlopen(m.group(1), timeout=10) as r:
            assert r.status == 200 and b"viewer.js" in r.read()
            assert "connect-src 'self'" in r.headers["Content-Security-Policy"]
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(m.group(1).split("?")[0], timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and err.strip().endswith("stopped")


def test_view_command_errors_are_one_line(tmp_path, capsys):
    from depthcloud.cli import main

    assert main(["view", str(tmp_path / "missing.ply")]) == 2
    assert "InputError" in capsys.readouterr().err


# -- the page ------------------------------------------------------------------------------------

def screen_xy(p, center, dist, fovy=math.radians(50)):
    """Canvas position of optical point p in the reset view: looking along +z from center − dist·ẑ."""
    f = VIEWPORT["height"] / 2 / math.tan(fovy / 2)
    dx, dy, dz = p[0] - center[0], p[1] - center[1], p[2] - (center[2] - dist)
    return VIEWPORT["width"] / 2 + f * dx / dz, VIEWPORT["height"] / 2 + f * dy / dz


@pytest.mark.slow
def test_page_shows_red_plane_blue_sphere_and_a_mesh_surface(tmp_path):
    items = [load_item(plane_and_sphere(tmp_path / "scene.ply")), load_item(quad_mesh(tmp_path / "quad.ply"))]
    items_cloud = np.concatenate([it.cloud.points for it in items])
    lo, hi = items_cloud.min(axis=0), items_cloud.max(axis=0)
    center, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    dist = radius / math.sin(math.radians(25))
    with chromium() as browser, ServerThread(lambda: FileViewServer(items, port=0)) as srv:
        page = browser.new_page(viewport=VIEWPORT)
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url))
        page.on("websocket", lambda ws: asked.append(ws.url))
        page.goto(f"{srv.http}/view?grid=0")
        wait_until(lambda: (stat(page, "drawn") or 0) >= 1 and stat(page, "points") == len(items_cloud),
                   what="both files drawn")
        page.wait_for_timeout(300)
        rgb = canvas_pixels(page, tmp_path / "view.png")
        red = patch(rgb, *screen_xy((-0.7, 0.3, 3.0), center, dist))
        blue = patch(rgb, *screen_xy((0.6, 0.0, 2.6), center, dist))   # the sphere's near pole, in front of the quad
        green = patch(rgb, *screen_xy((0.95, 0.4, 3.0), center, dist))  # the quad's surface beside the sphere
        assert red[0] > 180 and red[1] < 80 and red[2] < 80, red
        assert blue[2] > 180 and blue[0] < 80, blue
        assert green[1] > 100 and green[1] > green[0] + 50 and green[1] > green[2] + 50, green
        for corner in ((60, 120), (790, 120), (60, 400)):
            assert is_background(patch(rgb, *corner)), corner

        # orbit, pan and zoom change the picture; R (reset view) brings the first one back
        def changed_after(action) -> float:
            action()
            page.wait_for_timeout(400)
            # rows between the control panel and the status line, which change on their own
            return float(np.abs(canvas_pixels(page)[60:440].astype(int) - rgb[60:440].astype(int)).mean())

        def drag(button: str = "left") -> None:
            page.mouse.move(424, 240)
            page.mouse.down(button=button)
            page.mouse.move(504, 270, steps=5)
            page.mouse.up(button=button)

        def reset() -> None:
            page.keyboard.press("r")

        assert changed_after(drag) > 1.0
        assert changed_after(reset) < 0.2
        assert changed_after(lambda: drag("right")) > 1.0
        assert changed_after(reset) < 0.2
        assert changed_after(lambda: (page.mouse.move(424, 240), page.mouse.wheel(0, 400))) > 1.0
        assert changed_after(lambda: page.click("#reset")) < 0.2
        # point size, the grid and the colour modes each change the picture (and undo cleanly)
        assert changed_after(lambda: page.locator("#pointsize").fill("9")) > 0.5
        assert changed_after(lambda: page.locator("#pointsize").fill("3")) < 0.2
        assert changed_after(lambda: page.click("#grid")) > 0.2
        assert changed_after(lambda: page.click("#grid")) < 0.2
        page.select_option("#colorby", "height")
        page.wait_for_timeout(400)
        by_height = canvas_pixels(page)
        # the red plane spans y −0.5 … 0.5 (y down): its top is higher, so redder on the ramp, than its bottom
        top, bottom = (patch(by_height, *screen_xy((-0.7, y, 3.0), center, dist)) for y in (-0.45, 0.45))
        assert top[0] > bottom[0] + 60 and bottom[2] > top[2], (top, bottom)
        page.close()
    assert all(re.match(rf"(http|ws)://127\.0\.0\.1:{srv.port}/", u) or u.startswith("data:") for u in asked), asked


@pytest.mark.slow
def test_touch_drag_orbits_and_pinch_zooms(tmp_path):
    items = [load_item(plane_and_sphere(tmp_path / "scene.ply"))]
    with chromium() as browser, ServerThread(lambda: FileViewServer(items, port=0)) as srv:
        page = browser.new_page(viewport=VIEWPORT, has_touch=True)
        page.goto(f"{srv.http}/view?grid=0")
        wait_until(lambda: (stat(page, "drawn") or 0) >= 1, what="drawn")
        cdp = page.context.new_cdp_session(page)

        def touch(kind: str, points: list[tuple[float, float]]) -> None:
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
                {"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]})

        def camera() -> dict:
            return page.evaluate("(() => { const c = window.depthcloudViewer.viewer.camera; "
                                 "return {dist: c.dist, yaw: c.yaw, pitch: c.pitch}; })()")

        start = camera()
        touch("touchStart", [(400, 240)])
        for k in range(1, 6):
            touch("touchMove", [(400 + 12 * k, 240)])
        touch("touchEnd", [])
        after_drag = camera()
        assert after_drag["yaw"] != start["yaw"] and after_drag["dist"] == start["dist"]

        touch("touchStart", [(380, 240), (460, 240)])
        for k in range(1, 6):
            touch("touchMove", [(380 - 15 * k, 240), (460 + 15 * k, 240)])
        touch("touchEnd", [])
        pinched = camera()
        assert pinched["dist"] < 0.7 * after_drag["dist"]  # fingers apart: closer in
        page.close()



def test_meshes_go_through_the_surface_reader(tmp_path):
    """OBJ and GLB meshes (and PLY with faces) are read by depthcloud.surface.meshio, frame kept."""
    from depthcloud.surface.mesh import TriangleMesh
    from depthcloud.surface.meshio import write_mesh

    mesh = TriangleMesh(np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1]], np.float32), np.array([[0, 1, 2]], np.int32),
                        frame="zup")
    obj = load_item(write_mesh(tmp_path / "part.obj", mesh))
    ply = load_item(quad_mesh(tmp_path / "quad.ply"))
    assert obj.faces is not None and obj.faces.tolist() == [[0, 1, 2]] and len(obj.cloud) == 3
    assert ply.faces is not None and len(ply.faces) == 2

def test_a_browser_is_opened_only_where_someone_can_see_it(monkeypatch):
    from depthcloud.cli.view import can_open_browser

    for name in ("CI", "DEPTHCLOUD_NO_BROWSER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert not can_open_browser()
    monkeypatch.setenv("DISPLAY", ":0")
    assert can_open_browser()
    monkeypatch.setenv("CI", "true")
    assert not can_open_browser()
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delenv("DISPLAY")
    assert can_open_browser()
