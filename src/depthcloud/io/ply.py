"""PLY point clouds: read what common writers produce, write one canonical layout.

Reading accepts ``ascii``, ``binary_little_endian`` and ``binary_big_endian`` 1.0 files with any
scalar property types (``char``/``int8`` … ``double``/``float64``), extra vertex properties,
``property list`` elements before or after ``vertex`` (faces are skipped), ``comment`` and
``obj_info`` lines, ``\\r\\n`` line ends, alpha, and float colours in 0..1. What Open3D, MeshLab,
CloudCompare, PCL and librealsense write all fits. Vertices whose x, y or z is not finite are
dropped (a cloud holds valid points only).

Writing always produces: ``x y z`` float, then ``nx ny nz`` float if the cloud has normals, then
``red green blue`` uchar if it has colours; ``comment`` lines; ``comment frame NAME`` when the cloud
is not in the ``optical`` frame and ``comment stamp SECONDS`` when it has a stamp (both read back).
The body is built from one numpy structured array (binary) and written in one go.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthcloud.cloud import PointCloud
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import (
    PathArg,
    RowError,
    finite_rows,
    format_table,
    gather,
    number_table,
    read_input,
    records,
    write_atomic,
)

__all__ = ["MAX_PROPERTIES", "PlyElement", "PlyHeader", "PlyProperty", "decode_ply", "encode_ply", "parse_ply_header", "read_ply", "write_ply"]

# PLY type names (both spellings) → numpy type codes without byte order.
_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
#: most properties one element may declare; real files have a handful, a hostile header 100 000
MAX_PROPERTIES = 1024
_COLOR_NAMES = (("red", "green", "blue"), ("diffuse_red", "diffuse_green", "diffuse_blue"), ("r", "g", "b"))
_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))
_FRAME_RE = re.compile(r"^frame (\S+)$")
_STAMP_RE = re.compile(r"^stamp (\S+)$")


@dataclass(frozen=True)
class PlyProperty:
    """One property: ``name``, numpy type code (``"f4"``); for a list, ``count_type`` is the length's type."""

    name: str
    type: str
    count_type: str | None = None


@dataclass(frozen=True)
class PlyElement:
    name: str
    count: int
    properties: tuple[PlyProperty, ...]
    line: int

    @property
    def has_lists(self) -> bool:
        return any(p.count_type is not None for p in self.properties)


@dataclass(frozen=True)
class PlyHeader:
    """A parsed header: ``format`` (``ascii`` / ``binary_*``), elements in file order, comments,
    ``obj_info`` lines, and ``body_offset`` (the byte where the body starts)."""

    format: str
    elements: tuple[PlyElement, ...]
    comments: tuple[str, ...] = ()
    obj_info: tuple[str, ...] = ()
    body_offset: int = 0

    @property
    def byte_order(self) -> str | None:
        return _FORMATS[self.format]


def _fail(msg: str, path: PathArg | None, line: int | None = None) -> FormatError:
    return FormatError(msg, path=path, line=line)


