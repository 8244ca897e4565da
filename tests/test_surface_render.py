"""surface.render: shaded mesh pictures — colours where the mesh is, background elsewhere, the same
framing as the cloud renders, lighting from the viewer's side, and both rasteriser paths agreeing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from tests import surface_scene as S

from depthcloud import InputError, depth_to_points
from depthcloud.surface import TriangleMesh, mesh_from_depth, render
from depthcloud.surface.render import render_mesh, render_mesh_views
from depthcloud.viz import render_cloud


@pytest.fixture(scope="module")
def sc() -> S.Scene:
    return S.scene()


@pytest.fixture(scope="module")
def mesh(sc) -> TriangleMesh:
    return mesh_from_depth(sc.depth_mm, sc.intr, color=sc.color)


def _hue(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the sphere's red and the plane's blue pixels (shading scales, never changes hue)."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    red = (r > 2 * g + 10) & (r > 2 * b + 10)
    blue = (b > r + 10) & (b >= g)
    return red, blue


def test_colours_where_the_mesh_is_and_background_elsewhere(mesh):
    img = render_mesh(mesh, width=320, height=240)
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    red, blue = _hue(img)
    bg = (img == 255).all(axis=2)
    assert red.sum() > 2000 and blue.sum() > 20000 and bg.sum() > 1000
    assert (red | blue | bg).mean() > 0.99
    # The sphere is drawn over the plane (z-buffer): its red disc has plane all around it.
    ys, xs = np.nonzero(red)
    cy, cx = int(ys.mean()), int(xs.mean())
    assert red[cy, cx] and blue[cy, max(xs.min() - 30, 0)] | bg[cy, max(xs.min() - 30, 0)]


def test_same_framing_as_the_cloud_render(sc, mesh):
    """A mesh and its own vertices as a cloud land on the same pixels."""
    img = render_mesh(mesh, width=320, height=240)
    pts = render_cloud(mesh.as_cloud(), width=320, height=240, point_size=1)
    drawn = ~(pts == 255).all(axis=2)
    covered = ~(img == 255).all(axis=2)
    # Vertices on the mesh's outline round to pixels whose centres may lie just outside it.
    near = cv2.dilate(covered.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert covered[drawn].mean() > 0.95 and near[drawn].mean() > 0.999  # slivers may cover no pixel centre
    del sc


def test_lambert_shading_from_the_viewer():
    # Two squares at the same distance: one facing the viewer, one turned 60° away.
    def square(angle_deg: float, x0: float) -> TriangleMesh:
        a = np.radians(angle_deg)
        corners = np.array([[0, -0.5, 0], [1, -0.5, 0], [1, 0.5, 0], [0, 0.5, 0]], float)
        rot = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
        v = corners @ rot.T + [x0, 0, 3]
        return TriangleMesh(v, [[0, 2, 1], [0, 3, 2]], colors=np.full((4, 3), 200, np.uint8))

    a, b = square(0, -1.2), square(60, 0.2)
    both = TriangleMesh(np.concatenate([a.vertices, b.vertices]), np.concatenate([a.faces, b.faces + 4]),
                        colors=np.full((8, 3), 200, np.uint8))
    img = render_mesh(both, width=200, height=100).astype(int)
    left, right = img[50, 30:70, 0], img[50, 130:170, 0]
    left, right = left[left < 255], right[right < 255]
    assert left.size and right.size and left.mean() > right.mean() + 30
    assert left.max() <= 200  # never brighter than the colour itself


def test_no_colours_uses_a_distance_map_and_frames_are_converted(mesh):
    plain = TriangleMesh(mesh.vertices, mesh.faces)
    img = render_mesh(plain, width=160, height=120)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # a colour map, shaded
    a = render_mesh(mesh, width=160, height=120)
    b = render_mesh(mesh.to_frame("zup"), width=160, height=120)
    assert (a != b).any(axis=2).mean() < 0.01


def test_views_empty_and_bad_input(mesh):
    row = render_mesh_views(mesh, ("front", "top"), width=100, height=80)
    assert row.shape[1] == 2 * 100 + 8 and row.shape[0] > 80
    blank = render_mesh(TriangleMesh.empty(), width=10, height=8, background=(1, 2, 3))
    assert (blank == [1, 2, 3]).all()
    with pytest.raises(InputError, match=r"view: expected one of front, left, right, top, got 'back'"):
        render_mesh(mesh, view="back")
    with pytest.raises(InputError, match=r"mesh: expected a TriangleMesh, got PointCloud"):
        render_mesh(depth_to_points(np.ones((2, 2), np.float32), S.INTR.resized(2, 2)))
    with pytest.raises(InputError, match=r"views: expected a non-empty list"):
        render_mesh_views(mesh, "front")


@pytest.mark.parametrize("view", ["front", "left", "top"])
def test_numpy_rasteriser_equals_compiled(mesh, monkeypatch, view):
    if not render._HAVE_NUMBA:
        pytest.skip("numba disabled")
    fast = render_mesh(mesh, view=view, width=200, height=150)
    monkeypatch.setattr(render, "_HAVE_NUMBA", False)
    slow = render_mesh(mesh, view=view, width=200, height=150)
    assert np.array_equal(fast, slow)
