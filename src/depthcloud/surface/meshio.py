"""Mesh files: PLY with faces, OBJ, GLB — read and write, chosen by extension.

* PLY: the vertex layout of :mod:`depthcloud.io.ply` (``x y z`` float, ``nx ny nz`` float,
  ``red green blue`` uchar; ``comment frame NAME``) followed by ``element face M`` with
  ``property list uchar int vertex_indices``, binary little-endian or ASCII. Reading accepts any
  count/index integer types, ``vertex_index`` as well as ``vertex_indices``, polygons (split into
  fans of triangles), and other elements and face properties (skipped).
* OBJ: ``v x y z r g b`` (colours as 0..1 floats, the extension MeshLab, Open3D and Blender read),
  ``vn`` normals referenced as ``f a//a b//b c//c``, indices from 1. Reading also takes ``v x y z``,
  ``a/t/n`` and ``a/t`` corners, negative (relative) indices and polygons; other statements are skipped.
* GLB (binary glTF 2.0) through trimesh (``pip install 'depthcloud[surface]'``): positions, normals,
  colours (COLOR_0) and indices. glTF viewers take +y as up; write a mesh in the ``opengl`` frame
  (``--frame opengl``) for them to show it upright — coordinates are never flipped silently.

Writers build the file in memory and land it atomically (temporary file + rename); an existing file is
replaced only with ``overwrite=True``. This module must not import sources, the server or the CLI.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from depthcloud.errors import FormatError, InputError, MissingDependencyError
from depthcloud.io import ply as _ply
from depthcloud.io._files import (
    PathArg,
    RowError,
    format_table,
    gather,
    number_table,
    read_input,
    write_atomic,
)
from depthcloud.surface.mesh import TriangleMesh

__all__ = ["MESH_EXTENSIONS", "decode_ply_mesh", "encode_ply_mesh", "read_mesh", "write_mesh"]

MESH_EXTENSIONS = (".ply", ".obj", ".glb")


def _suffix(path: PathArg) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in MESH_EXTENSIONS:
        raise FormatError(f"unknown mesh extension {suffix or '(none)'!r}; known: {' '.join(MESH_EXTENSIONS)}",
                          path=Path(path).name)
    return suffix


def _check_mesh(mesh: object) -> TriangleMesh:
    if not isinstance(mesh, TriangleMesh):
        raise InputError(f"mesh: expected a TriangleMesh, got {type(mesh).__name__}")
    return mesh


def _fan(polys: list[list[int]]) -> np.ndarray:
    """Triangles (M, 3) int64 from polygons given as vertex lists: (a, b, c), (a, c, d), …"""
    tris = [(p[0], p[i], p[i + 1]) for p in polys for i in range(1, len(p) - 1)]
    return np.array(tris, np.int64).reshape(-1, 3)


def _checked_faces(faces: np.ndarray, n: int, path: PathArg | None) -> np.ndarray:
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        bad = int(faces.min()) if faces.min() < 0 else int(faces.max())
        raise FormatError(f"a face refers to vertex {bad}, but there are {n} vertices (0..{n - 1})", path=path)
    return faces.astype(np.int32)


# -- PLY ----------------------------------------------------------------------------------------

_FACE_LISTS = ("vertex_indices", "vertex_index")


def encode_ply_mesh(mesh: TriangleMesh, *, binary: bool = True) -> bytes:
    """The bytes of a PLY file holding ``mesh``: its vertices as :func:`depthcloud.io.ply.encode_ply`
    writes a cloud, then ``element face`` with ``list uchar int vertex_indices``."""
    return b"".join(_ply_parts(_check_mesh(mesh), binary=binary))  # type: ignore[arg-type]  # arrays are buffers


def _ply_parts(mesh: TriangleMesh, *, binary: bool) -> list[bytes | np.ndarray]:
    header, body = _ply._encode_parts(mesh.as_cloud(), binary=binary, byte_order="<", comments=())
    face_head = f"element face {len(mesh)}\nproperty list uchar int vertex_indices\nend_header\n".encode("ascii")
    header = header[: -len(b"end_header\n")] + face_head
    if binary:
        rec = np.empty(len(mesh), dtype=[("n", "u1"), ("i", "<i4", (3,))])
        rec["n"] = 3
        rec["i"] = mesh.faces
        return [header, body, rec]
    f = mesh.faces
    faces = format_table([np.full(len(f), 3, np.int32), f[:, 0], f[:, 1], f[:, 2]]).encode("ascii")
    return [header, body, faces]


def _ply_faces_binary(data: bytes, offset: int, el: _ply.PlyElement, order: str,
                      path: PathArg | None) -> tuple[int, np.ndarray]:
    """(offset after the element, faces) of a binary face element."""
    lists = [p for p in el.properties if p.count_type is not None and p.name in _FACE_LISTS]
    if not lists:
        raise FormatError(f"element 'face' has no {' or '.join(_FACE_LISTS)} list", path=path, line=el.line)
    target = lists[0]
    if len(el.properties) == 1:
        # The common layout: every face a triangle, nothing else per face — one frombuffer.
        dt = np.dtype([("n", order + target.count_type), ("i", order + target.type, (3,))])  # type: ignore[operator]
        if offset + dt.itemsize * el.count <= len(data):
            rec = np.frombuffer(data, dtype=dt, count=el.count, offset=offset)
            if (rec["n"] == 3).all():
                return offset + dt.itemsize * el.count, rec["i"].astype(np.int64)
    polys: list[list[int]] = []
    mv = memoryview(data)
    for row in range(el.count):
        for p in el.properties:
            if p.count_type is None:
                offset += np.dtype(p.type).itemsize
                continue
            csize, isize = np.dtype(p.count_type).itemsize, np.dtype(p.type).itemsize
            if offset + csize > len(data):
                raise FormatError(f"element 'face' row {row}: the body ends early (truncated file?)", path=path)
            count = int(np.frombuffer(mv[offset:offset + csize], dtype=order + p.count_type)[0])
            offset += csize
            if offset + count * isize > len(data):
                raise FormatError(f"element 'face' row {row}: the body ends early (truncated file?)", path=path)
            if p is target:
                if count < 3:
                    raise FormatError(f"element 'face' row {row}: a face needs 3 or more vertices, got {count}",
                                      path=path)
                polys.append(np.frombuffer(mv[offset:offset + count * isize], dtype=order + p.type).tolist())
            offset += count * isize
    return offset, _fan(polys)


def _ply_faces_ascii(rows: list[tuple[int, str]], el: _ply.PlyElement, path: PathArg | None) -> np.ndarray:
    lists = [i for i, p in enumerate(el.properties) if p.count_type is not None and p.name in _FACE_LISTS]
    if not lists:
        raise FormatError(f"element 'face' has no {' or '.join(_FACE_LISTS)} list", path=path, line=el.line)
    if len(el.properties) == 1:
        try:
            table = number_table([ln for _, ln in rows], 4)
        except RowError:
            table = None
        if table is not None and (table[:, 0] == 3).all():
            return table[:, 1:].astype(np.int64)
    polys: list[list[int]] = []
    for number, ln in rows:
        words = ln.split()
        k = 0
        try:
            for i, p in enumerate(el.properties):
                if p.count_type is None:
                    k += 1
                    continue
                count = int(words[k])
                if i == lists[0]:
                    if count < 3:
                        raise FormatError(f"a face needs 3 or more vertices, got {count}", path=path, line=number)
                    polys.append([int(w) for w in words[k + 1:k + 1 + count]])
                    if len(polys[-1]) != count:
                        raise IndexError("too few indices")
                k += 1 + count
        except (IndexError, ValueError) as exc:
            raise FormatError(f"malformed face row ({exc})", path=path, line=number) from None
    return _fan(polys)


def decode_ply_mesh(data: bytes, *, path: PathArg | None = None) -> TriangleMesh:
    """A TriangleMesh from the bytes of a PLY file (``path`` only names the source in errors).

    A file without a face element gives a mesh without triangles. Vertices must be finite.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"data: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    header = _ply.parse_ply_header(data, path=path)
    rec: np.ndarray | None = None
    faces = np.empty((0, 3), np.int64)
    if header.format == "ascii":
        text = data[header.body_offset:].decode("ascii", errors="replace")
        first = data[:header.body_offset].count(b"\n") + 1
        rows = [(i, ln) for i, ln in enumerate(text.splitlines(), start=first) if ln.strip()]
        pos = 0
        for el in header.elements:
            if pos + el.count > len(rows):
                raise FormatError(f"element {el.name!r} declares {el.count} rows but only {len(rows) - pos} lines "
                                  "are left (truncated file or lying header)", path=path, line=el.line)
            chunk, pos = rows[pos:pos + el.count], pos + el.count
            if el.name == "vertex":
                if el.has_lists:
                    raise FormatError("list properties in the vertex element are not supported", path=path,
                                      line=el.line)
                try:
                    table = number_table([ln for _, ln in chunk], len(el.properties))
                except RowError as exc:
                    raise FormatError(f"element 'vertex': {exc.message}", path=path, line=chunk[exc.index][0]) from None
                rec = _ply._records({p.name: _ply._cast(table[:, i], p.type) for i, p in enumerate(el.properties)},
                                    el.count)
            elif el.name == "face":
                faces = _ply_faces_ascii(chunk, el, path)
    else:
        order = header.byte_order or "<"
        offset = header.body_offset
        for el in header.elements:
            if el.name == "face":
                offset, faces = _ply_faces_binary(data, offset, el, order, path)
            elif not el.has_lists:
                dt = _ply._scalar_dtype(el.properties, order)
                if offset + dt.itemsize * el.count > len(data):
                    raise FormatError(f"element {el.name!r} declares {el.count} rows but the body ends early "
                                      "(truncated file or lying header)", path=path, line=el.line)
                if el.name == "vertex":
                    rec = np.frombuffer(data, dtype=dt, count=el.count, offset=offset)
                offset += dt.itemsize * el.count
            else:
                offset, cols = _ply._walk_binary(data, offset, el, order, path, keep=el.name == "vertex")
                if el.name == "vertex":
                    rec = _ply._records(cols, el.count)
    if rec is None:
        raise FormatError("no 'vertex' element in the header", path=path)
    xyz = _ply._pick(rec, (("x", "y", "z"),))
    if xyz is None:
        raise FormatError("the vertex element has no x, y, z properties", path=path)
    verts = gather(rec, xyz, np.float32)
    if not np.isfinite(verts).all():
        bad = int(np.flatnonzero(~np.isfinite(verts).all(axis=1))[0])
        raise FormatError(f"vertex {bad} is not finite; a mesh needs finite vertices", path=path)
    rgb = _ply._pick(rec, _ply._COLOR_NAMES)
    nrm = _ply._pick(rec, _ply._NORMAL_NAMES)
    return TriangleMesh._trusted(
        verts, _checked_faces(faces, len(verts), path),
        None if rgb is None else np.ascontiguousarray(_ply._to_uint8(gather(rec, rgb))),
        None if nrm is None else gather(rec, nrm, np.float32), _ply._frame_of(header))


