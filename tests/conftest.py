"""Shared fixtures: where the real data lives, and small cameras that pin conventions."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

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


@pytest.fixture
def asym_intrinsics() -> Intrinsics:
    """fx ≠ fy, principal point off-centre, H ≠ W: a transpose or swapped axis cannot pass."""
    return Intrinsics(fx=525.5, fy=480.25, cx=301.7, cy=260.3, width=64, height=48)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
