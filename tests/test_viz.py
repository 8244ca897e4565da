"""viz: colour maps, colour bars, figures and cloud renders, checked against OpenCV and geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthcloud import InputError, OutputExistsError, PointCloud, viz


def _cv_rgb(index: int, code: int = cv2.COLORMAP_TURBO) -> list[int]:
    bgr = cv2.applyColorMap(np.array([[index]], np.uint8), code)[0, 0]
    return [int(bgr[2]), int(bgr[1]), int(bgr[0])]


# -- colorize ---------------------------------------------------------------------------------------

def test_colorize_known_values_match_opencv_turbo_in_rgb():
    vals = np.array([[1.0, 2.0, 3.0]], np.float32)
    out = viz.colorize(vals, vmin=1.0, vmax=3.0)
    assert out.shape == (1, 3, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == _cv_rgb(0)
    assert out[0, 1].tolist() == _cv_rgb(128)
    assert out[0, 2].tolist() == _cv_rgb(255)


def test_colorize_is_rgb_not_bgr():
    # turbo's high end is dark red: R dominant, B small
    top = viz.colorize(np.array([[5.0]]), vmin=0.0, vmax=5.0)[0, 0]
    assert top[0] > 100 and top[2] < 30


def test_colorize_clips_outside_range_and_other_cmaps():
    out = viz.colorize(np.array([[-10.0, 100.0]]), vmin=0.0, vmax=1.0, cmap="viridis")
    assert out[0, 0].tolist() == _cv_rgb(0, cv2.COLORMAP_VIRIDIS)
    assert out[0, 1].tolist() == _cv_rgb(255, cv2.COLORMAP_VIRIDIS)
    grey = viz.colorize(np.array([[0.5, 1.0]]), vmin=0.0, vmax=1.0, cmap="gray")
    assert grey[0, 0].tolist() == [128, 128, 128] and grey[0, 1].tolist() == [255, 255, 255]


def test_colorize_invalid_pixels_get_invalid_color():
    vals = np.array([[0.0, np.nan, np.inf, -np.inf, 2.0]], np.float32)
    out = viz.colorize(vals, vmin=1.0, vmax=3.0, invalid_color=(7, 8, 9))
    assert out[0, :4].tolist() == [[7, 8, 9]] * 4
    assert out[0, 4].tolist() == _cv_rgb(128)


def test_colorize_default_range_is_robust_percentiles(rng):
    vals = rng.uniform(1.0, 2.0, size=(50, 40)).astype(np.float32)
    vals[0, 0] = 1000.0  # one outlier must not squash the map
    lo, hi = viz.value_range(vals)
    good = vals.ravel()
    assert lo == pytest.approx(np.percentile(good, 1)) and hi == pytest.approx(np.percentile(good, 99))
    assert hi < 3.0
    assert np.array_equal(viz.colorize(vals), viz.colorize(vals, vmin=lo, vmax=hi))


def test_colorize_integer_and_degenerate_inputs():
    d16 = np.array([[0, 1000, 2000]], np.uint16)
    out = viz.colorize(d16, vmin=1000, vmax=2000)
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 2].tolist() == _cv_rgb(255)
    assert viz.colorize(np.array([[2.0]])).shape == (1, 1, 3)  # 1x1, constant range
    assert (viz.colorize(np.zeros((3, 4))) == 0).all()  # nothing valid
    assert viz.colorize(np.ones((1, 7))).shape == (1, 7, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": np.zeros((2, 2, 2))}, r"values: expected shape \(H, W\), got \(2, 2, 2\)"),
        ({"values": np.zeros((0, 3))}, "values: expected a non-empty array"),
        ({"values": np.ones((2, 2)), "cmap": "nope"}, "cmap: expected one of .*turbo"),
        ({"values": np.ones((2, 2)), "vmin": 3.0, "vmax": 1.0}, "vmin 3.0 exceeds vmax 1.0"),
        ({"values": np.ones((2, 2)), "invalid_color": (0, 0)}, r"invalid_color: expected shape \(R, G, B\)"),
        ({"values": np.ones((2, 2)), "invalid_color": (0, 0, 300)}, "invalid_color: expected three values in 0..255"),
        ({"values": np.array([["a"]])}, "values: expected a float or integer .* array, got dtype <U1"),
    ],
)
def test_colorize_bad_input(kwargs, match):
    values = kwargs.pop("values")
    with pytest.raises(InputError, match=match):
        viz.colorize(values, **kwargs)


# -- colorbar, with_colorbar, side_by_side ----------------------------------------------------------

def test_colorbar_shape_and_ends():
    bar = viz.colorbar(200, vmin=0.0, vmax=10.0, cmap="turbo", label="m", width=90)
    assert bar.shape == (200, 90, 3) and bar.dtype == np.uint8
    col = bar[:, 6]  # inside the bar
    top_row = 18
    assert col[top_row].tolist() == _cv_rgb(255)
    assert col[200 - 7].tolist() == _cv_rgb(0)
    with pytest.raises(InputError, match=r"height: expected an integer in 16..inf, got 3"):
        viz.colorbar(3, vmin=0, vmax=1)
    with pytest.raises(InputError, match=r"vmin 2.0 exceeds vmax 1.0"):
        viz.colorbar(50, vmin=2, vmax=1)


def test_with_colorbar_appends_a_bar_of_the_same_height():
    img = viz.colorize(np.arange(1, 101, dtype=np.float32).reshape(20, 5), vmin=1, vmax=100)
    out = viz.with_colorbar(img, vmin=1, vmax=100, width=60)
    assert out.shape == (20, 65, 3)
    assert np.array_equal(out[:, :5], img)
    tiny = viz.with_colorbar(img[:2], vmin=1, vmax=100, width=60)
    assert tiny.shape == (16, 65, 3)


def test_side_by_side_mixed_grey_rgb_and_heights():
    grey = np.full((10, 4), 50, np.uint8)
    rgb = np.zeros((6, 3, 3), np.uint8)
    rgb[..., 0] = 200
    out = viz.side_by_side([grey, rgb], gap=2, background=(1, 2, 3))
    assert out.shape == (10, 9, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [50, 50, 50]
    assert out[0, 4].tolist() == [1, 2, 3]  # the gap
    assert out[0, 6].tolist() == [200, 0, 0]
    assert out[8, 6].tolist() == [1, 2, 3]  # padding under the shorter image
    labelled = viz.side_by_side([grey, rgb], labels=["a", "b"])
    assert labelled.shape[0] > 10 and labelled.shape[1] == 4 + 8 + 3


def test_side_by_side_bad_input():
    with pytest.raises(InputError, match=r"images: expected a non-empty list"):
        viz.side_by_side([])
    with pytest.raises(InputError, match=r"labels: expected 2 captions"):
        viz.side_by_side([np.zeros((2, 2), np.uint8)] * 2, labels=["one"])
    with pytest.raises(InputError, match=r"images\[1\]: expected dtype uint8, got uint16"):
        viz.side_by_side([np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint16)])
    with pytest.raises(InputError, match=r"images\[0\]: expected shape \(H, W\) or \(H, W, 3\)"):
        viz.side_by_side([np.zeros(5, np.uint8)])


# -- render_cloud ---------------------------------------------------------------------------------

def test_single_red_point_renders_red_at_the_centre():
    cloud = PointCloud(np.array([[0.1, -0.2, 2.0]], np.float32), np.array([[255, 0, 0]], np.uint8))
    for view in viz.VIEWS:
        img = viz.render_cloud(cloud, view=view, width=64, height=48, point_size=3)
        assert img.shape == (48, 64, 3) and img.dtype == np.uint8
        cy, cx = (48 - 1) // 2, (64 - 1) // 2
        assert img[cy:cy + 2, cx:cx + 2].reshape(-1, 3).tolist().count([255, 0, 0]) >= 1
        assert (img.reshape(-1, 3) == [255, 255, 255]).all(axis=1).sum() == 48 * 64 - 9


def _symmetric_scene() -> PointCloud:
    # Mirror-symmetric about x = 0: a red post on the left, a blue one on the right, both at z = 2,
    # plus a green wall at z = 3 spanning x in [-1, 1].
    xs = np.linspace(-1, 1, 41)
    ys = np.linspace(-0.5, 0.5, 21)
    wall = np.array([[x, y, 3.0] for x in xs for y in ys])
    post = np.array([[0.0, y, 2.0] for y in ys])
    left, right = post + np.array([-0.6, 0, 0]), post + np.array([0.6, 0, 0])
    pts = np.concatenate([wall, left, right]).astype(np.float32)
    cols = np.concatenate([
        np.tile([0, 200, 0], (len(wall), 1)), np.tile([255, 0, 0], (len(left), 1)),
        np.tile([0, 0, 255], (len(right), 1)),
    ]).astype(np.uint8)
    return PointCloud(pts, cols)


def test_left_and_right_views_mirror_each_other():
    cloud = _symmetric_scene()
    # swap the post colours in the mirrored scene so the mirror is exact
    sym = PointCloud(cloud.points * np.array([-1, 1, 1], np.float32), cloud.colors)
    left = viz.render_cloud(cloud, view="left", width=81, height=61, point_size=3)
    right = viz.render_cloud(sym, view="right", width=81, height=61, point_size=3)
    assert np.array_equal(left, right[:, ::-1])
    # and the front view puts the red post (x < 0) on the left half of the image
    front = viz.render_cloud(cloud, view="front", width=81, height=61, point_size=2)
    red_cols = np.nonzero((front == [255, 0, 0]).all(axis=2))[1]
    blue_cols = np.nonzero((front == [0, 0, 255]).all(axis=2))[1]
    assert red_cols.max() < 40 < blue_cols.min()


def test_views_show_the_sides_the_names_say():
    cloud = _symmetric_scene()
    left = viz.render_cloud(cloud, view="left", width=81, height=61)
    # standing at the scene's left and facing +x, the wall (far, +z) is on the left, the posts
    # (z = 2) right of it; the red post (x = -0.6) is nearer than the blue one, so it looks taller
    green_cols = np.nonzero((left == [0, 200, 0]).all(axis=2))[1]
    red_rows, red_cols = np.nonzero((left == [255, 0, 0]).all(axis=2))
    blue_rows, blue_cols = np.nonzero((left == [0, 0, 255]).all(axis=2))
    assert green_cols.max() < 40 < min(red_cols.min(), blue_cols.min())
    assert np.ptp(red_rows) > np.ptp(blue_rows)
    top = viz.render_cloud(cloud, view="top", width=81, height=61)
    green_rows = np.nonzero((top == [0, 200, 0]).all(axis=2))[0]
    red_rows = np.nonzero((top == [255, 0, 0]).all(axis=2))[0]
    assert green_rows.max() < red_rows.min()  # forward is up in the top view


def test_nearest_point_wins_the_pixel():
    pts = np.array([[0, 0, 2.0], [0, 0, 1.0], [0, 0, 3.0]], np.float32)  # same ray from the front
    cols = np.array([[0, 255, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    for perm in ([0, 1, 2], [1, 2, 0], [2, 0, 1]):
        img = viz.render_cloud(PointCloud(pts[perm], cols[perm]), view="front", width=21, height=21)
        assert img[10, 10].tolist() == [255, 0, 0]


def test_render_other_frames_uncoloured_and_empty():
    cloud = _symmetric_scene()
    zup = cloud.to_frame("zup")
    assert np.array_equal(viz.render_cloud(zup, view="left"), viz.render_cloud(cloud, view="left"))
    plain = viz.render_cloud(PointCloud(cloud.points), width=40, height=30)
    assert (plain != 255).any()
    empty = viz.render_cloud(PointCloud(np.zeros((0, 3), np.float32)), width=8, height=4, background=(9, 9, 9))
    assert (empty == 9).all()


def test_render_bad_input():
    cloud = _symmetric_scene()
    with pytest.raises(InputError, match=r"view: expected one of front, left, right, top, got 'back'"):
        viz.render_cloud(cloud, view="back")
    with pytest.raises(InputError, match=r"cloud: expected a PointCloud, got ndarray"):
        viz.render_cloud(cloud.points)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"width: expected an integer in 1..inf, got 0"):
        viz.render_cloud(cloud, width=0)
    with pytest.raises(InputError, match=r"views: expected a non-empty list"):
        viz.render_views(cloud, views="front")


def test_render_views_is_one_captioned_row():
    out = viz.render_views(_symmetric_scene(), width=50, height=40)
    assert out.shape[1] == 3 * 50 + 2 * 8 and out.shape[0] > 40
    bare = viz.render_views(_symmetric_scene(), ("front", "top"), width=50, height=40, labels=False)
    assert bare.shape == (40, 108, 3)


# -- save_png ---------------------------------------------------------------------------------------

def test_save_png_writes_rgb_and_refuses_to_overwrite(tmp_path):
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 255  # pure red in RGB
    path = viz.save_png(tmp_path / "sub" / "red.png", img)
    back = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert back.shape == (4, 5, 3) and back[0, 0].tolist() == [0, 0, 255]  # BGR on disk = red
    with pytest.raises(OutputExistsError, match=r"red.png: exists; pass --overwrite"):
        viz.save_png(path, img)
    viz.save_png(path, np.zeros((4, 5), np.uint8), overwrite=True)
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(InputError, match=r"out.jpg: expected a .png path"):
        viz.save_png(tmp_path / "out.jpg", img)
    with pytest.raises(InputError, match=r"rgb: expected a unsigned integer or bool array, got dtype float64"):
        viz.save_png(tmp_path / "f.png", np.zeros((2, 2, 3)))


@pytest.mark.parametrize("ps", [1, 2, 3])
def test_compiled_splat_equals_numpy_splat(rng, ps):
    if not viz._HAVE_NUMBA:
        pytest.skip("numba disabled")
    n = 2000
    u = rng.integers(-3, 43, n)
    v = rng.integers(-3, 33, n)
    z = rng.integers(1, 5, n).astype(np.float64)  # many ties: the earlier point must win both ways
    cols = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    a = np.zeros((30, 40, 3), np.uint8)
    b = np.zeros((30, 40, 3), np.uint8)
    viz._splat_numba(u, v, z, cols, ps, a)
    viz._splat_numpy(u, v, z, cols, ps, b)
    assert np.array_equal(a, b)
