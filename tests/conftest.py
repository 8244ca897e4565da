"""Shared fixtures: where the real data lives, and small cameras that pin conventions."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from depthcloud.camera import Intrinsics

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("DEPTHCLOUD_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder ($DEPTHCLOUD_DATA, default ../shared/data); skips when absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DEPTHCLOUD_DATA)")
    return root


def need(data_dir: Path, sub: str) -> Path:
    p = data_dir / sub
    if not p.exists():
        pytest.skip(f"{sub} not found under {data_dir}")
    return p


def optional_import(name: str) -> ModuleType:
    """``import name``, or skip saying why: not installed, or installed but unable to load a system
    library it needs (pyrealsense2 and open3d load libusb-1.0 at import; Debian: libusb-1.0-0).

    pytest.importorskip skips only a missing module; a module whose shared library fails to load
    raises ImportError or OSError, which would fail the collection of the whole file.
    """
    try:
        return importlib.import_module(name)
    except (ImportError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = " (Debian: apt-get install libusb-1.0-0; .ci/run installs it)" if "libusb" in reason else ""
        pytest.skip(f"{name} cannot be imported: {reason}{hint}", allow_module_level=True)


async def until(cond: Callable[[], Any], timeout_s: float = 10.0) -> None:
    """Poll ``cond`` until it is true; AssertionError after ``timeout_s`` (a hang guard, not a timing)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def write_event_log(path: Path, calibration: Any, frames: Sequence[Any], *, service: str = "oak0") -> Path:
    """A farm-ng event log (Amiga .bin): ``calibration`` as /calibration (unless None), then each
    OakFrame message of ``frames`` as /disparity."""
    from farm_ng.core.event_pb2 import Event
    from farm_ng.core.uri import make_proto_uri

    from depthcloud.amiga.eventlog import EventLogWriter

    def put(writer: Any, uri_path: str, message: Any) -> None:
        payload = message.SerializeToString()
        writer.write(Event(uri=make_proto_uri(uri_path, message, service_name=service), payload_length=len(payload)),
                     payload)

    with EventLogWriter(path) as w:
        if calibration is not None:
            put(w, "/calibration", calibration)
        for f in frames:
            put(w, "/disparity", f)
    return path


@pytest.fixture
def asym_intrinsics() -> Intrinsics:
    """fx ≠ fy, principal point off-centre, H ≠ W: a transpose or swapped axis cannot pass."""
    return Intrinsics(fx=525.5, fy=480.25, cx=301.7, cy=260.3, width=64, height=48)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