def parse_ply_header(data: bytes, *, path: PathArg | None = None) -> PlyHeader:
    """Parse the header of a PLY file held in ``data``; ``path`` only names the file in errors."""
    if not data.startswith(b"ply"):
        raise _fail("not a PLY file: expected 'ply' as the first line", path, 1)
    end = re.search(rb"(?:^|\n)end_header[ \t]*\r?\n", data)
    if end is None:
        # A header with end_header as the last bytes and no body (an empty cloud) is still fine.
        if re.search(rb"\nend_header[ \t]*\r?$", data):
            end_pos = len(data)
        else:
            raise _fail("no 'end_header' line: the header is incomplete", path)
    else:
        end_pos = end.end()
    # Keywords are ASCII; latin-1 keeps any byte a writer put in a comment without failing.
    text = data[:end_pos].decode("latin-1")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[0].strip() != "ply":
        raise _fail("not a PLY file: expected 'ply' as the first line", path, 1)
    fmt: str | None = None
    comments: list[str] = []
    obj_info: list[str] = []
    elements: list[PlyElement] = []
    current: tuple[str, int, list[PlyProperty], int] | None = None
    current_names: set[str] = set()  # property names of the current element: duplicates in O(1)
    names_seen: set[str] = set()

    def close() -> None:
        if current is not None:
            elements.append(PlyElement(current[0], current[1], tuple(current[2]), current[3]))

    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        words = line.split()
        key = words[0]
        if key == "end_header":
            break
        if key == "comment":
            comments.append(line[len("comment"):].strip())
        elif key == "obj_info":
            obj_info.append(line[len("obj_info"):].strip())
        elif key == "format":
            if len(words) != 3 or words[1] not in _FORMATS:
                raise _fail(
                    "expected 'format ascii|binary_little_endian|binary_big_endian 1.0', "
                    f"got {line!r}", path, number)
            if words[2] not in ("1.0", "1"):
                raise _fail(f"unsupported PLY version {words[2]!r} (expected 1.0)", path, number)
            fmt = words[1]
        elif key == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise _fail("expected 'element <name> <count>'", path, number)
            close()
            if words[1] in names_seen:
                raise _fail(f"element {words[1]!r} appears twice", path, number)
            names_seen.add(words[1])
            current = (words[1], int(words[2]), [], number)
            current_names = set()
        elif key == "property":
            if current is None:
                raise _fail("'property' before any 'element'", path, number)
            if len(words) >= 2 and words[1] == "list":
                if len(words) != 5:
                    raise _fail("expected 'property list <count type> <item type> <name>'", path, number)
                ct, it, name = words[2], words[3], words[4]
                for t in (ct, it):
                    if t not in _TYPES:
                        raise _fail(f"unknown property type {t!r}", path, number)
                if _TYPES[ct][0] == "f":
                    raise _fail(f"a list count must be an integer type, got {ct!r}", path, number)
                prop = PlyProperty(name, _TYPES[it], _TYPES[ct])
            else:
                if len(words) != 3:
                    raise _fail("expected 'property <type> <name>'", path, number)
                if words[1] not in _TYPES:
                    raise _fail(f"unknown property type {words[1]!r}", path, number)
                prop = PlyProperty(words[2], _TYPES[words[1]])
            if prop.name in current_names:
                raise _fail(f"property {prop.name!r} appears twice in element {current[0]!r}", path, number)
            if len(current[2]) >= MAX_PROPERTIES:
                raise _fail(f"element {current[0]!r} has more than {MAX_PROPERTIES} properties; no point-cloud "
                            "writer makes that many (a corrupt or hostile header)", path, number)
            current_names.add(prop.name)
            current[2].append(prop)
        else:
            raise _fail(f"unknown header keyword {key!r}", path, number)
    close()
    if fmt is None:
        raise _fail("no 'format' line in the header", path)
    return PlyHeader(fmt, tuple(elements), tuple(comments), tuple(obj_info), end_pos)


# -- body decoding ------------------------------------------------------------------------------

def _scalar_dtype(props: Iterable[PlyProperty], order: str) -> np.dtype:
    return np.dtype([(p.name, order + p.type) for p in props])


def _walk_binary(data: bytes, offset: int, el: PlyElement, order: str, path: PathArg | None,
                 keep: bool) -> tuple[int, dict[str, np.ndarray]]:
    """Step over an element with list properties row by row; keep its scalar columns if asked."""
    least = sum(np.dtype(p.count_type or p.type).itemsize for p in el.properties)  # a row with empty lists
    if offset + el.count * least > len(data):
        raise _fail(f"element {el.name!r} declares {el.count} rows (at least {el.count * least} bytes) but the "
                    f"body has {len(data) - offset} bytes left (truncated file or lying header)", path, el.line)
    scalars = [p for p in el.properties if p.count_type is None]
    columns = {p.name: np.empty(el.count if keep else 0, dtype=p.type) for p in scalars}
    mv = memoryview(data)
    n = len(data)
    sizes = {p.name: np.dtype(p.type).itemsize for p in el.properties}
    for row in range(el.count):
        for p in el.properties:
            if p.count_type is None:
                size = sizes[p.name]
                if offset + size > n:
                    raise _fail(f"element {el.name!r} row {row}: the body ends early (truncated file?)", path)
                if keep:
                    columns[p.name][row] = np.frombuffer(mv[offset:offset + size], dtype=order + p.type)[0]
                offset += size
            else:
                csize = np.dtype(p.count_type).itemsize
                if offset + csize > n:
                    raise _fail(f"element {el.name!r} row {row}: the body ends early (truncated file?)", path)
                count = int(np.frombuffer(mv[offset:offset + csize], dtype=order + p.count_type)[0])
                if count < 0:
                    raise _fail(f"element {el.name!r} row {row}: negative list length {count}", path)
                offset += csize + count * sizes[p.name]
                if offset > n:
                    raise _fail(f"element {el.name!r} row {row}: the body ends early (truncated file?)", path)
    return offset, columns


def _decode_binary(data: bytes, header: PlyHeader, path: PathArg | None) -> np.ndarray | None:
    order = header.byte_order or "<"
    offset = header.body_offset
    for el in header.elements:
        is_vertex = el.name == "vertex"
        if not el.has_lists:
            dt = _scalar_dtype(el.properties, order)
            need = dt.itemsize * el.count
            if offset + need > len(data):
                raise _fail(
                    f"element {el.name!r} declares {el.count} rows ({need} bytes) but the body has "
                    f"{len(data) - offset} bytes left (truncated file or lying header)", path, el.line)
            if is_vertex:
                return np.frombuffer(data, dtype=dt, count=el.count, offset=offset)
            offset += need
        else:
            offset, cols = _walk_binary(data, offset, el, order, path, keep=is_vertex)
            if is_vertex:
                return _records(cols, el.count)
    return None


