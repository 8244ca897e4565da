"""TriangleMesh: vertices, triangles, optional colours and normals per vertex, in a named frame.

vertices (N, 3) float32 metres; faces (M, 3) int32 vertex indices, counter-clockwise seen from the
side the surface faces; colors (N, 3) uint8 RGB; normals (N, 3) float32 unit vectors. Frames are
those of :mod:`depthcloud.cloud` (``optical``, ``zup``, ``opengl``, or a user label after a custom
``transform``). A mesh is a value: operations return new meshes and never modify their input.

This module must not read or write files (see :mod:`depthcloud.surface.meshio`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud._jit import HAVE_NUMBA
from depthcloud.cloud import PointCloud, frame_rotation
from depthcloud.errors import InputError

__all__ = ["TriangleMesh", "face_normals"]

_HAVE_NUMBA = HAVE_NUMBA
if _HAVE_NUMBA:
    from numba import njit

    @njit(cache=True, nogil=True)
    def _accumulate_normals(vertices, faces, acc):  # type: ignore[no-untyped-def]
        """acc[v] += (b − a) × (c − a) of every triangle with corner v (float64, one pass)."""
        for t in range(faces.shape[0]):
            a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
            ux = np.float64(vertices[b, 0]) - vertices[a, 0]
            uy = np.float64(vertices[b, 1]) - vertices[a, 1]
            uz = np.float64(vertices[b, 2]) - vertices[a, 2]
            wx = np.float64(vertices[c, 0]) - vertices[a, 0]
            wy = np.float64(vertices[c, 1]) - vertices[a, 1]
            wz = np.float64(vertices[c, 2]) - vertices[a, 2]
            nx, ny, nz = uy * wz - uz * wy, uz * wx - ux * wz, ux * wy - uy * wx
            for k in (a, b, c):
                acc[k, 0] += nx
                acc[k, 1] += ny
                acc[k, 2] += nz


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(M, 3) float64 cross products (b − a) × (c − a) of each triangle: direction = the side it
    faces (counter-clockwise winding), length = twice its area."""
    p = vertices.astype(np.float64, copy=False)
    a, b, c = p[faces[:, 0]], p[faces[:, 1]], p[faces[:, 2]]
    return np.cross(b - a, c - a)


