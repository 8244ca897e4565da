"""Surfaces from depth: normals, meshes from depth images, fusion of many frames, Poisson.

A workflow layer above ``geometry`` and ``io``: it builds :class:`TriangleMesh` values from depth
images and clouds, and reads and writes them. It must not import sources, the server or the CLI.
"""

from __future__ import annotations

from depthcloud.surface.gridmesh import mesh_from_depth, stereo_mesh
from depthcloud.surface.mesh import TriangleMesh
from depthcloud.surface.meshio import read_mesh, write_mesh
from depthcloud.surface.normals import cloud_with_normals, depth_normals, estimate_normals

__all__ = [
    "TriangleMesh",
    "cloud_with_normals",
    "depth_normals",
    "estimate_normals",
    "mesh_from_depth",
    "read_mesh",
    "stereo_mesh",
    "write_mesh",
]
