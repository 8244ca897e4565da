"""ROS bag v2.0 files (RealSense ``.bag`` recordings): structure check and summary, no payload decoding.

librealsense trusts the lengths in a bag: a corrupt record length or chunk size makes it allocate
whatever the file says (1.9 GB from a 1 MB file). :func:`scan_bag` walks the records first — every
record header, every record inside uncompressed chunks — and refuses a file whose lengths do not fit
in it, or whose chunks declare more than :func:`depthcloud.io.limits.max_array_bytes` once
decompressed, with a :class:`~depthcloud.errors.FormatError` that says at which byte and why. It
reads only headers (seeking over payloads), so memory stays small whatever the file's size.

The summary it returns (streams with their message counts, start and end time) is what
``depthcloud info FILE.bag`` prints. Format: http://wiki.ros.org/Bags/Format/2.0 — a magic line,
then records of ``header_len, header (len-prefixed name=value fields), data_len, data``.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from depthcloud.errors import FormatError
from depthcloud.io._files import PathArg
from depthcloud.io.limits import max_array_bytes

__all__ = ["BagSummary", "scan_bag"]

MAGIC = b"#ROSBAG V2.0\n"
_MAX_HEADER = 1 << 20  # a record header is a few name=value fields; a megabyte is already absurd
_OP_MESSAGE, _OP_BAG_HEADER, _OP_INDEX, _OP_CHUNK, _OP_CHUNK_INFO, _OP_CONNECTION = 2, 3, 4, 5, 6, 7
_COMPRESSIONS = ("none", "lz4", "bz2")


@dataclass
class BagSummary:
    """What a bag holds: ``topics`` (connection id → topic), ``messages`` (topic → count, from the
    chunk infos), ``start_s``/``end_s`` (seconds since the epoch, None when the bag has no chunk
    info), ``chunks``, ``compressions`` used and the file ``size``."""

    size: int
    topics: dict[int, str] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    compressions: set[str] = field(default_factory=set)
    start_s: float | None = None
    end_s: float | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.start_s is None or self.end_s is None else self.end_s - self.start_s

    def streams(self) -> dict[str, int]:
        """Image streams (topics ending in ``/image/data``) → frames recorded."""
        return {t.rsplit("/image/data", 1)[0]: n for t, n in sorted(self.messages.items()) if t.endswith("/image/data")}


def _u32(b: bytes) -> int:
    return int(struct.unpack("<I", b)[0])


def _time(b: bytes) -> float:
    secs, nsecs = struct.unpack("<II", b)
    return secs + nsecs * 1e-9


class _Walker:
    def __init__(self, fh: BinaryIO, size: int, path: str | None) -> None:
        self.fh, self.size, self.path = fh, size, path

    def fail(self, at: int, message: str) -> FormatError:
        return FormatError(f"byte {at}: {message} (a corrupt or truncated .bag)", path=self.path)

    def read(self, at: int, n: int, what: str, end: int) -> bytes:
        if n < 0 or at + n > end:
            raise self.fail(at, f"{what} of {n} bytes runs past the end of its {'file' if end == self.size else 'chunk'} "
                                f"({end - at} bytes left)")
        self.fh.seek(at)
        data = self.fh.read(n)
        if len(data) != n:
            raise self.fail(at, f"{what}: the file ends early")
        return data

    def header(self, at: int, end: int) -> tuple[dict[str, bytes], int, int]:
        """(fields, data offset, data length) of the record at ``at``; checks that it fits before ``end``."""
        hlen = _u32(self.read(at, 4, "record header length", end))
        if hlen > _MAX_HEADER:
            raise self.fail(at, f"record header length {hlen} is absurd (limit {_MAX_HEADER})")
        raw = self.read(at + 4, hlen, "record header", end)
        fields: dict[str, bytes] = {}
        i = 0
        while i < hlen:
            if i + 4 > hlen:
                raise self.fail(at + 4 + i, "a header field length is cut")
            flen = _u32(raw[i:i + 4])
            if flen > hlen - i - 4:
                raise self.fail(at + 4 + i, f"header field of {flen} bytes runs past its header ({hlen - i - 4} left)")
            name, eq, value = raw[i + 4:i + 4 + flen].partition(b"=")
            if not eq:
                raise self.fail(at + 4 + i, "a header field has no '='")
            fields[name.decode("latin-1")] = value
            i += 4 + flen
        if "op" not in fields or len(fields["op"]) != 1:
            raise self.fail(at, "a record header without its op field")
        data_at = at + 4 + hlen + 4
        dlen = _u32(self.read(at + 4 + hlen, 4, "record data length", end))
        if data_at + dlen > end:
            raise self.fail(at, f"record data of {dlen} bytes runs past the end ({end - data_at} bytes left)")
        return fields, data_at, dlen

    def need(self, fields: dict[str, bytes], name: str, size: int, at: int) -> bytes:
        value = fields.get(name)
        if value is None or len(value) != size:
            raise self.fail(at, f"record field {name!r} missing or not {size} bytes")
        return value


def scan_bag(path: PathArg, *, max_pixels: int | None = None) -> BagSummary:
    """Check the structure of a ROS bag v2.0 and summarise it (see the module docstring).

    Raises FormatError for a file that is not a bag, whose record lengths do not fit in it, or
    whose chunks would decompress to more than the size limit (``max_pixels``: see
    :mod:`depthcloud.io.limits`).
    """
    p = Path(path)
    name = p.name
    limit = max_array_bytes(max_pixels)
    with open(p, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(0)
        if fh.read(len(MAGIC)) != MAGIC:
            raise FormatError("not a ROS bag v2.0 (RealSense .bag): the file does not start with '#ROSBAG V2.0'",
                              path=name)
        w = _Walker(fh, size, name)
        out = BagSummary(size)
        counts: dict[int, int] = {}
        at = len(MAGIC)
        while at < size:
            fields, data_at, dlen = w.header(at, size)
            op = fields["op"][0]
            if op == _OP_BAG_HEADER:
                index_pos = struct.unpack("<Q", w.need(fields, "index_pos", 8, at))[0]
                if index_pos > size:
                    raise w.fail(at, f"the bag header puts the index at byte {index_pos}, past the end ({size})")
            elif op == _OP_CHUNK:
                comp = fields.get("compression", b"").decode("latin-1")
                if comp not in _COMPRESSIONS:
                    raise w.fail(at, f"unknown chunk compression {comp!r}")
                unpacked = _u32(w.need(fields, "size", 4, at))
                if unpacked > limit:
                    raise w.fail(at, f"a chunk declares {unpacked} bytes once decompressed, over the limit of {limit} "
                                     "(raise it with DEPTHCLOUD_MAX_PIXELS)")
                if comp == "none":
                    if unpacked != dlen:
                        raise w.fail(at, f"an uncompressed chunk declares {unpacked} bytes but holds {dlen}")
                    inner = data_at
                    while inner < data_at + dlen:
                        f2, d2, l2 = w.header(inner, data_at + dlen)
                        if f2["op"][0] == _OP_CONNECTION:
                            out.topics[_u32(w.need(f2, "conn", 4, inner))] = f2.get("topic", b"").decode("latin-1")
                        inner = d2 + l2
                out.chunks += 1
                out.compressions.add(comp)
            elif op == _OP_CONNECTION:
                out.topics[_u32(w.need(fields, "conn", 4, at))] = fields.get("topic", b"").decode("latin-1")
            elif op == _OP_CHUNK_INFO:
                start, end = _time(w.need(fields, "start_time", 8, at)), _time(w.need(fields, "end_time", 8, at))
                n = _u32(w.need(fields, "count", 4, at))
                if dlen != 8 * n:
                    raise w.fail(at, f"a chunk info lists {n} connections in {dlen} bytes (expected {8 * n})")
                pairs = w.read(data_at, dlen, "chunk info data", size)
                for k in range(n):
                    conn, cnt = struct.unpack("<II", pairs[8 * k:8 * k + 8])
                    counts[conn] = counts.get(conn, 0) + cnt
                out.start_s = start if out.start_s is None else min(out.start_s, start)
                out.end_s = end if out.end_s is None else max(out.end_s, end)
            elif op == _OP_INDEX:
                n = _u32(w.need(fields, "count", 4, at))
                if dlen != 12 * n:
                    raise w.fail(at, f"an index lists {n} entries in {dlen} bytes (expected {12 * n})")
            elif op != _OP_MESSAGE:
                raise w.fail(at, f"unknown record op {op}")
            at = data_at + dlen
    for conn, n in counts.items():
        topic = out.topics.get(conn, f"connection {conn}")
        out.messages[topic] = out.messages.get(topic, 0) + n
    return out
