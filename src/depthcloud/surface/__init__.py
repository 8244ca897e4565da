"""Surfaces from depth: normals, meshes from depth images, fusion of many frames, Poisson.

A workflow layer above ``geometry`` and ``io``: it builds :class:`TriangleMesh` values from depth
images and clouds, and reads and writes them. It must not import sources, the server or the CLI.
"""

from __future__ import annotations

from depthcloud.surface.mesh import TriangleMesh

__all__ = ["TriangleMesh"]
