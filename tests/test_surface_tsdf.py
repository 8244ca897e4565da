"""TSDF fusion: analytic scenes rendered from known poses, the sparse block volume, marching cubes
stitching across blocks, the numpy fallback, and Open3D's VoxelBlockGrid on the Redwood frames."""

from __future__ import annotations

import numpy as np
import pytest

from depthcloud.camera import Intrinsics
from depthcloud.errors import InputError
from depthcloud.frame import Frame
from depthcloud.geometry import Unprojector
from depthcloud.surface import tsdf as T
from depthcloud.surface.tsdf import BLOCK, TSDFVolume, fuse_frames

VOX = 0.01
CAM = Intrinsics(fx=300.0, fy=310.0, cx=161.3, cy=118.7, width=320, height=240)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world pose of an optical-frame camera at ``eye`` looking at ``target``."""
    eye = np.asarray(eye, float)
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(z, (0.0, 1.0, 0.0))
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, eye
    return pose


def _rays(intr: Intrinsics, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = Unprojector(intr).rays.astype(np.float64)
    d = np.concatenate([r, np.ones((*r.shape[:2], 1))], axis=-1)
    return pose[:3, 3], d @ pose[:3, :3].T  # ray(s) = C + s·D, s = camera z


def render_sphere(intr, pose, center, radius) -> np.ndarray:
    C, D = _rays(intr, pose)
    oc = C - np.asarray(center, float)
    a, b, c = (D * D).sum(-1), 2 * (D @ oc), oc @ oc - radius**2
    disc = b * b - 4 * a * c
    s = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    return np.where((disc > 0) & (s > 0), s, 0.0).astype(np.float32)


def render_plane(intr, pose, normal, offset) -> np.ndarray:
    """Depth of the plane n̂·x = offset (n̂ = normal made unit)."""
    C, D = _rays(intr, pose)
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (offset - n @ C) / (D @ n)
    return np.where(np.isfinite(s) & (s > 0), s, 0.0).astype(np.float32)


SPHERE_C, SPHERE_R = np.array([0.1, -0.05, 0.2]), 0.3
# 14 views (faces and corners of a cube around the sphere) see every part of it well.
DIRS = [d for d in np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
                            + [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)]


@pytest.fixture(scope="module")
def sphere_volume() -> TSDFVolume:
    vol = TSDFVolume(voxel_m=VOX, trunc_m=4 * VOX)
    for d in DIRS:
        pose = look_at(SPHERE_C + 1.0 * d / np.linalg.norm(d), SPHERE_C)
        vol.integrate(render_sphere(CAM, pose, SPHERE_C, SPHERE_R), CAM, pose)
    return vol


# -- accuracy on analytic scenes --------------------------------------------------------------------


def test_sphere_surface_within_a_fraction_of_a_voxel(sphere_volume):
    mesh = sphere_volume.extract_mesh()
    assert mesh.frame == "world" and len(mesh) > 10000
    err = np.abs(np.linalg.norm(mesh.vertices - SPHERE_C, axis=1) - SPHERE_R)
    # Projective distances from oblique views bias the zero crossing a little; it stays sub-voxel.
    assert err.mean() < 0.1 * VOX and np.percentile(err, 99) < 0.5 * VOX and err.max() < VOX
    assert mesh.area() == pytest.approx(4 * np.pi * SPHERE_R**2, rel=0.04)


def test_sphere_is_closed_and_faces_outwards(sphere_volume):
    """Cubes across block borders stitch: every edge has exactly two triangles, no vertex is
    repeated, the surface is a sphere topologically and every triangle faces the free space."""
    mesh = sphere_volume.extract_mesh()
    f = mesh.faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    assert np.all(count == 2)
    assert len(mesh.vertices) - len(uniq) + len(f) == 2  # Euler characteristic of a sphere
    assert len(np.unique(mesh.vertices, axis=0)) == len(mesh.vertices)
    outward = np.einsum("ij,ij->i", mesh.face_normals(), mesh.vertices[f].mean(axis=1) - SPHERE_C)
    assert np.all(outward > 0)
    # the blocks really were many: the sphere crosses block borders everywhere
    assert sphere_volume.block_count > 100


def test_tilted_plane_within_the_pixel_sampling():
    """For a plane the projective distance is linear in position, so what is left is each voxel
    taking the depth of its nearest pixel: half a pixel's footprint times the plane's slope."""
    n, off = np.array([0.2, -0.3, 1.0]), 1.2
    vol = TSDFVolume(voxel_m=VOX, trunc_m=4 * VOX)
    for eye in ((0.0, 0.0, 0.0), (0.3, 0.1, -0.2), (-0.2, 0.25, 0.1)):
        pose = look_at(eye, (0.05, 0.0, 1.2), up=(0.0, -1.0, 0.0))
        vol.integrate(render_plane(CAM, pose, n, off), CAM, pose)
    mesh = vol.extract_mesh()
    dist = np.abs(mesh.vertices.astype(np.float64) @ (n / np.linalg.norm(n)) - off)
    assert len(mesh) > 1000 and dist.max() < 0.25 * VOX and dist.mean() < 0.05 * VOX


def test_distortion_is_projected_through():
    intr = Intrinsics(fx=300.0, fy=310.0, cx=161.3, cy=118.7, width=320, height=240,
                      dist=(-0.2, 0.05, 0.001, -0.002, 0.0))
    n, off = np.array([0.0, 0.3, 1.0]), 1.0
    pose = look_at((0, 0, 0), (0, 0, 1), up=(0, -1, 0))
    depth = render_plane(intr, pose, n, off)
    unit = n / np.linalg.norm(n)

    def worst(camera):
        vol = TSDFVolume(voxel_m=VOX, trunc_m=4 * VOX)
        vol.integrate(depth, camera, pose)
        v = vol.extract_mesh().vertices.astype(np.float64)
        return np.abs(v @ unit - off).max()

    assert worst(intr) < 0.1 * VOX
    assert worst(intr.undistorted()) > 0.5 * VOX  # ignoring the lens would bend the plane


def test_unsupported_distortion_model_is_refused():
    fish = Intrinsics(fx=300.0, fy=310.0, cx=161.3, cy=118.7, width=320, height=240, dist=(0.1, 0, 0, 0),
                      model="fisheye")
    with pytest.raises(InputError, match="undistort the frames first"):
        TSDFVolume().integrate(np.ones((240, 320), np.float32), fish, np.eye(4))


# -- sparse allocation ------------------------------------------------------------------------------


def _wall_blocks(width_m: float) -> tuple[int, float]:
    """Blocks allocated for a wall 1.5 m away seen by cameras side by side covering ``width_m``."""
    vol = TSDFVolume(voxel_m=VOX, trunc_m=4 * VOX)
    area = 0.0
    span = 1.5 * CAM.width / CAM.fx  # metres of wall one camera sees across
    for k in range(round(width_m / span)):
        x = k * span
        pose = look_at((x, 0.0, 0.0), (x, 0.0, 1.5), up=(0, -1, 0))
        vol.integrate(render_plane(CAM, pose, (0, 0, 1), 1.5), CAM, pose)
        area += span * 1.5 * CAM.height / CAM.fy
    return vol.block_count, area


def test_blocks_grow_with_the_observed_surface_not_its_bounding_box():
    n1, a1 = _wall_blocks(1.6)
    n2, a2 = _wall_blocks(3.2)
    assert a2 == pytest.approx(2 * a1)
    assert n2 / n1 == pytest.approx(a2 / a1, rel=0.1)
    face = (BLOCK * VOX) ** 2
    # a wall crosses at most 2 layers of blocks: the band (2·trunc = one block) straddles a border
    assert n2 <= 2.3 * a2 / face
    # a dense grid over the bounding box of the cameras and the wall would be far bigger
    dense = (3.2 / (BLOCK * VOX)) * (1.2 / (BLOCK * VOX)) * (1.6 / (BLOCK * VOX))
    assert n2 < dense / 5
    vol = TSDFVolume()
    assert vol.block_count == 0 and vol.nbytes == 0


def test_blocks_only_near_the_surface(sphere_volume):
    centres = (sphere_volume.block_coords() + 0.5) * BLOCK * VOX
    dist = np.abs(np.linalg.norm(centres - SPHERE_C, axis=1) - SPHERE_R)
    half_diag = np.sqrt(3) / 2 * BLOCK * VOX
    assert dist.max() <= 4 * VOX * np.sqrt(3) + half_diag  # the band, widened by oblique rays


# -- colour, weights, order, fallback --------------------------------------------------------------


def _plane_frames(colors):
    n, off = np.array([0.0, 0.0, 1.0]), 1.0
    out = []
    for k, col in enumerate(colors):
        pose = look_at((0.05 * k, 0.0, 0.0), (0.05 * k, 0.0, 1.0), up=(0, -1, 0))
        rgb = None if col is None else np.broadcast_to(np.array(col, np.uint8), (*CAM.shape, 3)).copy()
        out.append((Frame(render_plane(CAM, pose, n, off), CAM, rgb), pose))
    return out


def test_colours_are_weighted_means_of_the_frames():
    mesh = fuse_frames(_plane_frames([(200, 100, 50), (100, 50, 250)]))
    both = np.all(np.abs(mesh.colors.astype(int) - (150, 75, 150)) <= 1, axis=1)
    one = np.all(mesh.colors == (200, 100, 50), axis=1)  # the strip only the first camera saw
    assert both.mean() > 0.8 and np.all(both | one | _interp(mesh))


def _interp(mesh):
    """Vertices between a twice-seen and a once-seen voxel carry a blend of the two."""
    return np.all((mesh.colors >= (100, 50, 50)) & (mesh.colors <= (200, 100, 250)), axis=1)


def test_min_weight_keeps_only_surface_seen_often_enough():
    frames = _plane_frames([(10, 20, 30)] * 2)
    vol = TSDFVolume()
    for f, p in frames:
        vol.integrate_frame(f, p)
    once, twice = vol.extract_mesh(min_weight=1), vol.extract_mesh(min_weight=2)
    assert 0 < twice.area() < once.area()
    assert vol.extract_mesh(min_weight=3).is_empty


def test_mesh_does_not_depend_on_frame_order():
    frames = _plane_frames([(200, 0, 0), (0, 200, 0), (0, 0, 200)])
    a, b = fuse_frames(frames), fuse_frames(frames[::-1])
    assert a.faces.shape == b.faces.shape
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)


def test_numpy_fallback_gives_the_same_volume_and_mesh():
    if not T.HAVE_NUMBA:
        pytest.skip("numba not available")
    vols = []
    for jit in (True, False):
        vol = TSDFVolume(voxel_m=0.02, trunc_m=0.06)
        for d in DIRS[:8]:
            pose = look_at(SPHERE_C + 1.0 * d, SPHERE_C)
            rgb = np.full((*CAM.shape, 3), (40 + 20 * len(vols), 90, 200), np.uint8)
            vol.integrate(render_sphere(CAM, pose, SPHERE_C, SPHERE_R), CAM, pose, color=rgb, use_numba=jit)
        vols.append((vol, vol.extract_mesh(use_numba=jit)))
    (va, ma), (vb, mb) = vols
    assert va.block_count == vb.block_count
    assert np.array_equal(va._tsdf[: va.block_count], vb._tsdf[: vb.block_count])
    assert np.array_equal(ma.vertices, mb.vertices) and np.array_equal(ma.faces, mb.faces)
    # and the two extractors agree on the same volume
    assert np.array_equal(va.extract_mesh(use_numba=False).faces, ma.faces)


# -- bad input --------------------------------------------------------------------------------------


def test_empty_volume_gives_an_empty_mesh():
    vol = TSDFVolume(max_depth_m=1.0)
    assert vol.integrate(np.full(CAM.shape, 2.0, np.float32), CAM, np.eye(4)) == 0
    assert vol.block_count == 0 and vol.extract_mesh().is_empty


@pytest.mark.parametrize(("pose", "match"), [
    (np.diag([1.0, 1.0, 2.0, 1.0]), "not a rotation"),
    (np.diag([1.0, 1.0, -1.0, 1.0]), "not a rotation"),
    (np.eye(3), r"expected shape \(4, 4\)"),
    (np.full((4, 4), np.nan), "NaN"),
])
def test_bad_poses_are_refused(pose, match):
    with pytest.raises(InputError, match=match):
        TSDFVolume().integrate(np.ones(CAM.shape, np.float32), CAM, pose)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"voxel_m": 0.0}, "voxel_m"),
    ({"voxel_m": 0.02, "trunc_m": 0.01}, "at least one voxel"),
    ({"min_depth_m": 2.0, "max_depth_m": 1.0}, "more than min_depth_m"),
])
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        TSDFVolume(**kwargs)


def test_colour_in_some_frames_only_is_refused():
    frames = _plane_frames([(1, 2, 3), None])
    vol = TSDFVolume()
    vol.integrate_frame(*frames[0])
    with pytest.raises(InputError, match="give colour for all frames or none"):
        vol.integrate_frame(*frames[1])


# -- marching-cubes table ---------------------------------------------------------------------------


def test_triangle_table_is_complementary_and_bounded():
    """Flipping every sign flips every triangle (same edges, opposite winding) except on faces with
    two diagonal inside corners, where the rule cuts off the other pair; no case needs more than 5."""
    table, count = T._TRI_TABLE, T._TRI_COUNT
    assert count[0] == count[255] == 0 and count.max() == 5
    for case in range(256):
        edges = set(table[case][table[case] >= 0].tolist())
        crossed = {e for e in range(12)
                   if ((case >> T._EDGE_CORNER[e]) & 1) != ((case >> (T._EDGE_CORNER[e] | (1 << T._EDGE_AXIS[e]))) & 1)}
        assert edges == crossed  # every crossed edge has a vertex, no other


# -- Open3D's VoxelBlockGrid on real frames ------------------------------------------------------------


def _distances(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances from each point of a to b, and from each of b to a."""
    from scipy.spatial import cKDTree

    return cKDTree(b).query(a)[0], cKDTree(a).query(b)[0]


