"""Screened Poisson surface reconstruction of a cloud with normals, through Open3D (the ``surface`` extra).

Poisson fits one watertight surface to oriented points; where the points are sparse it invents
surface, so each vertex's density (how many points supported it) is used to trim the invented parts:
vertices below the ``density_quantile`` of all densities go, with their triangles.

A cloud without normals gets them from :func:`depthcloud.surface.normals.estimate_normals` (k-NN PCA,
oriented towards ``viewpoint``, the camera at the origin for clouds in a camera's frame), with a
``UserWarning`` saying so. This module must not import the CLI.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError, MissingDependencyError
from depthcloud.surface.mesh import TriangleMesh

__all__ = ["poisson_mesh"]


def _open3d() -> Any:
    try:
        import open3d
    except ImportError as exc:
        raise MissingDependencyError.for_extra("open3d", "surface") from exc
    return open3d


def poisson_mesh(cloud: PointCloud, *, depth: int = 9, density_quantile: float = 0.02, k: int = 20,
                 viewpoint: Any = (0.0, 0.0, 0.0)) -> TriangleMesh:
    """A watertight-then-trimmed mesh through the points of ``cloud`` (Open3D's screened Poisson).

    cloud: a PointCloud of at least 3 points; its normals are used when it has them (they must face
    out of the surface), else computed from ``k`` neighbours and turned towards ``viewpoint`` (3,)
    metres. depth: octree depth, 1–16 (9 ≈ 512 cells across the cloud; one more doubles the detail and
    about quadruples time and memory). density_quantile: vertices with a density below this quantile
    (0 ≤ q < 1) are removed. Colours are interpolated when the cloud has them; vertex normals are
    computed from the triangles. The mesh is in the cloud's frame.
    """
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    d = v.integer("depth", depth, low=1, high=16)
    q = v.number("density_quantile", density_quantile, low=0.0)
    if q >= 1.0:
        raise InputError(f"density_quantile: expected a value in [0, 1), got {q:g}")
    if len(cloud) < 3:
        raise InputError(f"cloud: Poisson needs at least 3 points, got {len(cloud)}")
    o3d = _open3d()
    if cloud.normals is None:
        from depthcloud.surface.normals import estimate_normals

        cloud = estimate_normals(cloud, k=k, viewpoint=viewpoint)
        warnings.warn(f"the cloud had no normals; normals computed from {min(k, len(cloud))} neighbours, "
                      f"oriented towards the viewpoint {tuple(float(x) for x in np.ravel(viewpoint))}",
                      UserWarning, stacklevel=2)
    normals = cloud.normals
    assert normals is not None
    length = np.linalg.norm(normals, axis=1)
    keep = np.isfinite(length) & (length > 0)
    if keep.sum() < 3:
        raise InputError("cloud: fewer than 3 points have a usable normal")
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(cloud.points[keep].astype(np.float64))
    pcd.normals = o3d.utility.Vector3dVector((normals[keep] / length[keep, None]).astype(np.float64))
    if cloud.colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(cloud.colors[keep].astype(np.float64) / 255.0)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=d)
    dens = np.asarray(densities)
    verts = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.triangles)
    if len(verts) == 0 or len(faces) == 0:
        return TriangleMesh.empty(frame=cloud.frame)
    keep_v = dens >= np.quantile(dens, q) if q > 0 else np.ones(len(verts), bool)
    keep_f = keep_v[faces].all(axis=1)
    colors = None
    if cloud.colors is not None and mesh.has_vertex_colors():
        colors = np.clip(np.rint(np.asarray(mesh.vertex_colors) * 255.0), 0, 255).astype(np.uint8)
    out = TriangleMesh(verts.astype(np.float32), faces[keep_f].astype(np.int32), colors, None, cloud.frame)
    return out.remove_unused_vertices().with_vertex_normals()
