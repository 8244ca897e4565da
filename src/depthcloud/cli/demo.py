"""``depthcloud demo``: the main job on data the project makes itself.

A synthetic scene with known geometry (a floor, a wall, a box and a sphere; see
:func:`depthcloud.sources.synthetic.default_scene`) is rendered to exact depth and colour, turned into
a coloured cloud, checked against the analytic surfaces, and written as a PLY with a PNG preview, plus
the depth image and camera file so the other commands can be tried on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthcloud.cli._common import check_output, console
from depthcloud.cloud import PointCloud
from depthcloud.sources.synthetic import Plane, Sphere, default_intrinsics, default_scene, render_scene


def surface_errors(cloud: PointCloud, *, t: float = 0.0, band_m: float = 0.005) -> list[tuple[str, int, float]]:
    """For each plane and sphere of the default scene at time ``t``: (name, points within ``band_m``
    of it, largest distance of those points from the analytic surface in metres)."""
    pts = cloud.points.astype(np.float64)
    rows = []
    for prim in default_scene().at(t).primitives:
        if isinstance(prim, Plane):
            dist = np.abs(pts @ np.asarray(prim.normal) - prim.offset_m)
            name = f"plane n={tuple(round(x, 3) for x in prim.normal)} at {prim.offset_m:g} m"
        elif isinstance(prim, Sphere):
            dist = np.abs(np.linalg.norm(pts - np.asarray(prim.center_m), axis=1) - prim.radius_m)
            name = f"sphere r={prim.radius_m:g} m"
        else:
            continue
        near = dist < band_m
        rows.append((name, int(near.sum()), float(dist[near].max()) if near.any() else float("nan")))
    return rows


# The scene needs some pixels to be a scene, and the demo should not fill a disk.
MIN_SIZE, MAX_SIZE = (32, 24), (7680, 4320)


def run_demo(out_dir: Path, *, width: int, height: int, overwrite: bool) -> dict[str, Path]:
    """Render, unproject, verify and write; returns the paths written. Sizes are checked and every
    picture is made before the first file is written, so an error leaves nothing behind."""
    from depthcloud.errors import InputError
    from depthcloud.geometry import Unprojector
    from depthcloud.io import write_cloud
    from depthcloud.io.calibfiles import save_camera
    from depthcloud.io.depthimage import write_depth_png
    from depthcloud.viz import colorize, grid, render_views, save_png, value_range, with_colorbar

    for name, value, low, high in (("--width", width, MIN_SIZE[0], MAX_SIZE[0]), ("--height", height, MIN_SIZE[1], MAX_SIZE[1])):
        if not low <= value <= high:
            raise InputError(f"{name}: expected {low} to {high} pixels, got {value}")
    intr = default_intrinsics(width, height)
    names = {"cloud": "scene.ply", "preview": "preview.png", "depth": "depth.png", "color": "color.png", "camera": "camera.yaml"}
    paths = {k: check_output(out_dir / n, overwrite=overwrite) for k, n in names.items()}

    depth, color = render_scene(intr, 0.0)
    cloud = Unprojector(intr)(depth, color=color)

    lo, hi = value_range(depth)
    top = [color, with_colorbar(colorize(depth, vmin=lo, vmax=hi), vmin=lo, vmax=hi, label="m")]
    # Renders at least 480 px wide, whatever the image size: a cloud picture has to be readable.
    rw = max(480, width // 2)
    views = render_views(cloud, views=("front", "left", "right"), width=rw, height=round(rw * height / width))
    preview = grid([grid(top, columns=2, labels=["colour", "depth (m)"]), views], columns=1)

    write_cloud(paths["cloud"], cloud, overwrite=True)
    write_depth_png(paths["depth"], depth, depth_scale=0.001, overwrite=True)
    save_png(paths["color"], color, overwrite=True)
    save_camera(paths["camera"], intr, overwrite=True)
    save_png(paths["preview"], preview, overwrite=True)

    console.print(f"depthcloud demo: synthetic scene {width}x{height}, fx {intr.fx:.2f} px, {len(cloud)} coloured points")
    for name, n, err in surface_errors(cloud):
        console.print(f"  {name}: {n} points, largest distance from the true surface {err * 1e6:.1f} µm")
    console.print(f"wrote {paths['cloud']} (coloured binary PLY) and {paths['preview']} (preview)")
    console.print(f"also {paths['depth']} (16-bit, mm), {paths['color']}, {paths['camera']}; try:")
    console.print(f"  depthcloud depth {paths['depth']} --camera {paths['camera']} --color {paths['color']} -o {out_dir / 'again.ply'}")
    console.print(f"  depthcloud info {paths['cloud']}")
    return paths