def test_matches_open3d_voxel_block_grid_on_redwood_frames(data_dir):
    """Acceptance: the 5 living-room frames fused at 1 cm / 4 cm agree with Open3D's tensor
    VoxelBlockGrid: Chamfer ≤ half a voxel, F-score at one voxel ≥ 0.95 both ways."""
    o3d = pytest.importorskip("open3d")
    from depthcloud.surface.datasets import load_camera, open_rgbd, read_trajectory

    root = data_dir / "rgbd_open3d_testdata"
    if not (root / "RGBD" / "trajectory.log").is_file():
        pytest.skip("rgbd_open3d_testdata/RGBD not found")
    cam = load_camera(root / "camera_primesense.json")
    frames = open_rgbd(root / "RGBD", camera=cam)
    poses = read_trajectory(root / "RGBD" / "trajectory.log").for_frames(len(frames))
    ours = fuse_frames(zip(frames, poses, strict=True), voxel_m=VOX, trunc_m=4 * VOX, max_depth_m=3.0)

    c = o3d.core
    K = c.Tensor(cam.K)
    vbg = o3d.t.geometry.VoxelBlockGrid(("tsdf", "weight", "color"), (c.float32, c.float32, c.float32),
                                        ((1), (1), (3)), VOX, 16, 2000, c.Device("CPU:0"))
    for k in range(len(frames)):
        depth = o3d.t.io.read_image(str(root / "RGBD" / "depth" / f"{k:05d}.png"))
        color = o3d.t.io.read_image(str(root / "RGBD" / "color" / f"{k:05d}.jpg"))
        ext = c.Tensor(np.linalg.inv(poses[k]))
        blocks = vbg.compute_unique_block_coordinates(depth, K, ext, 1000.0, 3.0, 4.0)
        vbg.integrate(blocks, depth, color, K, K, ext, 1000.0, 3.0, 4.0)
    theirs = np.asarray(vbg.extract_triangle_mesh(weight_threshold=0.0).to_legacy().vertices)

    assert len(ours.vertices) == pytest.approx(len(theirs), rel=0.05)
    ours_to_theirs, theirs_to_ours = _distances(ours.vertices.astype(np.float64), theirs)
    assert ours_to_theirs.mean() <= 0.5 * VOX and theirs_to_ours.mean() <= 0.5 * VOX  # Chamfer, each way
    precision, recall = (ours_to_theirs < VOX).mean(), (theirs_to_ours < VOX).mean()
    assert precision >= 0.95 and recall >= 0.95 and 2 * precision * recall / (precision + recall) >= 0.95
    assert ours.colors is not None and ours.colors.std() > 10  # the room's colours came through


