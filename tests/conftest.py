"""Shared fixtures: where the real data lives, and small cameras that pin conventions."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture
def asym_intrinsics() -> Intrinsics:
    """fx ≠ fy, principal point off-centre, H ≠ W: a transpose or swapped axis cannot pass."""
    return Intrinsics(fx=525.5, fy=480.25, cx=301.7, cy=260.3, width=64, height=48)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