@dataclass(frozen=True, eq=False)
class TriangleMesh:
    """A triangle mesh.

    vertices: (N, 3) float32 metres, finite. faces: (M, 3) int32 indices into vertices.
    colors: (N, 3) uint8 RGB per vertex or None. normals: (N, 3) float32 per vertex or None.
    frame: the frame the coordinates are in (see :mod:`depthcloud.cloud`).
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    frame: str = "optical"

    def __post_init__(self) -> None:
        pts = v.points("vertices", self.vertices)
        object.__setattr__(self, "vertices", pts)
        n = len(pts)
        f = v.array("faces", self.faces, shape=(None, 3), kinds="iu", nonempty=False, expected="(M, 3)")
        if f.size and (int(f.min()) < 0 or int(f.max()) >= n):
            bad = int(f.min()) if int(f.min()) < 0 else int(f.max())
            raise InputError(f"faces: expected vertex indices in 0..{n - 1}, got {bad}")
        object.__setattr__(self, "faces", np.ascontiguousarray(f, dtype=np.int32))
        if self.colors is not None:
            object.__setattr__(self, "colors", v.colors("colors", self.colors, n))
        if self.normals is not None:
            nrm = v.array("normals", self.normals, shape=(n, 3), kinds="f", nonempty=False, expected=f"({n}, 3)")
            object.__setattr__(self, "normals", np.ascontiguousarray(nrm, dtype=np.float32))
        if not isinstance(self.frame, str) or not self.frame:
            raise InputError(f"frame: expected a frame name, got {self.frame!r}")

    @classmethod
    def _trusted(cls, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None,
                 normals: np.ndarray | None = None, frame: str = "optical") -> TriangleMesh:
        """Build without validation, for arrays a kernel of this package just made."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "vertices", vertices)
        object.__setattr__(obj, "faces", faces)
        object.__setattr__(obj, "colors", colors)
        object.__setattr__(obj, "normals", normals)
        object.__setattr__(obj, "frame", frame)
        return obj

    @classmethod
    def empty(cls, *, frame: str = "optical") -> TriangleMesh:
        return cls._trusted(np.empty((0, 3), np.float32), np.empty((0, 3), np.int32), frame=frame)

    def __len__(self) -> int:
        """The number of triangles."""
        return int(self.faces.shape[0])

    def __repr__(self) -> str:
        extras = [n for n in ("colors", "normals") if getattr(self, n) is not None]
        return (f"TriangleMesh({len(self.vertices)} vertices, {len(self)} triangles"
                f"{', ' if extras else ''}{', '.join(extras)}, frame={self.frame!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TriangleMesh):
            return NotImplemented

        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))

        return (same(self.vertices, other.vertices) and same(self.faces, other.faces)
                and same(self.colors, other.colors) and same(self.normals, other.normals)
                and self.frame == other.frame)

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_empty(self) -> bool:
        return len(self) == 0

    @property
    def has_colors(self) -> bool:
        return self.colors is not None

    @property
    def has_normals(self) -> bool:
        return self.normals is not None

    # -- measures -----------------------------------------------------------------------------
    def triangle_areas(self) -> np.ndarray:
        """(M,) float64 area of each triangle, square metres."""
        return 0.5 * np.linalg.norm(face_normals(self.vertices, self.faces), axis=1)

    def area(self) -> float:
        """Total surface area, square metres."""
        return float(self.triangle_areas().sum())

    def face_normals(self) -> np.ndarray:
        """(M, 3) float32 unit normal of each triangle (counter-clockwise winding); 0 for degenerate ones."""
        fn = face_normals(self.vertices, self.faces)
        length = np.linalg.norm(fn, axis=1, keepdims=True)
        return (fn / np.where(length > 0, length, 1.0)).astype(np.float32)

    def compute_vertex_normals(self) -> np.ndarray:
        """(N, 3) float32 unit normal per vertex: the area-weighted mean of its triangles' normals
        (vertices in no triangle get 0)."""
        n = len(self.vertices)
        acc = np.zeros((n, 3), np.float64)
        if _HAVE_NUMBA:
            _accumulate_normals(self.vertices, self.faces, acc)
        else:
            fn = face_normals(self.vertices, self.faces)  # length 2·area: the sum is area-weighted
            for k in range(3):
                idx = self.faces[:, k]
                for j in range(3):
                    acc[:, j] += np.bincount(idx, weights=fn[:, j], minlength=n)
        length = np.linalg.norm(acc, axis=1, keepdims=True)
        return (acc / np.where(length > 0, length, 1.0)).astype(np.float32)

    def with_vertex_normals(self) -> TriangleMesh:
        """This mesh with ``normals`` computed by :meth:`compute_vertex_normals`."""
        return TriangleMesh._trusted(self.vertices, self.faces, self.colors, self.compute_vertex_normals(), self.frame)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min xyz, max xyz) of the vertices as float64 (3,) arrays; raises on a mesh without vertices."""
        if len(self.vertices) == 0:
            raise InputError("bounds: the mesh has no vertices")
        return self.vertices.min(axis=0).astype(np.float64), self.vertices.max(axis=0).astype(np.float64)

    # -- operations ---------------------------------------------------------------------------
    def remove_unused_vertices(self) -> TriangleMesh:
        """The same triangles with the vertices no triangle uses removed (order kept)."""
        n = len(self.vertices)
        used = np.zeros(n, bool)
        used[self.faces.ravel()] = True
        if used.all():
            return self
        remap = np.cumsum(used, dtype=np.int64) - 1
        return TriangleMesh._trusted(
            np.ascontiguousarray(self.vertices[used]), remap[self.faces].astype(np.int32),
            None if self.colors is None else np.ascontiguousarray(self.colors[used]),
            None if self.normals is None else np.ascontiguousarray(self.normals[used]), self.frame)

    def transform(self, T: Any, *, frame: str | None = None) -> TriangleMesh:
        """Apply a 4×4 rigid (or affine) transform; ``frame`` names the frame of the result.

        Normals take the inverse transpose; a transform with negative determinant (a mirror) also
        reverses the winding of every triangle so that the faces keep pointing the same way.
        """
        cloud = self.as_cloud().transform(T, frame=frame)
        det = float(np.linalg.det(np.asarray(T, dtype=np.float64)[:3, :3]))
        faces = self.faces[:, ::-1].copy() if det < 0 else self.faces
        return TriangleMesh._trusted(cloud.points, faces, self.colors, cloud.normals, cloud.frame)

    def to_frame(self, name: str) -> TriangleMesh:
        """The same mesh expressed in the named frame (``optical``, ``zup``, ``opengl``)."""
        T = np.eye(4)
        T[:3, :3] = frame_rotation(self.frame, name)
        return self.transform(T, frame=name)

    def as_cloud(self) -> PointCloud:
        """The vertices (with their colours and normals) as a PointCloud; shares the arrays."""
        return PointCloud._trusted(self.vertices, self.colors, self.normals, self.frame, None)
