"""One peer of bench_depth_to_points, timed in its own process (their thread pools fight on 2 cores).

Usage: python bench/_peer_depth_to_points.py PEER [--min-time S] WxH [WxH ...]
Prints one JSON document: {"WxH": {"median_ms": ..., "points": N, "max_err_m": ...}, ...}.

Every peer turns the same depth image (float32 metres, about 90 % valid) into points; the timed call
includes what a user of that API has to do per image (wrapping arrays, masking invalid pixels), but
not what can be prepared once per camera (our Unprojector's rays, kornia's cached grid, cv2's
disparity input). ``max_err_m`` compares the valid points to an independent float64 unprojection.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import timeit

BASELINE_M = 0.12


def camera(w: int, h: int) -> tuple[float, float, float, float]:
    """fx, fy, cx, cy of a ~70° camera with a slightly off-centre principal point and fx ≠ fy."""
    fx = (w / 2.0) / np.tan(np.radians(35.0))
    return fx, fx * 1.01, w / 2.0 - 3.3, h / 2.0 + 2.1


def scene(w: int, h: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic indoor-like depth image (float32 metres) and its colour (uint8 RGB).

    A back wall at 6 m, a floor rising towards the camera, three boxes, sensor noise growing with
    depth, and invalid pixels (0) as blob-shaped holes plus sparse dropouts: about 90 % valid.
    """
    rng = np.random.default_rng(seed)
    _, fy, _, cy = camera(w, h)
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = np.full((h, w), 6.0, np.float32)
    ray_y = (v - cy) / fy
    floor = np.where(ray_y > 0.02, 1.2 / np.maximum(ray_y, 1e-3), np.inf)  # a floor 1.2 m below the camera
    depth = np.minimum(depth, floor).astype(np.float32)
    for x0, y0, x1, y1, z in ((0.1, 0.3, 0.35, 0.75, 2.0), (0.55, 0.2, 0.8, 0.6, 3.2), (0.4, 0.55, 0.6, 0.9, 1.4)):
        box = (u >= x0 * w) & (u < x1 * w) & (v >= y0 * h) & (v < y1 * h)
        depth[box] = z + 0.2 * (u[box] / w - x0)
    depth *= 1.0 + rng.normal(0.0, 0.002, size=depth.shape).astype(np.float32) * depth
    holes = rng.random((h // 16 + 1, w // 16 + 1)) < 0.07
    holes = np.kron(holes, np.ones((16, 16), bool))[:h, :w]
    dropouts = rng.random((h, w)) < 0.035
    depth[holes | dropouts] = 0.0
    color = np.empty((h, w, 3), np.uint8)
    color[..., 0] = (u * 255 / w).astype(np.uint8)
    color[..., 1] = (v * 255 / h).astype(np.uint8)
    color[..., 2] = np.clip(depth * 40, 0, 255).astype(np.uint8)
    return depth.astype(np.float32), color


def reference(depth: np.ndarray, w: int, h: int) -> np.ndarray:
    fx, fy, cx, cy = camera(w, h)
    rows, cols = np.nonzero(depth > 0)
    z = depth[rows, cols].astype(np.float64)
    return np.column_stack([(cols - cx) / fx * z, (rows - cy) / fy * z, z])


def _ours(w: int, h: int, depth: np.ndarray, color: np.ndarray, rgb: bool) -> Callable[[], Any]:
    from depthcloud import Intrinsics, Unprojector

    fx, fy, cx, cy = camera(w, h)
    up = Unprojector(Intrinsics(fx, fy, cx, cy, w, h))
    if rgb:
        return lambda: up(depth, color=color).points
    return lambda: up(depth).points


def _naive(w: int, h: int, depth: np.ndarray, color: np.ndarray, rgb: bool) -> Callable[[], Any]:
    """What the Depth-Anything-V2 metric_depth/depth_to_pointcloud.py script does per image
    (our own rewrite): a pixel grid, (x − cx)/fx·z, stack, reshape. It keeps every pixel."""
    fx, fy, cx, cy = camera(w, h)

    def run() -> Any:
        x, y = np.meshgrid(np.arange(w), np.arange(h))
        x = (x - cx) / fx
        y = (y - cy) / fy
        z = depth
        pts = np.stack((np.multiply(x, z), np.multiply(y, z), z), axis=-1).reshape(-1, 3)
        if rgb:
            return pts, color.reshape(-1, 3) / 255.0
        return pts

    return run


def _kornia(w: int, h: int, depth: np.ndarray, color: np.ndarray, rgb: bool, cached: bool = False) -> Callable[[], Any]:
    import torch
    from kornia.geometry.depth import depth_to_3d_v2, unproject_meshgrid

    fx, fy, cx, cy = camera(w, h)
    K = torch.tensor([[[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]], dtype=torch.float32)
    grid = unproject_meshgrid(h, w, K, normalize_points=False) if cached else None

    def run() -> Any:
        d = torch.from_numpy(depth)[None]
        pts = depth_to_3d_v2(d, K, xyz_grid=grid)
        return pts[0][d[0] > 0]

    return run


def _cv2(w: int, h: int, depth: np.ndarray, color: np.ndarray, rgb: bool) -> Callable[[], Any]:
    import cv2

    fx, fy, cx, cy = camera(w, h)
    with np.errstate(divide="ignore"):
        disp = np.where(depth > 0, fx * BASELINE_M / depth, 0.0).astype(np.float32)
    Q = np.array([[1, 0, 0, -cx], [0, fx / fy, 0, -cy * fx / fy], [0, 0, 0, fx], [0, 0, 1 / BASELINE_M, 0]])

    def run() -> Any:
        pts = cv2.reprojectImageTo3D(disp, Q)
        return pts[disp > 0]

    return run


def _o3d_legacy(w: int, h: int, depth: np.ndarray, color: np.ndarray, rgb: bool) -> Callable[[], Any]:
    import open3d as o3d

    fx, fy, cx, cy = camera(w, h)
    intr = o3d.camera.PinholeCameraIntrinsic(w, h, fx, fy, cx, cy)

    def run() -> Any:
        d = o3d.geometry.Image(depth)
        if rgb:
            rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
                o3d.geometry.Image(color), d, depth_scale=1.0, depth_trunc=1000.0, convert_rgb_to_intensity=False)
            pc = o3d.geometry.PointCloud.create_from_rgbd_image(rgbd, intr)
        else:
            pc = o3d.geometry.PointCloud.create_from_depth_image(d, intr, depth_scale=1.0, depth_trunc=1000.0)
        return np.asarray(pc.points)

    return run


def _o3d_tensor(w: int, h: int, depth: np.ndarray, color: np.ndarray, rgb: bool) -> Callable[[], Any]:
    import open3d as o3d

    fx, fy, cx, cy = camera(w, h)
    K = o3d.core.Tensor(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]), o3d.core.float64)

    def run() -> Any:
        img = o3d.t.geometry.Image(o3d.core.Tensor.from_numpy(depth))
        pc = o3d.t.geometry.PointCloud.create_from_depth_image(img, K, depth_scale=1.0, depth_max=1000.0)
        return pc.point.positions.numpy()

    return run


