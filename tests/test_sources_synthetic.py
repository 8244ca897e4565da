"""The synthetic scene: exact depth against independent ray/primitive maths, textures, the source."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from depthcloud.camera import Intrinsics
from depthcloud.errors import ConfigError, InputError
from depthcloud.geometry import Unprojector
from depthcloud.sources import open_source
from depthcloud.sources.synthetic import (
    Box,
    Plane,
    Scene,
    Sphere,
    SyntheticSource,
    default_intrinsics,
    default_scene,
    render_scene,
)


def _ray(intr: Intrinsics, u: float, r: float) -> np.ndarray:
    return np.array([(u - intr.cx) / intr.fx, (r - intr.cy) / intr.fy, 1.0])


def test_smoke_shapes_dtypes(asym_intrinsics: Intrinsics) -> None:
    depth, color = render_scene(asym_intrinsics, 0.3)
    assert depth.shape == (48, 64) and depth.dtype == np.float32
    assert color.shape == (48, 64, 3) and color.dtype == np.uint8
    assert (depth > 0).all()  # the default scene has a back wall: every ray hits something


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1)])
def test_degenerate_sizes(size: tuple[int, int]) -> None:
    w, h = size
    depth, color = render_scene(Intrinsics(50.0, 50.0, 0.0, 0.0, w, h), 0.0)
    assert depth.shape == (h, w) and color.shape == (h, w, 3)


def test_plane_depth_is_exact_with_asymmetric_camera(asym_intrinsics: Intrinsics) -> None:
    # A tilted plane n·X = c: depth along ray (x̂, ŷ, 1) is c / (n·ray), computed here independently.
    n = np.array([0.1, -0.3, 1.0])
    scene = Scene((Plane(tuple(n), 3.0),))
    depth, _ = render_scene(asym_intrinsics, 0.0, scene=scene)
    nn = n / np.linalg.norm(n)
    for u, r in [(0, 0), (63, 0), (0, 47), (31, 20), (63, 47)]:
        expect = 3.0 / float(nn @ _ray(asym_intrinsics, u, r))
        assert depth[r, u] == pytest.approx(expect, rel=1e-6)


def test_unprojected_points_lie_on_the_surfaces() -> None:
    intr = Intrinsics(300.0, 280.0, 150.5, 90.25, 320, 200)
    sphere = Sphere((0.2, -0.1, 2.0), 0.5)
    box = Box((-0.6, 0.3, 2.5), (0.4, 0.3, 0.5))
    scene = Scene((sphere, box))
    depth, _ = render_scene(intr, 0.0, scene=scene)
    pts = Unprojector(intr).organized(depth)
    on_sphere = np.abs(np.linalg.norm(pts - np.array(sphere.center_m), axis=-1) - 0.5) < 1e-5
    lo = np.array(box.center_m) - np.array(box.size_m) / 2 - 1e-5
    hi = np.array(box.center_m) + np.array(box.size_m) / 2 + 1e-5
    in_box = ((pts >= lo) & (pts <= hi)).all(axis=-1)
    valid = depth > 0
    assert valid.sum() > 1000
    assert (on_sphere | in_box)[valid].all()
    assert on_sphere.sum() > 500 and in_box.sum() > 500
    # Outside both objects nothing is hit: 0, never a sentinel.
    assert (depth[~valid] == 0).all() and (~valid).sum() > 1000


def test_box_front_face_and_sphere_front_depth() -> None:
    intr = Intrinsics(400.0, 400.0, 99.5, 79.5, 200, 160)
    scene = Scene((Box((0.0, 0.0, 2.0), (0.4, 0.4, 0.4)),))
    depth, _ = render_scene(intr, 0.0, scene=scene)
    assert depth[80, 100] == np.float32(1.8)
    scene = Scene((Sphere((0.0, 0.0, 3.0), 1.0),))
    depth, _ = render_scene(intr, 0.0, scene=scene)
    assert depth[80, 100] == pytest.approx(2.0, abs=1e-4)  # ray through pixel ~centre
    # The sphere spans asin(1/3) = 19.5° around the axis: the corner ray (17.7°) hits, a wider one misses.
    assert depth[0, 0] > 0
    depth, _ = render_scene(Intrinsics(200.0, 200.0, 99.5, 79.5, 200, 160), 0.0, scene=scene)
    assert depth[0, 0] == 0.0


def test_default_scene_moves_and_static_parts_do_not() -> None:
    intr = default_intrinsics(160, 96)
    d0, c0 = render_scene(intr, 0.0)
    d1, _ = render_scene(intr, 1.0)
    changed = d0 != d1
    assert changed.any()
    assert d0[0, 0] == d1[0, 0] == np.float32(5.0)  # top-left corner: the back wall 5 m ahead
    # The same t renders the same frame (the cache does not leak state between calls).
    d0b, c0b = render_scene(intr, 0.0)
    assert np.array_equal(d0, d0b) and np.array_equal(c0, c0b)


def test_moving_render_matches_a_full_static_render_of_the_scene_at_t() -> None:
    # The per-rectangle fast path must equal ray-casting everything (scene.at(t), all static).
    intr = default_intrinsics(212, 120)
    scene = default_scene()
    for t in (0.0, 0.7, 2.9):
        fast = render_scene(intr, t, scene=scene)
        full = render_scene(intr, 0.0, scene=scene.at(t))
        assert np.array_equal(fast[0], full[0]) and np.array_equal(fast[1], full[1])


def test_color_is_textured() -> None:
    _, color = render_scene(default_intrinsics(320, 240), 0.0)
    grey = color.astype(np.float32).mean(axis=2)
    assert np.abs(np.diff(grey, axis=1)).mean() > 3.0  # stereo needs texture, not flat fills


def test_distorted_intrinsics_cast_undistorted_rays() -> None:
    intr = Intrinsics(200.0, 210.0, 80.0, 61.0, 160, 120, dist=(-0.2, 0.05, 0.001, 0.0, 0.0))
    depth, _ = render_scene(intr, 0.0, scene=Scene((Plane((0.0, 0.0, 1.0), 2.5),)))
    assert np.allclose(depth, 2.5)


def test_invalid_input() -> None:
    with pytest.raises(InputError, match="intrinsics: expected Intrinsics"):
        render_scene(np.eye(3), 0.0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="t: expected a finite number"):
        render_scene(default_intrinsics(8, 8), float("nan"))
    with pytest.raises(InputError, match=r"sphere\.radius_m: expected a positive number"):
        Sphere((0, 0, 1), 0.0)
    with pytest.raises(InputError, match=r"box\.size_m: expected positive sizes"):
        Box((0, 0, 1), (1, 0, 1))
    with pytest.raises(InputError, match=r"plane\.normal: expected a non-zero vector"):
        Plane((0, 0, 0), 1.0)
    with pytest.raises(InputError, match=r"scene.primitives\[0\]"):
        Scene(("wall",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("synthetic:640x", "expected 'synthetic"),
        ("synthetic:0x480", "at least 1x1"),
        ("synthetic:64x48@0", "fps must be in"),
        ("nosuch:1", "unknown scheme 'nosuch'.*synthetic\\[:WxH\\[@FPS\\]\\]"),
        ("", "expected 'SCHEME"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_source(spec)


async def test_source_streams_frames_in_order_with_stamps() -> None:
    src = open_source("synthetic:64x48@200", realtime=False, frames=5)
    assert isinstance(src, SyntheticSource) and src.name == "synthetic:64x48@200"
    seqs = []
    async with src:
        async for frame in src:
            seqs.append(frame.seq)
            assert frame.stamp == pytest.approx(frame.seq / 200)
            expect, _ = render_scene(src.intrinsics, frame.stamp)
            assert np.array_equal(frame.depth, expect)
            await asyncio.sleep(0.01)
    assert seqs[-1] == 4 and seqs == sorted(seqs)
    assert src.stats.state == "stopped" and src.stats.frames == 5


async def test_realtime_source_keeps_its_rate() -> None:
    async with open_source("synthetic:32x24@100") as src:
        frames = [await src.next_frame(timeout_s=2.0) for _ in range(10)]
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    assert frames[-1].stamp - frames[0].stamp == pytest.approx((frames[-1].seq - frames[0].seq) / 100)


def test_compiled_and_numpy_renders_are_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    import depthcloud.sources.synthetic as syn

    if not syn.HAVE_NUMBA:
        pytest.skip("numba is not available")
    intr = Intrinsics(140.0, 150.0, 70.3, 44.8, 160, 96)
    scene = Scene((*default_scene().primitives, Plane((0.3, -0.2, 1.0), 3.0), Box((0.0, 0.0, 0.5), (3.0, 3.0, 3.0))))
    compiled = [render_scene(intr, t, scene=scene) for t in (0.0, 1.3)]
    compiled.append(render_scene(intr, 0.0, scene=Scene((Box((0.0, 0.0, 0.5), (3.0, 3.0, 3.0)),))))  # inside a box
    monkeypatch.setattr(syn, "HAVE_NUMBA", False)
    syn._renderer.cache_clear()
    try:
        plain = [render_scene(intr, t, scene=scene) for t in (0.0, 1.3)]
        plain.append(render_scene(intr, 0.0, scene=Scene((Box((0.0, 0.0, 0.5), (3.0, 3.0, 3.0)),))))
    finally:
        syn._renderer.cache_clear()
    for (d1, c1), (d2, c2) in zip(compiled, plain, strict=True):
        assert d1.tobytes() == d2.tobytes() and np.array_equal(c1, c2)
