"""`depthcloud demo`: the main job on the embedded synthetic scene, checked against its geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depthcloud.cli import main
from depthcloud.cli.demo import surface_errors


def test_demo_writes_cloud_preview_and_inputs_that_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from depthcloud.io import read_cloud

    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--width", "160", "--height", "96"]) == 0
    stdout = capsys.readouterr().out
    assert str(out / "scene.ply") in stdout and str(out / "preview.png") in stdout

    cloud = read_cloud(out / "scene.ply")
    assert cloud.colors is not None and len(cloud) == 160 * 96  # the scene fills every pixel
    errors = surface_errors(cloud)
    assert {name.split()[0] for name, _, _ in errors} == {"plane", "sphere"}
    for name, n, err in errors:
        assert n > 0, name
        assert err < 1e-5, (name, err)  # float32 rounding only: the geometry is exact

    preview = cv2.imread(str(out / "preview.png"))
    assert preview is not None and preview.shape[0] > 96 and preview.shape[1] > 160

    # The written depth PNG + camera file reproduce the cloud through `depthcloud depth` (to 1 mm quantisation).
    assert main(["depth", str(out / "depth.png"), "--camera", str(out / "camera.yaml"), "--color", str(out / "color.png"),
                 "-o", str(tmp_path / "again.ply")]) == 0
    again = read_cloud(tmp_path / "again.ply")
    assert len(again) == len(cloud)
    np.testing.assert_allclose(again.points[:, 2], cloud.points[:, 2], atol=0.0005 + 1e-6)
    np.testing.assert_array_equal(again.colors, cloud.colors)  # type: ignore[arg-type]


def test_demo_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--width", "32", "--height", "24"]) == 0
    before = (out / "scene.ply").read_bytes()
    capsys.readouterr()
    assert main(["demo", "-o", str(out), "--width", "40", "--height", "24"]) == 2
    err = capsys.readouterr().err
    assert "OutputExistsError" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "scene.ply").read_bytes() == before
    assert main(["demo", "-o", str(out), "--width", "40", "--height", "24", "--overwrite"]) == 0