# -- OBJ ----------------------------------------------------------------------------------------

def _encode_obj(mesh: TriangleMesh) -> list[bytes]:
    head = ["# depthcloud mesh", f"# {len(mesh.vertices)} vertices, {len(mesh)} triangles"]
    if mesh.frame != "optical":
        head.append(f"# frame {mesh.frame}")
    cols = [mesh.vertices[:, 0], mesh.vertices[:, 1], mesh.vertices[:, 2]]
    if mesh.colors is not None:
        # float32 0..1: the shortest text that rounds back to the same byte (×255).
        cols += list((mesh.colors.astype(np.float32) / np.float32(255.0)).T)
    parts = ["\n".join(head) + "\n", "".join("v " + ln + "\n" for ln in format_table(cols).splitlines())]
    f = mesh.faces.astype(np.int64) + 1
    if mesh.normals is not None:
        parts.append("".join("vn " + ln + "\n" for ln in format_table(list(mesh.normals.T)).splitlines()))
        parts.append("".join(f"f {a}//{a} {b}//{b} {c}//{c}\n" for a, b, c in f.tolist()))
    else:
        parts.append("".join(f"f {a} {b} {c}\n" for a, b, c in f.tolist()))
    return [p.encode("ascii") for p in parts]


def _obj_index(word: str, count: int, what: str, number: int, path: PathArg | None) -> int:
    i = int(word)
    if i == 0:
        raise FormatError(f"{what} index 0 (OBJ indices start at 1)", path=path, line=number)
    return i - 1 if i > 0 else count + i