def _decode_ascii(data: bytes, header: PlyHeader, path: PathArg | None) -> np.ndarray | None:
    body = data[header.body_offset:]
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _fail(f"the ASCII body contains a non-ASCII byte at offset {header.body_offset + exc.start}",
                    path) from exc
    lines = text.splitlines()
    first_body_line = data[:header.body_offset].count(b"\n") + 1
    # Skip blank lines, keeping each line's number in the file for messages.
    rows = [(i, ln) for i, ln in enumerate(lines, start=first_body_line) if ln.strip()]
    pos = 0
    for el in header.elements:
        if pos + el.count > len(rows):
            raise _fail(
                f"element {el.name!r} declares {el.count} rows but only {len(rows) - pos} lines are left "
                "(truncated file or lying header)", path, el.line)
        chunk = rows[pos:pos + el.count]
        pos += el.count
        if el.name != "vertex":
            continue
        if el.has_lists:
            return _records(_ascii_rows_with_lists(chunk, el, path), el.count)
        try:
            table = number_table([ln for _, ln in chunk], len(el.properties))
        except RowError as exc:
            raise _fail(f"element {el.name!r}: {exc.message}", path, chunk[exc.index][0]) from None
        return _records({p.name: _cast(table[:, i], p.type) for i, p in enumerate(el.properties)}, el.count)
    return None


def _cast(column: np.ndarray, type_code: str) -> np.ndarray:
    if type_code[0] == "f":
        return column.astype(type_code)
    info = np.iinfo(type_code)
    with np.errstate(invalid="ignore"):
        return np.clip(np.nan_to_num(column), info.min, info.max).astype(type_code)


def _ascii_rows_with_lists(chunk: list[tuple[int, str]], el: PlyElement, path: PathArg | None) -> dict[str, np.ndarray]:
    scalars = [p for p in el.properties if p.count_type is None]
    out = {p.name: np.empty(len(chunk), dtype=np.float64) for p in scalars}
    for row, (number, ln) in enumerate(chunk):
        words = ln.split()
        k = 0
        try:
            for p in el.properties:
                if p.count_type is None:
                    out[p.name][row] = float(words[k])
                    k += 1
                else:
                    count = int(words[k])
                    if count < 0:
                        raise _fail(f"negative list length {count}", path, number)
                    k += 1 + count
        except (IndexError, ValueError) as exc:
            raise _fail(f"malformed row for element {el.name!r} ({exc})", path, number) from None
        if k > len(words):
            raise _fail(f"malformed row for element {el.name!r}: too few values", path, number)
    return {p.name: _cast(out[p.name], p.type) for p in scalars}


