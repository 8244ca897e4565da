"""Interop with PCL's own tools (Debian pcl-tools): they read what depthcloud writes, and depthcloud
reads what they write. Skipped when the binaries are not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from depthcloud.cloud import PointCloud
from depthcloud.io import read_pcd, read_ply, write_pcd, write_ply


def pcl_tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} not installed (Debian package pcl-tools)")
    return exe


def run(tool: str, *args: str | Path, out: Path) -> None:
    proc = subprocess.run([pcl_tool(tool), *map(str, args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.exists(), f"{tool} wrote nothing:\n{proc.stdout}{proc.stderr}"


@pytest.fixture
def cloud() -> PointCloud:
    rng = np.random.default_rng(7)
    n = 500
    return PointCloud((rng.standard_normal((n, 3)) * 4).astype(np.float32),
                      rng.integers(0, 256, (n, 3), dtype=np.uint8),
                      rng.standard_normal((n, 3)).astype(np.float32))


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "ascii"])
def test_pcl_ply2pcd_reads_our_ply(tmp_path, cloud, binary):
    src = write_ply(tmp_path / "ours.ply", cloud, binary=binary)
    out = tmp_path / "pcl.pcd"
    run("pcl_ply2pcd", "-format", "1", src, out, out=out)
    assert read_pcd(out) == cloud


@pytest.mark.parametrize("data", ["binary", "binary_compressed"])
def test_pcl_pcd2ply_reads_our_pcd(tmp_path, cloud, data):
    src = write_pcd(tmp_path / "ours.pcd", cloud, data=data)
    out = tmp_path / "pcl.ply"
    run("pcl_pcd2ply", "-format", "1", src, out, out=out)
    # PCL adds an empty 'face' element and a 'camera' element after the vertices.
    assert b"element camera 1" in out.read_bytes()[:2000]
    assert read_ply(out) == cloud


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_pcl_reads_our_pcd_of_every_kind(tmp_path, cloud, data):
    src = write_pcd(tmp_path / "ours.pcd", cloud, data=data)
    out = tmp_path / "pcl_binary.pcd"
    run("pcl_convert_pcd_ascii_binary", src, out, "1", out=out)
    assert b"DATA binary\n" in out.read_bytes()[:1000]
    assert read_pcd(out) == cloud


@pytest.mark.parametrize("mode,kind", [("0", "ascii"), ("2", "binary_compressed")])
def test_we_read_pcl_ascii_and_compressed_pcd(tmp_path, cloud, mode, kind):
    src = write_pcd(tmp_path / "ours.pcd", cloud, data="binary")
    out = tmp_path / "pcl.pcd"
    # Precision 9 makes PCL's ASCII float text exact for float32.
    run("pcl_convert_pcd_ascii_binary", src, out, mode, "9", out=out)
    assert f"DATA {kind}".encode() in out.read_bytes()[:1000]
    assert read_pcd(out) == cloud


def test_we_read_pcl_ascii_ply_with_its_default_precision(tmp_path, cloud):
    src = write_pcd(tmp_path / "ours.pcd", cloud, data="binary")
    out = tmp_path / "pcl.ply"
    run("pcl_pcd2ply", "-format", "0", src, out, out=out)
    back = read_ply(out)
    # PCL prints 8 significant digits: a float32 may come back one ulp off, colours exactly.
    np.testing.assert_allclose(back.points, cloud.points, rtol=1e-7, atol=0)
    np.testing.assert_allclose(back.normals, cloud.normals, rtol=1e-7, atol=0)
    np.testing.assert_array_equal(back.colors, cloud.colors)


def test_we_drop_the_nan_points_pcl_introduces(tmp_path, cloud):
    src = write_pcd(tmp_path / "ours.pcd", cloud, data="binary")
    out = tmp_path / "nan.pcd"
    run("pcl_pcd_introduce_nan", src, out, "30", out=out)
    text = out.read_text()
    assert "FIELDS x y z rgba" in text and "DATA ascii" in text
    body = text.split("DATA ascii\n", 1)[1].splitlines()
    nan_rows = [i for i, line in enumerate(body) if "nan" in line.lower()]
    assert 0 < len(nan_rows) < len(cloud)
    back = read_pcd(out)
    kept = np.setdiff1d(np.arange(len(cloud)), nan_rows)
    # PCL keeps x y z and packs the colour with alpha (rgba, TYPE U); the rest of each point survives.
    np.testing.assert_allclose(back.points, cloud.points[kept], rtol=1e-7, atol=0)
    np.testing.assert_array_equal(back.colors, cloud.colors[kept])