def _decode_obj(data: bytes, path: PathArg | None) -> TriangleMesh:
    verts: list[list[float]] = []
    normals: list[list[float]] = []
    polys: list[list[int]] = []
    corner_normals: list[tuple[int, int]] = []
    frame = "optical"
    for number, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        words = raw.split()
        if not words:
            continue
        key = words[0]
        try:
            if key == "v":
                if len(words) not in (4, 5, 7, 8):
                    raise FormatError(f"expected 'v x y z [w]' or 'v x y z r g b', got {len(words) - 1} values",
                                      path=path, line=number)
                verts.append([float(w) for w in words[1:]])
            elif key == "vn":
                if len(words) != 4:
                    raise FormatError("expected 'vn x y z'", path=path, line=number)
                normals.append([float(w) for w in words[1:4]])
            elif key == "f":
                if len(words) < 4:
                    raise FormatError(f"a face needs 3 or more vertices, got {len(words) - 1}", path=path, line=number)
                poly = []
                for corner in words[1:]:
                    parts = corner.split("/")
                    vi = _obj_index(parts[0], len(verts), "vertex", number, path)
                    poly.append(vi)
                    if len(parts) == 3 and parts[2]:
                        corner_normals.append((vi, _obj_index(parts[2], len(normals), "normal", number, path)))
                polys.append(poly)
            elif key == "#" and len(words) == 3 and words[1] == "frame":
                frame = words[2]
        except ValueError as exc:
            raise FormatError(f"expected numbers in a {key!r} statement ({exc})", path=path, line=number) from None
    widths = {len(v) for v in verts}
    if len(widths) > 1:
        raise FormatError("vertices mix 'v x y z' and 'v x y z r g b' lines", path=path)
    table = np.array(verts, np.float64).reshape(len(verts), -1) if verts else np.empty((0, 3))
    pts = table[:, :3].astype(np.float32)
    if not np.isfinite(pts).all():
        raise FormatError("a vertex is not finite; a mesh needs finite vertices", path=path)
    colors = None
    if table.shape[1] >= 6:
        rgb = table[:, 3:6] if table.shape[1] == 6 else table[:, 4:7]  # 'v x y z w r g b' is not a thing
        rgb = rgb * 255.0 if rgb.size and rgb.max() <= 1.0 else rgb
        colors = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    faces = _checked_faces(_fan(polys), len(pts), path)
    vnormals = None
    if corner_normals and normals and len(corner_normals) == sum(len(p) for p in polys):
        # Per-vertex normals when every corner names one and each vertex always gets the same one.
        nv = np.array(corner_normals, np.int64)
        if nv[:, 1].min() >= 0 and nv[:, 1].max() < len(normals):
            pick = np.full(len(pts), -1, np.int64)
            pick[nv[:, 0]] = nv[:, 1]
            if (pick[nv[:, 0]] == nv[:, 1]).all() and (pick >= 0).all():
                vnormals = np.asarray(normals, np.float32)[pick]
    return TriangleMesh._trusted(pts, faces, colors, vnormals, frame)


