"""The FrameSource contract: newest frame wins, drops counted, timeouts, failure, reconnect, end."""

from __future__ import annotations

import asyncio
import re
import threading

import numpy as np
import pytest

from depthcloud.camera import Intrinsics
from depthcloud.errors import ConfigError, InputError, SourceError, SourceTimeout
from depthcloud.frame import Frame
from depthcloud.sources import (
    FrameSource,
    ReconnectPolicy,
    SourceEnded,
    ThreadedSource,
    known_schemes,
    open_source,
    register_source,
)
from depthcloud.sources.base import RateLimiter

INTR = Intrinsics(10.0, 11.0, 3.5, 2.5, 8, 6)


def _frame(seq: int) -> Frame:
    return Frame(np.full((6, 8), 1.0 + seq, np.float32), INTR, seq=seq, stamp=seq * 0.1)


class Scripted(ThreadedSource):
    """Reads from a script: a Frame, an exception to raise, or None (end)."""

    def __init__(self, script: list[object], *, open_fails: int = 0, reconnect: ReconnectPolicy | None = None):
        super().__init__("scripted", reconnect=reconnect)
        self.script = list(script)
        self.open_fails = open_fails
        self.opens = 0
        self.closes = 0
        self.gate = threading.Event()
        self.gate.set()

    def _open(self) -> None:
        self.opens += 1
        if self.opens > 1 and self.open_fails > 0:
            self.open_fails -= 1
            raise SourceError("still gone")

    def _read(self) -> Frame | None:
        self.gate.wait()
        if not self.script:
            self._stop_event.wait()
            return None
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    def _close(self) -> None:
        self.closes += 1


FAST = ReconnectPolicy(max_retries=2, backoff_s=0.01, max_backoff_s=0.02)


async def test_frames_in_order_then_end() -> None:
    src = Scripted([_frame(0), _frame(1), _frame(2), None])
    src.lossless = True
    async with src:
        got = [f.seq async for f in src]
    assert got == [0, 1, 2]
    assert src.stats.state == "stopped" and src.stats.frames == 3 and src.stats.dropped == 0
    assert src.closes == 1


async def test_slow_consumer_gets_newest_and_drops_are_counted() -> None:
    src = Scripted([_frame(i) for i in range(5)])
    async with src:
        for _ in range(500):  # let the thread publish all five (polling: no fixed sleep to be too short)
            if src.stats.frames == 5:
                break
            await asyncio.sleep(0.01)
        frame = await src.next_frame(timeout_s=1.0)
        assert frame.seq == 4
        assert src.stats.frames == 5 and src.stats.dropped == 4
        # The same frame is never handed out twice.
        with pytest.raises(SourceTimeout, match=r"scripted: no frame within 0\.05 s"):
            await src.next_frame(timeout_s=0.05)


async def test_next_frame_before_start_and_after_stop() -> None:
    src = Scripted([_frame(0)])
    with pytest.raises(SourceError, match="not started"):
        await src.next_frame(timeout_s=0.1)
    await src.start()
    await src.stop()
    await src.stop()  # idempotent
    assert src.stats.state == "stopped"


async def test_device_loss_reconnects_then_recovers() -> None:
    src = Scripted([_frame(0), SourceError("device lost: Frame didn't arrive within 5000"), _frame(1)], reconnect=FAST)
    async with src:
        a = await src.next_frame(timeout_s=1.0)
        b = await src.next_frame(timeout_s=1.0)
    assert (a.seq, b.seq) == (0, 1)
    st = src.stats
    assert st.reconnects == 1 and "device lost" in (st.last_error or "") and src.opens == 2


async def test_device_gone_for_good_fails_after_the_policy() -> None:
    src = Scripted([SourceError("device lost")], open_fails=10, reconnect=FAST)
    async with src:
        with pytest.raises(SourceError, match=r"failed: still gone \(gave up after 2 reconnect attempts\)"):
            await asyncio.wait_for(src.next_frame(), 5.0)  # no timeout given: must not hang
    assert src.stats.state == "failed" and src.stats.reconnects == 2


