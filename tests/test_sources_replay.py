"""The .dcrec recording format and the replay source: exact round trips, z16, truncation, corruption."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import need

from depthcloud.camera import Intrinsics
from depthcloud.errors import ConfigError, FormatError, InputError, OutputExistsError, SourceError
from depthcloud.frame import Frame
from depthcloud.sources import open_source
from depthcloud.sources.replay import (
    MAGIC,
    RecordingReader,
    RecordingWriter,
    ReplaySource,
    read_recording,
    record_source,
)
from depthcloud.sources.synthetic import default_intrinsics, render_scene


def _frames(n: int, intr: Intrinsics, rng: np.random.Generator, *, color: bool = True) -> list[Frame]:
    out = []
    for i in range(n):
        d = rng.uniform(0.2, 8.0, intr.shape).astype(np.float32)
        d[0, :3] = [0.0, np.nan, np.inf]  # invalid values round-trip bit for bit too
        c = rng.integers(0, 256, (*intr.shape, 3), dtype=np.uint8) if color else None
        out.append(Frame(d, intr, c, seq=10 + 3 * i, stamp=1234.5 + i / 30 + 1e-9, frame_id="cam"))
    return out


def _same(a: Frame, b: Frame) -> bool:
    return (
        a.depth.tobytes() == b.depth.tobytes() and a.intrinsics == b.intrinsics and a.seq == b.seq
        and a.stamp == b.stamp and a.frame_id == b.frame_id
        and ((a.color is None and b.color is None) or np.array_equal(a.color, b.color))  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("compression", ["zstd", "zlib"])
def test_round_trip_is_bit_exact(tmp_path: Path, rng: np.random.Generator, asym_intrinsics: Intrinsics,
                                 compression: str) -> None:
    frames = _frames(3, asym_intrinsics, rng) + _frames(1, asym_intrinsics.scaled(0.5), rng, color=False)
    path = tmp_path / "a.dcrec"
    with RecordingWriter(path, compression=compression, source="test") as w:
        for f in frames:
            w.write(f)
    back = read_recording(path)
    assert len(back) == 4 and all(_same(a, b) for a, b in zip(frames, back, strict=True))
    with RecordingReader(path) as r:
        assert r.header["compression"] == compression and r.header["version"] == 1 and r.header["source"] == "test"
    assert path.read_bytes()[:8] == MAGIC


def test_degenerate_1x1_frame(tmp_path: Path) -> None:
    f = Frame(np.array([[1.5]], np.float32), Intrinsics(1.0, 1.0, 0.0, 0.0, 1, 1))
    with RecordingWriter(tmp_path / "one.dcrec") as w:
        w.write(f)
    (g,) = read_recording(tmp_path / "one.dcrec")
    assert _same(f, g)


def test_z16_is_used_only_when_exact(tmp_path: Path) -> None:
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    units = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 7
    exact = Frame(units.astype(np.float32) * np.float32(0.001), intr)
    inexact = Frame(exact.depth + np.float32(1e-4), intr)
    p = tmp_path / "z.dcrec"
    with RecordingWriter(p, depth_scale=0.001) as w:
        w.write(exact)
        w.write(inexact)
    a, b = read_recording(p)
    assert a.depth.tobytes() == exact.depth.tobytes() and b.depth.tobytes() == inexact.depth.tobytes()
    # z16 halves the raw depth bytes: the exact frame's record is much smaller than the float one.
    with RecordingWriter(tmp_path / "f.dcrec") as w:
        w.write(exact)
    assert p.stat().st_size < 2 * (tmp_path / "f.dcrec").stat().st_size


def test_synthetic_stream_compresses(tmp_path: Path) -> None:
    intr = default_intrinsics(424, 240)
    d, c = render_scene(intr, 0.5)
    with RecordingWriter(tmp_path / "s.dcrec") as w:
        w.write(Frame(d, intr, c))
    raw = d.nbytes + c.nbytes
    assert (tmp_path / "s.dcrec").stat().st_size < raw / 3


def test_truncated_file_reads_whole_frames_and_reports_the_rest(tmp_path: Path, rng: np.random.Generator) -> None:
    intr = Intrinsics(20.0, 20.0, 9.5, 7.5, 20, 16)
    frames = _frames(3, intr, rng)
    p = tmp_path / "t.dcrec"
    with RecordingWriter(p) as w:
        for f in frames:
            w.write(f)
    data = p.read_bytes()
    p.write_bytes(data[:-10])
    with RecordingReader(p) as r:
        got = list(r)
        assert len(got) == 2 and all(_same(a, b) for a, b in zip(frames, got, strict=False))
        assert r.problem is not None and r.problem.startswith("truncated: the record after frame 2")
    with pytest.raises(FormatError, match=r"t\.dcrec: truncated"):
        read_recording(p)
    # A flipped byte inside the last record fails its checksum.
    bad = bytearray(data)
    bad[-5] ^= 0xFF
    p.write_bytes(bytes(bad))
    with RecordingReader(p) as r:
        assert len(list(r)) == 2 and "checksum mismatch" in (r.problem or "")


async def test_replay_of_truncated_file_ends_and_reports(tmp_path: Path, rng: np.random.Generator) -> None:
    intr = Intrinsics(20.0, 20.0, 9.5, 7.5, 20, 16)
    p = tmp_path / "t.dcrec"
    with RecordingWriter(p) as w:
        for f in _frames(3, intr, rng):
            w.write(f)
    p.write_bytes(p.read_bytes()[:-3])
    async with open_source(f"replay:{p}", realtime=False) as src:
        got = [f async for f in src]
    assert len(got) == 2 and "truncated" in (src.stats.last_error or "")


def test_not_a_recording(tmp_path: Path) -> None:
    p = tmp_path / "x.dcrec"
    p.write_bytes(b"PLY\nformat ascii 1.0\n")
    with pytest.raises(FormatError, match=r"x\.dcrec: not a depthcloud recording \(bad magic bytes\)"):
        RecordingReader(p)
    p.write_bytes(struct.pack("<8sII", MAGIC, 99, 2) + b"{}")
    with pytest.raises(FormatError, match="version 99 is newer"):
        RecordingReader(p)
    p.write_bytes(struct.pack("<8sII", MAGIC, 1, 5) + b"{oops")
    with pytest.raises(FormatError, match="header is damaged"):
        RecordingReader(p)
    with pytest.raises(SourceError, match="no such recording"):
        RecordingReader(tmp_path / "none.dcrec")
    with pytest.raises(ConfigError, match="expected 'replay:PATH'"):
        open_source("replay:")


async def test_replay_source_bad_file_raises_at_start(tmp_path: Path) -> None:
    p = tmp_path / "x.dcrec"
    p.write_bytes(b"not a recording at all")
    with pytest.raises(FormatError, match="not a depthcloud recording"):
        await asyncio.wait_for(open_source(f"replay:{p}").start(), 5)


def test_writer_validation(tmp_path: Path) -> None:
    p = tmp_path / "w.dcrec"
    p.write_bytes(b"")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        RecordingWriter(p)
    with pytest.raises(InputError, match="compression: expected 'zstd' or 'zlib', got 'lz4'"):
        RecordingWriter(p, overwrite=True, compression="lz4")
    with RecordingWriter(p, overwrite=True) as w, pytest.raises(InputError, match="frame: expected Frame, got ndarray"):
        w.write(np.zeros((2, 2)))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="the recording is closed"):
        w.write(Frame(np.ones((1, 1), np.float32), Intrinsics(1.0, 1.0, 0.0, 0.0, 1, 1)))


async def test_replay_realtime_pacing_and_loop(tmp_path: Path) -> None:
    p = tmp_path / "syn.dcrec"
    stats = await record_source(open_source("synthetic:32x24@20", realtime=False), p, frames=4)
    assert stats.frames == 4 and stats.dropped == 0
    t0 = time.monotonic()
    async with open_source(f"replay:{p}", loop=True) as src:
        assert isinstance(src, ReplaySource)
        got = [await src.next_frame(timeout_s=2.0) for _ in range(6)]
    elapsed = time.monotonic() - t0
    assert [f.seq for f in got] == [0, 1, 2, 3, 4, 5]  # the second pass continues the numbering
    assert [f.stamp for f in got] == pytest.approx([i / 20 for i in range(6)])
    assert elapsed >= 0.2  # five 50 ms gaps at the recorded pace


async def test_record_source_without_a_limit_records_a_finite_source_to_its_end(tmp_path: Path) -> None:
    first = tmp_path / "a.dcrec"
    await record_source(open_source("synthetic:8x8@30", realtime=False), first, frames=5)
    stats = await record_source(open_source(f"replay:{first}", realtime=False), tmp_path / "b.dcrec")
    assert stats.frames == 5
    assert [f.seq for f in read_recording(tmp_path / "b.dcrec")] == [f.seq for f in read_recording(first)]


@pytest.mark.data
async def test_bag_to_dcrec_stores_exact_z16(tmp_path: Path, data_dir: Path) -> None:
    bag = need(data_dir, "realsense_bag/single_depth_color_640x480.bag")
    p = tmp_path / "bag.dcrec"
    stats = await record_source(open_source(f"bag:{bag}", realtime=False), p, frames=10)
    assert stats.frames == 2
    async with open_source(f"bag:{bag}", realtime=False) as src:
        direct = [f async for f in src]
    back = read_recording(p)
    assert [f.seq for f in back] == [169, 170]
    for a, b in zip(direct, back, strict=True):
        assert a.depth.tobytes() == b.depth.tobytes() and a.intrinsics == b.intrinsics
    # Stored as z16: far smaller than float32 depth would be.
    assert stats.bytes < 2 * 640 * 480 * 2


def test_every_cut_point_reads_whole_frames_only(tmp_path: Path, rng: np.random.Generator) -> None:
    intr = Intrinsics(4.0, 4.0, 1.5, 1.0, 4, 3)
    frames = _frames(3, intr, rng)
    full = tmp_path / "full.dcrec"
    with RecordingWriter(full, compression="zlib") as w:
        header_end = w.bytes_written
        ends = []
        for f in frames:
            w.write(f)
            ends.append(w.bytes_written)
    data = full.read_bytes()
    cut = tmp_path / "cut.dcrec"
    for n in range(header_end, len(data) + 1):
        cut.write_bytes(data[:n])
        with RecordingReader(cut) as r:
            got = list(r)
        whole = sum(1 for e in ends if e <= n)
        assert len(got) == whole, n
        assert all(_same(a, b) for a, b in zip(frames, got, strict=False))
        assert (r.problem is None) == (n in ends or n == header_end), n


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_flipped_bytes_never_escape_as_other_errors(tmp_path: Path, pos: int, flip: int) -> None:
    intr = Intrinsics(4.0, 4.0, 1.5, 1.0, 4, 3)
    p = tmp_path / "flip.dcrec"
    with RecordingWriter(p, compression="zstd", overwrite=True) as w:
        for f in _frames(2, intr, np.random.default_rng(1)):
            w.write(f)
    data = bytearray(p.read_bytes())
    data[pos % len(data)] ^= flip
    p.write_bytes(bytes(data))
    try:
        with RecordingReader(p) as r:
            got = list(r)
    except FormatError:
        return  # the header was hit: refused as a whole, with a FormatError
    assert len(got) <= 2
    assert len(got) == 2 or r.problem is not None


async def test_looping_a_one_frame_recording_is_paced(tmp_path: Path) -> None:
    p = tmp_path / "one.dcrec"
    with RecordingWriter(p) as w:
        w.write(Frame(np.ones((2, 3), np.float32), Intrinsics(2.0, 2.0, 1.0, 0.5, 3, 2), seq=5, stamp=7.0))
    t0 = time.monotonic()
    async with open_source(f"replay:{p}", loop=True) as src:
        got = [await src.next_frame(timeout_s=2.0) for _ in range(4)]
    assert [f.seq for f in got] == [5, 6, 7, 8]
    assert [f.stamp for f in got] == pytest.approx([7.0 + i / 30 for i in range(4)])
    assert time.monotonic() - t0 >= 0.09  # three 1/30 s steps, not a busy loop