# -- GLB ----------------------------------------------------------------------------------------

def _trimesh():  # type: ignore[no-untyped-def]
    try:
        import trimesh
    except ImportError as exc:
        raise MissingDependencyError.for_extra("trimesh (for GLB)", "surface") from exc
    return trimesh


def _encode_glb(mesh: TriangleMesh) -> bytes:
    trimesh = _trimesh()
    tm = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_normals=mesh.normals,
                         vertex_colors=mesh.colors, process=False, validate=False)
    return bytes(tm.export(file_type="glb"))


def _decode_glb(data: bytes, path: PathArg | None) -> TriangleMesh:
    trimesh = _trimesh()
    try:
        scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False, force="scene")
    except Exception as exc:  # trimesh raises many types for broken files
        raise FormatError(f"not a readable GLB file ({type(exc).__name__}: {exc})", path=path) from exc
    parts = []
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geom = scene.geometry[name]
        if not hasattr(geom, "faces"):
            continue  # points or lines
        has_normals = "vertex_normals" in geom._cache.cache
        colors = None
        if getattr(geom.visual, "kind", None) == "vertex":
            colors = np.asarray(geom.visual.vertex_colors)[:, :3].astype(np.uint8)
        m = TriangleMesh(np.asarray(geom.vertices, np.float32), np.asarray(geom.faces, np.int64), colors=colors,
                         normals=np.asarray(geom.vertex_normals, np.float32) if has_normals else None)
        if not np.allclose(transform, np.eye(4)):
            m = m.transform(transform, frame="optical")
        parts.append(m)
    if not parts:
        return TriangleMesh.empty()
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    keep = lambda name: all(getattr(p, name) is not None for p in parts)  # noqa: E731
    return TriangleMesh._trusted(
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)]).astype(np.int32),
        np.concatenate([p.colors for p in parts]) if keep("colors") else None,  # type: ignore[misc]
        np.concatenate([p.normals for p in parts]) if keep("normals") else None)  # type: ignore[misc]


# -- by extension -------------------------------------------------------------------------------

def read_mesh(path: PathArg) -> TriangleMesh:
    """Read a mesh (.ply, .obj, .glb), choosing the reader by extension (case-insensitive)."""
    suffix = _suffix(path)
    data = read_input(path)
    name = Path(path).name
    if suffix == ".ply":
        return decode_ply_mesh(data, path=name)
    if suffix == ".obj":
        return _decode_obj(data, name)
    return _decode_glb(data, name)


def write_mesh(path: PathArg, mesh: TriangleMesh, *, overwrite: bool = False, ascii: bool = False) -> Path:
    """Write ``mesh`` in the format its extension names (.ply, .obj, .glb); returns the path.

    ``ascii`` picks ASCII PLY (binary little-endian otherwise); OBJ is always text and GLB binary.
    Refuses an existing file unless ``overwrite`` (:class:`OutputExistsError`).
    """
    m = _check_mesh(mesh)
    suffix = _suffix(path)
    if suffix == ".ply":
        parts: list[bytes | np.ndarray] | bytes = _ply_parts(m, binary=not ascii)
    elif suffix == ".obj":
        parts = _encode_obj(m)  # type: ignore[assignment]
    else:
        parts = _encode_glb(m)
    return write_atomic(path, parts, overwrite=overwrite)