async def test_unexpected_exception_fails_at_once() -> None:
    src = Scripted([ValueError("bug")], reconnect=FAST)
    async with src:
        with pytest.raises(SourceError, match="failed: ValueError: bug"):
            await asyncio.wait_for(src.next_frame(), 5.0)


async def test_open_failure_raises_from_start() -> None:
    class NoDevice(Scripted):
        def _open(self) -> None:
            raise SourceError("no device connected")

    src = NoDevice([])
    with pytest.raises(SourceError, match="no device connected"):
        async with src:
            pass
    assert src.stats.state == "failed"


async def test_end_raises_source_ended_from_next_frame() -> None:
    src = Scripted([_frame(7), None])
    src.lossless = True
    async with src:
        assert (await src.next_frame(timeout_s=1.0)).seq == 7
        with pytest.raises(SourceEnded, match="ended after 1 frames"):
            await src.next_frame(timeout_s=1.0)


def test_reconnect_policy_backoff_and_validation() -> None:
    p = ReconnectPolicy(max_retries=3, backoff_s=0.5, backoff_factor=2.0, max_backoff_s=1.5)
    assert [p.delay_s(i) for i in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    with pytest.raises(InputError, match=r"reconnect\.max_retries"):
        ReconnectPolicy(max_retries=-1)
    with pytest.raises(InputError, match=r"reconnect\.backoff_factor"):
        ReconnectPolicy(backoff_factor=0.5)


def test_rate_limiter_catches_up_then_counts_missed_ticks() -> None:
    stop = threading.Event()
    lim = RateLimiter(1000.0, max_lag=4)
    assert lim.wait(stop) == 0
    assert lim._next is not None
    lim._next -= 0.0030  # ~3 ticks behind: within max_lag, run them back to back, skip none
    assert [lim.wait(stop) for _ in range(3)] == [0, 0, 0]
    lim._next -= 0.0105  # ~10 ticks behind: the oldest ~6 are skipped, the last 4 are caught up
    assert 5 <= lim.wait(stop) <= 7
    stop.set()
    assert lim.wait(stop) == -1
    with pytest.raises(InputError, match="rate_hz: expected a positive number"):
        RateLimiter(0.0)


def test_registry_custom_scheme_and_errors() -> None:
    made: list[str] = []

    def factory(arg: str, **options: object) -> FrameSource:
        made.append(arg)
        return Scripted([])

    register_source("testscheme", factory, syntax="testscheme:X")
    assert isinstance(open_source("testscheme:abc"), Scripted) and made == ["abc"]
    assert known_schemes()["testscheme"] == "testscheme:X"
    for s in ("synthetic", "replay", "bag", "realsense", "amiga"):
        assert s in known_schemes()
    with pytest.raises(InputError, match="scheme: expected a name"):
        register_source("bad scheme", factory)
    with pytest.raises(ConfigError, match=r"unknown scheme 'nope'.*replay:PATH"):
        open_source("nope")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("synthetic:8x8@30", "fps, frame_id, frames, intrinsics, realtime, reconnect, scene"),
        ("replay:x.dcrec", "loop, realtime, reconnect"),
        ("bag:x.bag", "color, frame_id, loop, realtime, reconnect"),
        ("realsense", "color, fps, frame_id, height"),
        ("amiga:oak0.bin", "align_socket, every_n, fps, name, timeout_s"),
    ],
)
def test_unknown_source_options_name_the_valid_ones(spec, expected):
    """Issue 14: open_source("amiga:…", bogus=1) was a raw TypeError from a constructor."""
    from depthcloud.sources import open_source

    with pytest.raises(ConfigError, match=r"unknown option 'bogus'; the '\w+' source takes " + re.escape(expected)):
        open_source(spec, bogus=1)


def test_sources_with_untyped_options_are_not_second_guessed():
    from depthcloud.sources import _REGISTRY, open_source, register_source

    seen = {}

    def factory(arg, **options):
        seen.update(options)
        return options

    register_source("plugin_w14", factory)
    try:
        open_source("plugin_w14:x", anything=1)
    finally:
        _REGISTRY.pop("plugin_w14")
    assert seen == {"anything": 1}
