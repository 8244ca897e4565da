"""The whole way, with a real Depth Anything V2 architecture: a tiny random Hugging Face checkpoint →
`depthcloud mono export` → `depthcloud mono` on a 641×479 photo → a cloud whose depth is what PyTorch
computes on the same preprocessed input, resized back to the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxscript")

from depthcloud.camera import Intrinsics  # noqa: E402
from depthcloud.cli import main  # noqa: E402
from depthcloud.geometry import Unprojector  # noqa: E402
from depthcloud.io import read_cloud, read_pfm  # noqa: E402
from depthcloud.io.depthimage import read_color  # noqa: E402
from depthcloud.mono import export as ex  # noqa: E402
from depthcloud.mono.runtime import DepthModel, preprocess, resize_prediction  # noqa: E402

TINY = ex._Encoder(hidden_size=32, num_layers=4, num_heads=2, out_indices=(1, 2, 3, 4),
                   neck_hidden_sizes=(8, 16, 16, 24), fusion_hidden_size=16, image_size=56)


@pytest.mark.slow
def test_exported_checkpoint_through_the_mono_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import DepthAnythingForDepthEstimation

    monkeypatch.setitem(ex._ENCODERS, "tiny", TINY)
    torch.manual_seed(3)
    net = DepthAnythingForDepthEstimation(ex._config(ex._deps(), TINY, "metric")).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    net.head.max_depth = 20.0
    net.config.max_depth = 20
    folder = tmp_path / "tiny-metric-hf"
    net.save_pretrained(folder)
    onnx_path = tmp_path / "tiny.onnx"
    assert main(["mono", "export", str(folder), "-o", str(onnx_path), "--encoder", "tiny", "--kind", "metric",
                 "--max-depth", "20"]) == 0
    model = DepthModel(onnx_path)
    assert (model.kind, model.max_depth_m) == ("metric", 20.0)

    rgb = np.random.default_rng(4).integers(0, 256, (479, 641, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    out = tmp_path / "photo.ply"
    assert main(["mono", str(tmp_path / "photo.png"), "-o", str(out), "--model", str(onnx_path),
                 "--fx", "520", "--fy", "515", "--cx", "322.5", "--cy", "236.25", "--save-depth"]) == 0

    x = preprocess(read_color(tmp_path / "photo.png"))
    assert x.shape == (1, 3, 518, 700)
    with torch.no_grad():
        ref = net(pixel_values=torch.from_numpy(x)).predicted_depth.numpy()[0]
    expect = resize_prediction(ref, 641, 479)
    depth = read_pfm(tmp_path / "photo.depth.pfm")
    assert depth.shape == (479, 641) and (depth > 0).all() and (depth <= 20.0).all()
    np.testing.assert_allclose(depth, expect, rtol=1e-4, atol=1e-4)
    intr = Intrinsics(520.0, 515.0, 322.5, 236.25, 641, 479)
    np.testing.assert_array_equal(read_cloud(out).points, Unprojector(intr)(depth).points)