def _copy_bound(w: int, h: int, depth: np.ndarray, color: np.ndarray, rgb: bool) -> Callable[[], Any]:
    """One-thread copy of the bytes the job must at least move: depth in + points out (+ colours)."""
    n = int((depth > 0).sum())
    nbytes = h * w * 4 + n * 12 + ((h * w * 3 + n * 3) if rgb else 0)
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    return lambda: np.copyto(dst, src)


PEERS: dict[str, Callable[..., Callable[[], Any]]] = {
    "copy_bound": lambda *a: _copy_bound(*a, rgb=False),
    "copy_bound_rgb": lambda *a: _copy_bound(*a, rgb=True),
    "ours": lambda *a: _ours(*a, rgb=False),
    "ours_rgb": lambda *a: _ours(*a, rgb=True),
    "ours_numpy_fallback": lambda *a: _ours(*a, rgb=False),  # run with DEPTHCLOUD_NO_NUMBA=1
    "ours_generic": lambda *a: _ours(*a, rgb=False),  # run with NUMBA_CPU_NAME=generic
    "ours_rgb_generic": lambda *a: _ours(*a, rgb=True),
    "naive_numpy": lambda *a: _naive(*a, rgb=False),
    "naive_numpy_rgb": lambda *a: _naive(*a, rgb=True),
    "kornia": lambda *a: _kornia(*a, rgb=False),
    "kornia_cached_grid": lambda *a: _kornia(*a, rgb=False, cached=True),
    "cv2_reproject": lambda *a: _cv2(*a, rgb=False),
    "o3d_legacy": lambda *a: _o3d_legacy(*a, rgb=False),
    "o3d_legacy_rgb": lambda *a: _o3d_legacy(*a, rgb=True),
    "o3d_tensor": lambda *a: _o3d_tensor(*a, rgb=False),
}


def _max_err(out: Any, depth: np.ndarray, w: int, h: int) -> tuple[int, float]:
    pts = out[0] if isinstance(out, tuple) else out
    pts = np.asarray(pts.numpy() if hasattr(pts, "numpy") else pts, dtype=np.float64).reshape(-1, 3)
    ref = reference(depth, w, h)
    if len(pts) == depth.size:  # peers that keep every pixel: compare the valid ones
        pts = pts[(depth > 0).ravel()]
    if len(pts) != len(ref):
        return len(pts), float("nan")
    err = float(np.abs(pts - ref).max())
    if err > 1e-3:  # some peers emit points in another order (Open3D's tensor API): match by pixel
        fx, fy, cx, cy = camera(w, h)
        u = np.rint(pts[:, 0] / pts[:, 2] * fx + cx).astype(int)
        v = np.rint(pts[:, 1] / pts[:, 2] * fy + cy).astype(int)
        organized = np.full((h, w, 3), np.nan)
        rows, cols = np.nonzero(depth > 0)
        organized[rows, cols] = ref
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        err = float(np.abs(pts[inside] - organized[v[inside], u[inside]]).max()) if inside.all() else float("nan")
    return len(pts), err


def main(argv: list[str]) -> int:
    peer, sizes = argv[0], argv[1:]
    min_time = 1.5
    if sizes and sizes[0] == "--min-time":
        min_time, sizes = float(sizes[1]), sizes[2:]
    results: dict[str, Any] = {}
    for size in sizes:
        w, h = (int(s) for s in size.split("x"))
        depth, color = scene(w, h)
        fn = PEERS[peer](w, h, depth, color)
        n, err = (0, 0.0) if peer.startswith("copy_bound") else _max_err(fn(), depth, w, h)
        results[size] = {**timeit(fn, warmup=3, min_time_s=min_time), "points": n, "max_err_m": err}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