def _records(columns: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The vertex columns as one record array, the shape every decoder hands to :func:`_build_cloud`."""
    rec = np.empty(n, dtype=[(name, col.dtype) for name, col in columns.items()])
    for name, col in columns.items():
        rec[name] = col
    return rec


def _pick(rec: np.ndarray, options: tuple[tuple[str, str, str], ...]) -> tuple[str, str, str] | None:
    names = rec.dtype.names or ()
    for option in options:
        if all(n in names for n in option):
            return option
    return None


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "f":
        finite = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if finite.size and finite.max() <= 1.0:
            finite = finite * 255.0
        return np.clip(np.rint(finite), 0, 255).astype(np.uint8)
    if arr.dtype.itemsize > 1 and arr.size and arr.max() > 255:
        # 16-bit colour channels (some scanners): keep the top byte.
        return (arr.astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _build_cloud(rec: np.ndarray | None, header: PlyHeader, path: PathArg | None) -> PointCloud:
    if rec is None:
        if not header.elements:
            return PointCloud._trusted(np.empty((0, 3), np.float32), frame=_frame_of(header))
        raise _fail("no 'vertex' element in the header", path)
    xyz = _pick(rec, (("x", "y", "z"),))
    if xyz is None:
        raise _fail("the vertex element has no x, y, z properties", path)
    rgb = _pick(rec, _COLOR_NAMES)
    nrm = _pick(rec, _NORMAL_NAMES)
    pts, (colors, normals) = finite_rows(
        gather(rec, xyz, np.float32),
        None if rgb is None else _to_uint8(gather(rec, rgb)),
        None if nrm is None else gather(rec, nrm, np.float32),
    )
    return PointCloud._trusted(pts, colors, normals, _frame_of(header), _stamp_of(header))


def _frame_of(header: PlyHeader) -> str:
    for c in header.comments:
        m = _FRAME_RE.match(c)
        if m:
            return m.group(1)
    return "optical"


def _stamp_of(header: PlyHeader) -> float | None:
    for c in header.comments:
        m = _STAMP_RE.match(c)
        if m:
            try:
                return float(m.group(1))
            except ValueError:
                return None
    return None


def decode_ply(data: bytes, *, path: PathArg | None = None) -> PointCloud:
    """A :class:`PointCloud` from the bytes of a PLY file (``path`` only names the source in errors).

    Returns points (N, 3) float32, colours (N, 3) uint8 RGB if the vertices have them, normals (N, 3)
    float32 if they have ``nx ny nz``. Any malformed input raises :class:`FormatError`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"data: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    header = parse_ply_header(data, path=path)
    if header.format == "ascii":
        rec = _decode_ascii(data, header, path)
    else:
        rec = _decode_binary(data, header, path)
    return _build_cloud(rec, header, path)


def read_ply(path: PathArg) -> PointCloud:
    """Read a PLY point cloud (see the module docstring for what is accepted)."""
    return decode_ply(read_input(path), path=Path(path).name)


# -- writing ------------------------------------------------------------------------------------

def _check_comments(comments: Iterable[str]) -> list[str]:
    if isinstance(comments, str):
        raise InputError("comments: expected a sequence of strings, got a single string")
    out = []
    for c in comments:
        if not isinstance(c, str):
            raise InputError(f"comments: expected strings, got {type(c).__name__}")
        if "\n" in c or "\r" in c or not c.isascii():
            raise InputError(f"comments: each comment must be one line of ASCII text, got {c!r}")
        out.append(c)
    return out


def _encode_parts(cloud: PointCloud, *, binary: bool, byte_order: str,
                  comments: Iterable[str]) -> tuple[bytes, bytes | np.ndarray]:
    """The header and the body of a PLY file; a binary body is a packed record array."""
    if not isinstance(cloud, PointCloud):
        raise InputError(f"cloud: expected a PointCloud, got {type(cloud).__name__}")
    if byte_order not in ("<", ">"):
        raise InputError(f"byte_order: expected '<' or '>', got {byte_order!r}")
    notes = _check_comments(comments)
    if cloud.frame != "optical":
        if not cloud.frame.isascii() or any(ch.isspace() for ch in cloud.frame):
            raise InputError(f"cloud.frame: cannot store frame name {cloud.frame!r} in a PLY comment")
        notes.append(f"frame {cloud.frame}")
    if cloud.stamp is not None:
        notes.append(f"stamp {float(cloud.stamp)!r}")
    fmt = ("binary_little_endian" if byte_order == "<" else "binary_big_endian") if binary else "ascii"
    blocks: list[tuple[tuple[str, ...], str, np.ndarray]] = [(("x", "y", "z"), "float", cloud.points)]
    if cloud.normals is not None:
        blocks.append((("nx", "ny", "nz"), "float", cloud.normals))
    if cloud.colors is not None:
        blocks.append((("red", "green", "blue"), "uchar", cloud.colors))
    head = ["ply", f"format {fmt} 1.0", *(f"comment {c}" for c in notes), f"element vertex {len(cloud)}"]
    head += [f"property {kind} {name}" for names, kind, _ in blocks for name in names]
    head.append("end_header")
    header = ("\n".join(head) + "\n").encode("ascii")
    if not binary:
        return header, format_table([col for _, _, arr in blocks for col in arr.T]).encode("ascii")
    body = records([np.asarray(arr, dtype=(byte_order + "f4") if kind == "float" else np.uint8)
                      for _, kind, arr in blocks], len(cloud))
    return header, body


def encode_ply(cloud: PointCloud, *, binary: bool = True, byte_order: str = "<",
               comments: Iterable[str] = ()) -> bytes:
    """The bytes of a PLY file holding ``cloud`` (binary in ``byte_order`` ``"<"``/``">"``, or ASCII).

    Layout: ``x y z`` float32, ``nx ny nz`` float32 if normals, ``red green blue`` uchar if colours.
    """
    header, body = _encode_parts(cloud, binary=binary, byte_order=byte_order, comments=comments)
    return header + (body.tobytes() if isinstance(body, np.ndarray) else body)


def write_ply(path: PathArg, cloud: PointCloud, *, binary: bool = True, byte_order: str = "<",
              comments: Iterable[str] = (), overwrite: bool = False) -> Path:
    """Write ``cloud`` as PLY (see :func:`encode_ply`); refuses an existing file unless ``overwrite``.

    The file appears whole or not at all (temporary file + rename). Returns the path.
    """
    parts = _encode_parts(cloud, binary=binary, byte_order=byte_order, comments=comments)
    return write_atomic(path, parts, overwrite=overwrite)
