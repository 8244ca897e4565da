"""Shared by the export tests: a small folder of synthetic depth frames with a camera file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depthcloud.camera import Intrinsics
from depthcloud.cli import main
from depthcloud.io.calibfiles import save_camera
from depthcloud.io.depthimage import write_depth_png
from depthcloud.sources.synthetic import default_intrinsics, render_scene

SMALL = default_intrinsics(32, 24)


def depth_folder(root: Path, n: int, *, corrupt: tuple[int, ...] = (), intr: Intrinsics = SMALL) -> tuple[Path, Path]:
    """``root/frames`` with n 16-bit depth PNGs of the moving synthetic scene (mm), some corrupt,
    and ``root/camera.yaml``."""
    folder = root / "frames"
    folder.mkdir(parents=True)
    for i in range(n):
        path = folder / f"d{i:04d}.png"
        if i in corrupt:
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))  # a PNG signature and then nothing whole
            continue
        depth, _ = render_scene(intr, i / 30.0)
        write_depth_png(path, depth)
    camera = save_camera(root / "camera.yaml", intr)
    return folder, camera


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def outputs(folder: Path, suffix: str = ".ply") -> dict[str, bytes]:
    """Every output file under ``folder`` (relative name → bytes), manifest excluded."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob(f"*{suffix}"))}


def leftovers(folder: Path) -> list[Path]:
    """Temporary files (half-written outputs) anywhere under ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


__all__ = ["SMALL", "depth_folder", "leftovers", "np", "outputs", "run"]