def test_without_numba_in_a_subprocess(tmp_path):
    """DEPTHCLOUD_NO_NUMBA=1: the module imports without numba and fuses to the same mesh."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pose = look_at(SPHERE_C + np.array([0.0, 1.0, 0.0]), SPHERE_C)
    depth = render_sphere(CAM, pose, SPHERE_C, SPHERE_R)
    np.save(tmp_path / "d.npy", depth)
    np.save(tmp_path / "p.npy", pose)
    code = (
        "import sys, numpy as np\n"
        "from depthcloud.surface import tsdf\n"
        "from depthcloud.camera import Intrinsics\n"
        f"cam = Intrinsics({CAM.fx}, {CAM.fy}, {CAM.cx}, {CAM.cy}, {CAM.width}, {CAM.height})\n"
        "vol = tsdf.TSDFVolume()\n"
        "vol.integrate(np.load(sys.argv[1]), cam, np.load(sys.argv[2]))\n"
        "np.save(sys.argv[3], vol.extract_mesh().vertices); print(tsdf.HAVE_NUMBA)\n"
    )
    env = {**os.environ, "DEPTHCLOUD_NO_NUMBA": "1"}
    out = subprocess.run([sys.executable, "-c", code, *(str(tmp_path / f) for f in ("d.npy", "p.npy", "v.npy"))],
                         capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1], timeout=300,
                         check=True)
    assert out.stdout.strip() == "False"
    vol = TSDFVolume()
    vol.integrate(depth, CAM, pose)
    assert np.array_equal(np.load(tmp_path / "v.npy"), vol.extract_mesh().vertices)
