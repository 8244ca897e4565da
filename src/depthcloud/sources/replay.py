"""depthcloud's own recording format (``.dcrec``): lossless, compact, streamable Frames.

Layout (little-endian)::

    file    = MAGIC (8 bytes: b"DCREC\\r\\n\\x1a") · u32 version · u32 n · header (n bytes of UTF-8 JSON)
              · record*
    record  = b"FRAM" · u32 payload length · u32 CRC-32 of the payload · payload
    payload = compressed(u32 m · meta (m bytes of JSON) · depth bytes · colour bytes)

The header says the compression (``zstd`` or ``zlib``) and what wrote the file. Each record's meta
holds seq, stamp, frame_id, the intrinsics (so decimated or resized streams round-trip), the depth
encoding and whether colour follows. Depth is stored bit-exact: ``f32`` (float32, byte-shuffled so
it compresses) or ``z16`` (uint16 units × ``depth_scale``, chosen only when that reproduces every
float32 value exactly, as it does for RealSense z16 × scale). Colour is (H, W, 3) uint8 RGB.

Records are appended and flushed one by one, so a recording can be read while it is written, and a
file cut short (a crash, a full disk) reads every whole frame; the reader then reports what was
left (``RecordingReader.problem``).

This module must not import the server or the CLI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics
from depthcloud.errors import (
    ConfigError,
    FormatError,
    InputError,
    OutputExistsError,
    SourceError,
    SourceTimeout,
)
from depthcloud.frame import Frame
from depthcloud.sources.base import FrameSource, ReconnectPolicy, SourceEnded, ThreadedSource

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "RecordingReader",
    "RecordingStats",
    "RecordingWriter",
    "ReplaySource",
    "open_replay",
    "read_recording",
    "record_source",
]

MAGIC = b"DCREC\r\n\x1a"
FORMAT_VERSION = 1
_REC_TAG = b"FRAM"
_REC_HEAD = struct.Struct("<4sII")
_FILE_HEAD = struct.Struct("<8sII")
LOOP_FALLBACK_FPS = 30.0  # the pace of a looped recording whose stamps do not say one
_MAX_PAYLOAD = 1 << 31  # one frame's compressed bytes; anything larger is a corrupt length


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def _compressor(kind: str) -> Callable[[bytes], bytes]:
    if kind == "zstd":
        zstd = _zstd()
        if zstd is None:
            raise ConfigError("compression 'zstd' needs zstandard: pip install 'depthcloud[serve]'")
        return zstd.ZstdCompressor(level=3).compress  # type: ignore[no-any-return]
    return lambda b: zlib.compress(b, 6)


def _decompressor(kind: str, path: Path) -> Callable[[bytes], bytes]:
    """Bounded: a record that would decompress past the size limit (depthcloud.io.limits) raises
    ValueError (a corrupt record) instead of allocating what a hostile header declares."""
    from depthcloud.io.limits import max_array_bytes

    limit = max_array_bytes()
    if kind == "zstd":
        zstd = _zstd()
        if zstd is None:
            raise SourceError("this recording is zstd-compressed: pip install 'depthcloud[serve]'", path=path)
        d = zstd.ZstdDecompressor()

        def unzstd(b: bytes) -> bytes:
            declared = zstd.frame_content_size(b)
            if declared > limit:
                raise ValueError(f"the record declares {declared} bytes once decompressed, over the limit of {limit}")
            return d.decompress(b, max_output_size=limit)  # type: ignore[no-any-return]

        return unzstd
    if kind == "zlib":

        def unzlib(b: bytes) -> bytes:
            z = zlib.decompressobj()
            out = z.decompress(b, limit)
            if z.unconsumed_tail:
                raise ValueError(f"the record decompresses to more than the limit of {limit} bytes")
            if not z.eof:
                raise ValueError("the record's compressed data is cut")
            return out

        return unzlib
    raise FormatError(f"unknown compression {kind!r}", path=path, key="compression")


def _remaining(fh: Any) -> int:
    """Bytes left in ``fh`` from its position."""
    here = fh.tell()
    end = fh.seek(0, os.SEEK_END)
    fh.seek(here)
    return int(end - here)


def _shuffle(a: np.ndarray) -> bytes:
    """Bytes of ``a`` grouped by byte position (all first bytes, then all second bytes…)."""
    return np.ascontiguousarray(a.view(np.uint8).reshape(-1, a.dtype.itemsize).T).tobytes()


def _unshuffle(buf: bytes, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    size = np.dtype(dtype).itemsize
    planes = np.frombuffer(buf, dtype=np.uint8).reshape(size, -1)
    return np.ascontiguousarray(planes.T).view(dtype).reshape(shape)


def _exact_z16(depth: np.ndarray, scale: float) -> np.ndarray | None:
    """uint16 units u with float32(u) * float32(scale) == depth everywhere, or None."""
    s = np.float32(scale)
    if not np.isfinite(depth).all() or depth.min() < 0 or depth.max() > 65535 * float(s):
        return None
    units = np.rint(depth / s).astype(np.uint16)
    if not np.array_equal(units.astype(np.float32) * s, depth):
        return None
    return units


@dataclass(frozen=True)
class RecordingStats:
    """What a recording run did: frames written, frames the source dropped or missed meanwhile,
    bytes on disk, seconds it took."""

    frames: int
    dropped: int
    missed: int
    bytes: int
    seconds: float


class RecordingWriter:
    """Writes Frames to a ``.dcrec`` file; use as a context manager.

    compression: ``"zstd"`` (default when zstandard is installed) or ``"zlib"``. depth_scale: store
    depth as z16 units of this many metres whenever that is exact (else float32). overwrite: replace
    an existing file (else OutputExistsError). source: a free-text note kept in the header.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        compression: str | None = None,
        depth_scale: float | None = None,
        overwrite: bool = False,
        source: str = "",
    ) -> None:
        self.path = Path(path)
        kind = compression or ("zstd" if _zstd() is not None else "zlib")
        if kind not in ("zstd", "zlib"):
            raise InputError(f"compression: expected 'zstd' or 'zlib', got {kind!r}")
        self.compression = kind
        self._compress = _compressor(kind)
        self.depth_scale = None if depth_scale is None else v.number("depth_scale", depth_scale, positive=True)
        if self.path.exists() and not overwrite:
            raise OutputExistsError("exists; pass --overwrite to replace it", path=self.path)
        if self.path.is_dir():
            raise InputError("is a folder, expected a file path", path=self.path)
        header = {
            "format": "depthcloud recording", "version": FORMAT_VERSION, "compression": kind,
            "source": source, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        head = json.dumps(header).encode()
        try:
            self._fh: IO[bytes] | None = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror}", path=self.path) from exc
        self._fh.write(_FILE_HEAD.pack(MAGIC, FORMAT_VERSION, len(head)) + head)
        self._fh.flush()
        self.frames = 0

    def write(self, frame: Frame) -> None:
        """Append one frame (flushed, so readers see it at once)."""
        if self._fh is None:
            raise InputError("write: the recording is closed", path=self.path)
        if not isinstance(frame, Frame):
            raise InputError(f"frame: expected Frame, got {type(frame).__name__}")
        depth = frame.depth
        units = None if self.depth_scale is None else _exact_z16(depth, self.depth_scale)
        meta: dict[str, Any] = {
            "seq": int(frame.seq), "stamp": float(frame.stamp), "frame_id": frame.frame_id,
            "intrinsics": frame.intrinsics.to_dict(), "color": frame.color is not None,
        }
        if units is not None:
            meta["depth"] = "z16"
            meta["depth_scale"] = self.depth_scale
            depth_bytes = _shuffle(units)
        else:
            meta["depth"] = "f32"
            depth_bytes = _shuffle(np.ascontiguousarray(depth, dtype="<f4"))
        mb = json.dumps(meta).encode()
        parts = [struct.pack("<I", len(mb)), mb, depth_bytes]
        if frame.color is not None:
            parts.append(np.ascontiguousarray(frame.color).tobytes())
        payload = self._compress(b"".join(parts))
        self._fh.write(_REC_HEAD.pack(_REC_TAG, len(payload), zlib.crc32(payload)) + payload)
        self._fh.flush()
        self.frames += 1

    @property
    def bytes_written(self) -> int:
        return self.path.stat().st_size

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class RecordingReader:
    """Reads a ``.dcrec`` file frame by frame.

    ``header`` is the file's header dict. Iterating yields Frames until the end or the first record
    that is not whole or fails its checksum; ``problem`` then says what was left (None for a clean
    end), ``frames_read`` how many frames came out. Raises SourceError for a missing file and
    FormatError for a file that is not a depthcloud recording.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError("no such recording", path=self.path)
        self._fh: IO[bytes] | None = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        self._decompress = _decompressor(str(self.header.get("compression")), self.path)
        self._data_start = self._fh.tell()
        self.problem: str | None = None
        self.frames_read = 0

    def _read_header(self) -> dict[str, Any]:
        assert self._fh is not None
        raw = self._fh.read(_FILE_HEAD.size)
        if len(raw) < _FILE_HEAD.size or raw[:8] != MAGIC:
            raise FormatError("not a depthcloud recording (bad magic bytes)", path=self.path)
        _, version, n = _FILE_HEAD.unpack(raw)
        if n > _remaining(self._fh):
            raise FormatError(f"the recording header declares {n} bytes but the file has {_remaining(self._fh)} left",
                              path=self.path)
        if version > FORMAT_VERSION:
            raise FormatError(
                f"recording format version {version} is newer than this depthcloud reads ({FORMAT_VERSION})",
                path=self.path,
            )
        head = self._fh.read(n)
        try:
            header = json.loads(head.decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError("the recording header is damaged", path=self.path) from exc
        if not isinstance(header, dict):
            raise FormatError("the recording header is not an object", path=self.path)
        return header

    def rewind(self) -> None:
        assert self._fh is not None
        self._fh.seek(self._data_start)
        self.problem = None

    def offsets(self) -> list[int]:
        """The byte offset of every record, from a walk over the record headers (nothing is read
        beyond them or decompressed); stops at the first header that is cut or not a record. Leaves
        the reader at the first record. With :meth:`seek`, a reader can start at any frame."""
        assert self._fh is not None
        size = self.path.stat().st_size
        out: list[int] = []
        pos = self._data_start
        while pos + _REC_HEAD.size <= size:
            self._fh.seek(pos)
            tag, n, _ = _REC_HEAD.unpack(self._fh.read(_REC_HEAD.size))
            if tag != _REC_TAG or n > _MAX_PAYLOAD or pos + _REC_HEAD.size + n > size:
                break
            out.append(pos)
            pos += _REC_HEAD.size + n
        self.rewind()
        return out

    def seek(self, offset: int) -> None:
        """Read on from the record at byte ``offset`` (one of :meth:`offsets`)."""
        assert self._fh is not None
        if offset < self._data_start:
            raise InputError(f"offset: expected a record offset >= {self._data_start}, got {offset}")
        self._fh.seek(offset)
        self.problem = None

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read_frame()
            if frame is None:
                return
            yield frame

    def read_frame(self) -> Frame | None:
        """The next whole frame, or None at the end (see ``problem``)."""
        if self._fh is None:
            return None
        offset = self._fh.tell()
        head = self._fh.read(_REC_HEAD.size)
        if not head:
            return None
        where = f"after frame {self.frames_read} (byte {offset})"
        if len(head) < _REC_HEAD.size:
            self._stop(f"truncated: {len(head)} stray bytes {where}")
            return None
        tag, n, crc = _REC_HEAD.unpack(head)
        if tag != _REC_TAG or n > _MAX_PAYLOAD:
            self._stop(f"corrupt record header {where}")
            return None
        if n > _remaining(self._fh):  # read(n) would first allocate all n bytes
            self._stop(f"truncated: the record {where} has {_remaining(self._fh)} of {n} bytes")
            return None
        payload = self._fh.read(n)
        if len(payload) < n:
            self._stop(f"truncated: the record {where} has {len(payload)} of {n} bytes")
            return None
        if zlib.crc32(payload) != crc:
            self._stop(f"corrupt record {where}: checksum mismatch")
            return None
        try:
            frame = self._decode(self._decompress(payload))
        except (ValueError, KeyError, TypeError, InputError, zlib.error) as exc:
            self._stop(f"corrupt record {where}: {exc}")
            return None
        except Exception as exc:  # zstandard raises its own ZstdError
            self._stop(f"corrupt record {where}: {type(exc).__name__}: {exc}")
            return None
        self.frames_read += 1
        return frame

    def _stop(self, problem: str) -> None:
        self.problem = problem
        if self._fh is not None:
            self._fh.seek(0, os.SEEK_END)
        return None

    def _decode(self, blob: bytes) -> Frame:
        (m,) = struct.unpack_from("<I", blob, 0)
        meta = json.loads(blob[4 : 4 + m].decode())
        intr = Intrinsics.from_dict(meta["intrinsics"])
        h, w = intr.shape
        pos = 4 + m
        if meta["depth"] == "z16":
            units = _unshuffle(blob[pos : pos + 2 * h * w], "<u2", (h, w))
            depth = units.astype(np.float32) * np.float32(meta["depth_scale"])
            pos += 2 * h * w
        elif meta["depth"] == "f32":
            depth = _unshuffle(blob[pos : pos + 4 * h * w], "<f4", (h, w)).astype(np.float32)
            pos += 4 * h * w
        else:
            raise ValueError(f"unknown depth encoding {meta['depth']!r}")
        color = None
        if meta["color"]:
            color = np.frombuffer(blob, dtype=np.uint8, count=3 * h * w, offset=pos).reshape(h, w, 3).copy()
            pos += 3 * h * w
        if pos != len(blob):
            raise ValueError(f"payload size {len(blob)} does not match its frame ({pos})")
        return Frame(depth, intr, color, seq=int(meta["seq"]), stamp=float(meta["stamp"]),
                     frame_id=str(meta["frame_id"]))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_recording(path: str | Path) -> list[Frame]:
    """Every whole frame of a recording (raises FormatError if the file is cut short or corrupt)."""
    with RecordingReader(path) as reader:
        frames = list(reader)
        if reader.problem:
            raise FormatError(reader.problem, path=reader.path)
    return frames


class ReplaySource(ThreadedSource):
    """Plays a ``.dcrec`` recording as a FrameSource.

    realtime: keep the recorded spacing of the stamps (True) or deliver every frame as fast as the
    consumer takes it (False). loop: start over at the end; seq and stamps keep increasing across
    passes (a one-frame recording loops at ``LOOP_FALLBACK_FPS``). A file cut short plays its whole frames and then ends; ``stats.last_error`` says what
    was left.
    """

    def __init__(
        self, path: str | Path, *, realtime: bool = True, loop: bool = False,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        super().__init__(f"replay:{path}", reconnect=reconnect or ReconnectPolicy(max_retries=0))
        self.path = Path(path)
        self.realtime = bool(realtime)
        self.lossless = not self.realtime
        self.loop = bool(loop)
        self._reader: RecordingReader | None = None
        self._t0: tuple[float, float] | None = None  # (wall monotonic, stamp) of the first frame
        self._offset = (0, 0.0)  # seq and stamp added on this pass
        self._span = (0, 0.0)
        self._first: Frame | None = None
        self._last: Frame | None = None
        self.header: dict[str, Any] = {}
        # Set when the file turned out cut short or corrupt: how many whole frames played and where
        # it stopped. Logged once as a warning; a recording that replays short must not do so silently.
        self.problem: str | None = None

    def _open(self) -> None:
        self._reader = RecordingReader(self.path)
        self.header = self._reader.header

    def _read(self) -> Frame | None:
        assert self._reader is not None  # set by _open
        frame = self._reader.read_frame()
        if frame is None:
            if self._reader.problem:
                self._set_state("running", self._reader.problem)
                if self.problem is None:
                    self.problem = (f"{self.path}: the recording is cut short: {self._reader.frames_read} whole "
                                    f"frame(s) played, then {self._reader.problem}")
                    logging.getLogger(__name__).warning("%s", self.problem)
            if not self.loop or self._first is None or self._last is None:
                return None
            if self._offset == (0, 0.0):
                gap = self._last.stamp - self._first.stamp
                steps = self._last.seq - self._first.seq
                # A one-frame recording has no spacing of its own: loop it at LOOP_FALLBACK_FPS.
                period = gap / steps if gap > 0 and steps > 0 else 1.0 / LOOP_FALLBACK_FPS
                self._span = (self._last.seq - self._first.seq + 1, gap + period)
            self._offset = (self._offset[0] + self._span[0], self._offset[1] + self._span[1])
            self._reader.rewind()
            frame = self._reader.read_frame()
            if frame is None:
                return None
        if self._offset == (0, 0.0):
            self._first = self._first or frame
            self._last = frame
        if self._offset != (0, 0.0):
            frame = Frame(frame.depth, frame.intrinsics, frame.color, seq=frame.seq + self._offset[0],
                          stamp=frame.stamp + self._offset[1], frame_id=frame.frame_id)
        if self.realtime:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = (now, frame.stamp)
            due = self._t0[0] + (frame.stamp - self._t0[1])
            if due > now and self._stop_event.wait(due - now):
                return None
        return frame

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def open_replay(arg: str, **options: Any) -> ReplaySource:
    """The ``replay:PATH`` source spec; options: realtime, loop, reconnect."""
    if not arg:
        raise ConfigError("replay: expected 'replay:PATH'")
    # A wrong path is the user's to fix now, not something a reconnect policy should wait out.
    if not Path(arg).is_file():
        raise SourceError("no such recording", path=arg)
    return ReplaySource(arg, **options)


async def record_source(
    source: FrameSource,
    path: str | Path,
    *,
    frames: int | None = None,
    seconds: float | None = None,
    overwrite: bool = False,
    compression: str | None = None,
    on_frame: Callable[[Frame], None] | None = None,
) -> RecordingStats:
    """Record ``source`` to ``path`` until ``frames`` frames or ``seconds`` seconds (counted from the
    moment the source is open) or the source's end; with neither limit, until the end (for sources
    that have one: files). Starts and stops the source. Compression runs off the event loop.
    ``on_frame`` is called after each frame is written (progress). The depth scale of sources that
    have one (RealSense) is used to store exact z16.
    """
    n_max = None if frames is None else v.integer("frames", frames, low=1)
    t_max = None if seconds is None else v.number("seconds", seconds, positive=True)
    scale = getattr(source, "depth_scale", None)
    writer = RecordingWriter(path, compression=compression, overwrite=overwrite, source=source.name)
    try:
        async with source:
            # Time counts from the open source: opening a device or a file is not recording time.
            t0 = time.monotonic()
            # The scale is known once the source is open.
            scale = getattr(source, "depth_scale", None) or scale
            writer.depth_scale = None if scale is None else float(scale)
            while n_max is None or writer.frames < n_max:
                left = None if t_max is None else t_max - (time.monotonic() - t0)
                if left is not None and left <= 0:
                    break
                try:
                    frame = await source.next_frame(timeout_s=left if left is not None else None)
                except SourceEnded:
                    break
                except SourceTimeout:
                    break  # only a --seconds deadline sets a timeout: time is up
                await asyncio.to_thread(writer.write, frame)
                if on_frame is not None:
                    on_frame(frame)
            elapsed = time.monotonic() - t0
            stats = source.stats
    finally:
        writer.close()
    return RecordingStats(writer.frames, stats.dropped, stats.missed, writer.bytes_written, elapsed)
