"""depthcloud.mono.runtime: Depth Anything V2's resize rule, normalisation, and the ONNX model interface."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthcloud.errors import FormatError, InputError
from depthcloud.mono.runtime import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DepthModel,
    network_size,
    preprocess,
    resize_prediction,
)
from mono_onnx import gray_model, plane_model


def _reference_size(w: int, h: int, size: int = 518, m: int = 14) -> tuple[int, int]:
    # Written from the rule in words: scale to the larger of size/w and size/h (the shorter side becomes
    # `size`), round each side to a multiple of m, round up instead if that falls below `size`.
    s = max(size / w, size / h)
    out = []
    for n in (w, h):
        y = int(np.round(n * s / m) * m)
        out.append(y if y >= size else int(math.ceil(n * s / m) * m))
    return out[0], out[1]


@pytest.mark.parametrize(("w", "h", "expect"), [
    (640, 480, (686, 518)), (1920, 1080, (924, 518)), (641, 479, (700, 518)), (479, 641, (518, 700)),
    (518, 518, (518, 518)), (100, 50, (1036, 518)), (1, 1, (518, 518)),
])
def test_network_size_known_values(w: int, h: int, expect: tuple[int, int]) -> None:
    assert network_size(w, h) == expect == _reference_size(w, h)


def test_network_size_invariants_over_many_sizes() -> None:
    rng = np.random.default_rng(1)
    for w, h in rng.integers(1, 4000, size=(300, 2)):
        nw, nh = network_size(int(w), int(h))
        assert nw % 14 == 0 and nh % 14 == 0
        assert min(nw, nh) >= 518 and min(nw, nh) < 518 + 14
        assert (nw, nh) == _reference_size(int(w), int(h))
        # aspect kept to within the rounding to whole patches
        assert abs(nw / nh - w / h) <= (w / h) * 14 / min(nw, nh) + 1e-9


def test_network_size_configurable() -> None:
    assert network_size(640, 480, input_size=266) == (350, 266)
    with pytest.raises(InputError, match="input_size"):
        network_size(640, 480, input_size=10)


def test_preprocess_is_bicubic_rgb_over_255_then_imagenet() -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    x = preprocess(rgb)
    nw, nh = network_size(53, 37)
    assert x.shape == (1, 3, nh, nw) and x.dtype == np.float32
    ref = cv2.resize(rgb.astype(np.float64) / 255.0, (nw, nh), interpolation=cv2.INTER_CUBIC)
    ref = (ref - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), ref, atol=2e-5)
    # channel 0 is red: a pure red image has a high channel 0 and low channels 1, 2
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 255
    y = preprocess(red)[0, :, 5, 5]
    assert y[0] > 2.0 and y[1] < -1.9 and y[2] < -1.7


def test_resize_prediction_uses_pixel_centres() -> None:
    # a linear ramp in u stays linear under the pixel-centre rule u' = (u + 0.5)·s − 0.5
    pred = np.tile(np.arange(10, dtype=np.float32), (4, 1))
    out = resize_prediction(pred, 20, 8)
    u = np.arange(20)
    expect = np.clip((u + 0.5) * 0.5 - 0.5, 0, 9)
    np.testing.assert_allclose(out[3], expect, atol=1e-6)
    assert resize_prediction(pred, 10, 4) is not pred


def test_model_metadata_and_prediction_size(tmp_path: Path) -> None:
    m = DepthModel(plane_model(tmp_path / "p.onnx", 2.5, max_depth=20))
    assert (m.kind, m.max_depth_m, m.kind_source) == ("metric", 20.0, "model metadata")
    d = m.predict(np.zeros((479, 641, 3), np.uint8))
    assert d.shape == (479, 641) and d.dtype == np.float32 and (d == np.float32(2.5)).all()


def test_kind_override_and_rank4_output(tmp_path: Path) -> None:
    path = gray_model(tmp_path / "g.onnx", gain=1.0, offset=3.0, rank=4, kind="metric")
    m = DepthModel(path, kind="relative")
    assert m.kind == "relative" and m.kind_source == "given"
    rgb = np.full((9, 11, 3), 128, np.uint8)
    expect = np.mean((128 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)) + 3.0
    np.testing.assert_allclose(m.predict(rgb), expect, rtol=1e-5)


def test_hf_export_without_metadata_needs_kind(tmp_path: Path) -> None:
    path = plane_model(tmp_path / "hf.onnx", 1.0, kind=None)
    with pytest.raises(InputError, match="pass --kind metric or --kind relative"):
        DepthModel(path)
    assert DepthModel(path, kind="metric").kind == "metric"


def test_bad_models_raise_one_clean_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 definitely not a protobuf" * 5)
    with pytest.raises(FormatError, match="not a loadable ONNX model") as info:
        DepthModel(corrupt)
    assert "\n" not in str(info.value)
    with pytest.raises(FormatError, match=r"wrong model interface.*inputs \['image'\]"):
        DepthModel(plane_model(tmp_path / "w1.onnx", 1.0, input_name="image"))
    with pytest.raises(FormatError, match=r"wrong model interface.*outputs \['depth'\]"):
        DepthModel(plane_model(tmp_path / "w2.onnx", 1.0, output_name="depth"))
    with pytest.raises(InputError, match="no such model file"):
        DepthModel(tmp_path / "missing.onnx")
    with pytest.raises(FormatError, match=r"metadata depthcloud.kind"):
        DepthModel(plane_model(tmp_path / "k.onnx", 1.0, kind="absolute"))


def test_cuda_without_provider_is_a_clean_error(tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    with pytest.raises(InputError, match=r"no CUDA execution provider.*--device cpu"):
        DepthModel(plane_model(tmp_path / "p.onnx", 1.0), device="cuda")


def test_the_workflow_layer_imports_no_source_server_or_cli() -> None:
    import subprocess
    import sys

    code = ("import sys, depthcloud.mono; "
            "print(sorted(m for m in sys.modules if m.startswith(('depthcloud.sources', 'depthcloud.serve', "
            "'depthcloud.cli', 'depthcloud.amiga', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
