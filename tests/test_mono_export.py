"""depthcloud.mono.export: Depth Anything V2 checkpoints → ONNX, on tiny random models of the real
architecture (no weights can be downloaded here).

One tiny DINOv2 + DPT network (hidden 32, 4 blocks, 2 heads, patch 14) gets random weights and is
saved twice: as a Hugging Face folder and as an official-layout ``.pth`` (the same tensors under the
official names, by the inverse of the module's mapping). Both are exported; PyTorch and ONNX Runtime
must agree to 1e-4 at a non-square size, and the two layouts must give the same model.

The key mapping itself was checked once, outside this suite, against the official repository's
``DepthAnythingV2`` (ViT-S, random weights, metric and relative): identical to 4e-6 m at 518×518.
At other sizes transformers' DINOv2 resamples its position embeddings slightly differently from the
official code (docs/mono.md gives the figures); the official-layout file follows transformers here so
that both layouts export the same model.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from depthcloud.errors import (  # noqa: E402
    DepthcloudError,
    FormatError,
    InputError,
    MissingDependencyError,
    OutputExistsError,
)
from depthcloud.mono import export as ex  # noqa: E402

TINY = ex._Encoder(hidden_size=32, num_layers=4, num_heads=2, out_indices=(1, 2, 3, 4),
                   neck_hidden_sizes=(8, 16, 16, 24), fusion_hidden_size=16, image_size=56)
SIZE_HW = (42, 70)  # 3 × 5 patches: non-square, and not the 4 × 4 position-embedding grid


@pytest.fixture(scope="module", autouse=True)
def tiny_encoder():
    """Make 'tiny' an encoder the exporter knows, for this module only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ex._ENCODERS, "tiny", TINY)
        yield


def _tiny_model(kind: str, max_depth: float = 20.0, seed: int = 0):
    """A transformers DepthAnythingForDepthEstimation of the tiny shape, every tensor random."""
    from transformers import DepthAnythingForDepthEstimation

    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(ex._config(ex._deps(), TINY, kind)).eval()
    with torch.no_grad():
        for p in model.parameters():  # norms, biases and layer scales too: a swapped name must show
            p.add_(0.1 * torch.randn_like(p))
    model.head.max_depth = max_depth if kind == "metric" else 1.0
    return model


def _official_state(model) -> dict:
    """``model``'s tensors under the official Depth Anything V2 names: the inverse of the mapping."""
    hf = model.state_dict()
    attention = ex._attention_names(hf.keys())
    out = {official: hf[name].clone() for official, name in ex._renamed_keys(TINY.num_layers, attention)}
    for i in range(TINY.num_layers):
        fused, parts = ex._qkv_keys(i, attention)
        for suffix in ("weight", "bias"):
            out[f"{fused}.{suffix}"] = torch.cat([hf[f"{p}.{suffix}"] for p in parts], dim=0)
    assert len(out) == len(hf) - 4 * TINY.num_layers  # per block, 3 q/k/v weight+bias pairs became 1
    return out


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["predicted_depth"], {"pixel_values": x})[0]


def _torch(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(x)).predicted_depth.numpy()


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((2, 3, *SIZE_HW)).astype(np.float32)


@pytest.fixture(scope="module")
def metric_model():
    return _tiny_model("metric", 20.0)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, metric_model) -> Path:
    folder = tmp_path_factory.mktemp("hf") / "tiny-metric-hf"
    metric_model.config.max_depth = 20
    metric_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def official_pth(tmp_path_factory, metric_model) -> Path:
    path = tmp_path_factory.mktemp("official") / "tiny_metric.pth"
    torch.save(_official_state(metric_model), path)
    return path


@pytest.fixture(scope="module")
def hf_onnx(tmp_path_factory, hf_folder) -> Path:
    out = tmp_path_factory.mktemp("out") / "hf.onnx"
    return ex.export_checkpoint(hf_folder, out, encoder="tiny", kind="metric")


@pytest.fixture(scope="module")
def official_onnx(tmp_path_factory, official_pth) -> Path:
    out = tmp_path_factory.mktemp("out") / "official.onnx"
    return ex.export_checkpoint(official_pth, out, encoder="tiny", kind="metric", max_depth_m=20)


# ---------------------------------------------------------------------------------------------
# Exact conversion


@pytest.mark.slow
def test_hf_folder_export_matches_torch(hf_onnx, metric_model, pixels):
    got, ref = _run(hf_onnx, pixels), _torch(metric_model, pixels)
    assert got.shape == ref.shape == (2, *SIZE_HW)
    assert np.max(np.abs(got - ref)) <= 1e-4
    assert got.min() > 0 and got.max() < 20  # sigmoid × 20 m
    assert got.std() > 1e-3  # the random weights make a non-constant map, so agreement means something


@pytest.mark.slow
def test_official_layout_export_matches_torch_and_hf_layout(official_onnx, hf_onnx, metric_model, pixels):
    got = _run(official_onnx, pixels)
    assert np.max(np.abs(got - _torch(metric_model, pixels))) <= 1e-4
    assert np.max(np.abs(got - _run(hf_onnx, pixels))) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("hw", [(14, 14), (56, 56), (98, 28), (126, 168)])
def test_export_runs_at_any_multiple_of_14(official_onnx, metric_model, hw):
    """The height and width stay free in the graph: other sizes, including the square grid the
    position embeddings were made for, give PyTorch's answer."""
    x = np.random.default_rng(hw[0]).standard_normal((1, 3, *hw)).astype(np.float32)
    got = _run(official_onnx, x)
    assert got.shape == (1, *hw)
    assert np.max(np.abs(got - _torch(metric_model, x))) <= 1e-4


@pytest.mark.slow
def test_metadata_and_interface(official_onnx, hf_onnx, official_pth):
    for path, name in ((official_onnx, official_pth.name), (hf_onnx, "tiny-metric-hf")):
        model = onnx.load(str(path))
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta == {"depthcloud.kind": "metric", "depthcloud.max_depth": "20", "depthcloud.encoder": "tiny",
                        "depthcloud.input_size": "518", "depthcloud.checkpoint": name}
        (inp,), (out,) = model.graph.input, model.graph.output
        assert inp.name == "pixel_values" and out.name == "predicted_depth"
        assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["batch", 3, "height", "width"]
        assert len(out.type.tensor_type.shape.dim) == 3
        # plain attention: no all-masked-row guard over every attention matrix (a quarter of the time)
        assert "IsNaN" not in {node.op_type for node in model.graph.node}


@pytest.mark.slow
def test_runtime_reads_the_export(official_onnx, metric_model):
    """depthcloud's ONNX runtime takes the file as written: kind and range from the metadata, and a
    prediction at the image's own odd size."""
    from depthcloud.mono import DepthModel

    model = DepthModel(official_onnx, input_size=28)
    assert (model.kind, model.kind_source, model.max_depth_m) == ("metric", "model metadata", 20.0)
    rgb = np.random.default_rng(3).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    depth = model.predict(rgb)
    assert depth.shape == (33, 47) and depth.dtype == np.float32
    assert depth.min() > 0 and depth.max() < 20


@pytest.mark.slow
def test_relative_export_replaces_with_overwrite(tmp_path, metric_model, pixels):
    """A relative checkpoint (same weights, ReLU head) exports as relative inverse depth, and
    overwrite=True replaces an existing file."""
    relative = _tiny_model("relative")
    relative.load_state_dict(metric_model.state_dict())
    pth = tmp_path / "tiny_relative.pth"
    torch.save(_official_state(relative), pth)
    out = tmp_path / "relative.onnx"
    out.write_bytes(b"old")
    ex.export_checkpoint(pth, out, encoder="tiny", kind="relative", overwrite=True, input_size=392)
    got = _run(out, pixels)
    ref = _torch(relative, pixels)
    assert np.max(np.abs(got - ref)) <= 1e-4
    assert got.min() >= 0 and got.max() > 0
    # Same trunk, other head: the metric model is sigmoid of the same logits × 20 where these are > 0.
    metric = _torch(metric_model, pixels)
    positive = ref > 1e-3
    np.testing.assert_allclose(metric[positive], 20 / (1 + np.exp(-ref[positive])), rtol=1e-4, atol=1e-4)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["depthcloud.kind"] == "relative" and "depthcloud.max_depth" not in meta
    assert meta["depthcloud.input_size"] == "392"
    from depthcloud.mono import DepthModel

    loaded = DepthModel(out)
    assert (loaded.kind, loaded.max_depth_m) == ("relative", None)
    assert list(tmp_path.glob(".*.tmp")) == []


# ---------------------------------------------------------------------------------------------
# The mapping, pinned against the official network's structure (no export: fast)


def _load_official_torch(path: Path):
    model, _ = ex._load_official(ex._deps(), path, "tiny", "metric", 20.0)
    return model.eval()


def test_refinenet_order_pinned(tmp_path, metric_model, pixels):
    """The official refinenet4 fuses the coarsest features alone, so its first residual unit is never
    used; refinenet1's is. A reversed fusion order would swap which change shows."""
    state = _official_state(metric_model)
    x = pixels[:1]
    base = _torch(metric_model, x)
    for k, should_matter in ((4, False), (1, True)):
        changed = {n: (t + 1.0 if f"refinenet{k}.resConfUnit1" in n else t) for n, t in state.items()}
        path = tmp_path / f"r{k}.pth"
        torch.save(changed, path)
        diff = np.max(np.abs(_torch(_load_official_torch(path), x) - base))
        assert bool(diff > 1e-3) == should_matter, (k, diff)


def test_official_layout_has_the_official_names(metric_model):
    """The names the mapping produces are the official checkpoint's: spot checks written from the
    official DINOv2/DPT modules, not from the mapping."""
    names = set(_official_state(metric_model))
    expected = {
        "pretrained.cls_token", "pretrained.pos_embed", "pretrained.mask_token", "pretrained.patch_embed.proj.weight",
        "pretrained.blocks.0.attn.qkv.weight", "pretrained.blocks.3.attn.proj.bias", "pretrained.blocks.2.ls1.gamma",
        "pretrained.blocks.1.mlp.fc2.weight", "pretrained.norm.bias", "depth_head.projects.3.weight",
        "depth_head.resize_layers.0.weight", "depth_head.resize_layers.3.bias", "depth_head.scratch.layer4_rn.weight",
        "depth_head.scratch.refinenet4.resConfUnit1.conv2.bias", "depth_head.scratch.refinenet1.out_conv.weight",
        "depth_head.scratch.output_conv1.weight", "depth_head.scratch.output_conv2.2.bias",
    }
    assert expected <= names
    assert not any(n.startswith(("backbone.", "neck.", "head.")) for n in names)
    assert "depth_head.resize_layers.2.weight" not in names  # an identity in the official head
    state = _official_state(metric_model)
    assert state["pretrained.blocks.0.attn.qkv.weight"].shape == (3 * 32, 32)
    assert state["depth_head.resize_layers.0.weight"].shape[-1] == 4  # ×4 transposed conv


def test_training_checkpoint_wrapper_and_ddp_prefix_accepted(tmp_path, metric_model, pixels):
    """metric_depth/train.py saves {'model': DDP state_dict, 'optimizer': ..., 'epoch': ...}."""
    state = {f"module.{n}": t for n, t in _official_state(metric_model).items()}
    path = tmp_path / "latest.pth"
    torch.save({"model": state, "epoch": 3}, path)
    x = pixels[:1]
    assert np.max(np.abs(_torch(_load_official_torch(path), x) - _torch(metric_model, x))) <= 1e-5


def test_hf_folder_saved_by_transformers_4_loads(tmp_path, hf_folder, metric_model, pixels, capfd):
    """Hub folders were written by transformers 4, whose DINOv2 attention had other names; whichever
    version is installed must load them to the same network, without progress bars on the terminal."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "v4"
    folder.mkdir()
    (folder / "config.json").write_text((hf_folder / "config.json").read_text())
    renames = list(zip(ex._ATTENTION_NAMES["v5"], ex._ATTENTION_NAMES["v4"], strict=True))
    state = {}
    for name, tensor in load_file(hf_folder / "model.safetensors").items():
        for new, old in renames:
            name = name.replace(f".{new}.", f".{old}.")
        state[name] = tensor
    assert "backbone.encoder.layer.0.attention.attention.query.weight" in state
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    capfd.readouterr()
    model, max_depth = ex._load_hf(ex._deps(), folder, "tiny", "metric", None)
    assert max_depth == 20
    x = pixels[:1]
    assert np.max(np.abs(_torch(model, x) - _torch(metric_model, x))) <= 1e-5  # eager vs fused attention
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out


# ---------------------------------------------------------------------------------------------
# Bad input: one clean error, nothing written


def test_missing_checkpoint(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ex.export_checkpoint(tmp_path / "nope.pth", tmp_path / "m.onnx", encoder="vits", kind="metric", max_depth_m=20)


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "depth_anything_v2_vits.pth"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    with pytest.raises(FormatError, match="not a readable PyTorch checkpoint"):
        ex.export_checkpoint(bad, tmp_path / "m.onnx", encoder="vits", kind="relative")
    assert not (tmp_path / "m.onnx").exists()


def test_not_a_depth_anything_state_dict(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(FormatError, match="not a Depth Anything V2 checkpoint"):
        ex.export_checkpoint(other, tmp_path / "m.onnx", encoder="vits", kind="relative")


def test_wrong_encoder_names_the_one_that_fits(tmp_path, official_pth):
    with pytest.raises(InputError, match=r"--encoder vits does not fit: these weights are tiny .*pass --encoder tiny"):
        ex.export_checkpoint(official_pth, tmp_path / "m.onnx", encoder="vits", kind="metric", max_depth_m=20)


def test_wrong_encoder_hf_folder(tmp_path, hf_folder):
    with pytest.raises(InputError, match="pass --encoder tiny"):
        ex.export_checkpoint(hf_folder, tmp_path / "m.onnx", encoder="vitl", kind="metric")


def test_unknown_shape_fits_no_encoder(tmp_path, official_pth):
    state = torch.load(official_pth, weights_only=True)
    state = {n: t for n, t in state.items() if not n.startswith("pretrained.blocks.3.")}  # 3 blocks
    path = tmp_path / "cut.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match=r"3 blocks\) fit none of"):
        ex.export_checkpoint(path, tmp_path / "m.onnx", encoder="tiny", kind="metric", max_depth_m=20)


def test_missing_tensor_is_a_format_error(tmp_path, official_pth):
    state = torch.load(official_pth, weights_only=True)
    del state["depth_head.scratch.output_conv1.bias"]
    path = tmp_path / "holed.pth"
    torch.save(state, path)
    with pytest.raises(FormatError, match="do not fit a Depth Anything V2 tiny: Missing key"):
        ex.export_checkpoint(path, tmp_path / "m.onnx", encoder="tiny", kind="metric", max_depth_m=20)


def test_kind_against_official_file_name(tmp_path, official_pth):
    named = tmp_path / "depth_anything_v2_metric_hypersim_vits.pth"
    named.write_bytes(official_pth.read_bytes())
    with pytest.raises(InputError, match=r"says a metric \(hypersim\) model.*pass --kind metric"):
        ex.export_checkpoint(named, tmp_path / "m.onnx", encoder="tiny", kind="relative")
    with pytest.raises(InputError, match="trained to 20 m, but max depth 80"):
        ex.export_checkpoint(named, tmp_path / "m.onnx", encoder="tiny", kind="metric", max_depth_m=80)
    relative_name = tmp_path / "depth_anything_v2_vitb.pth"
    relative_name.write_bytes(official_pth.read_bytes())
    with pytest.raises(InputError, match=r"says a relative model.*pass --kind relative"):
        ex.export_checkpoint(relative_name, tmp_path / "m.onnx", encoder="tiny", kind="metric", max_depth_m=20)


def test_metric_range_needed_when_the_name_does_not_say(tmp_path, official_pth):
    with pytest.raises(InputError, match=r"--max-depth 20 .*--max-depth 80"):
        ex.export_checkpoint(official_pth, tmp_path / "m.onnx", encoder="tiny", kind="metric")


def test_kind_against_hf_config(tmp_path, hf_folder):
    with pytest.raises(InputError, match=r"config.json says a metric model.*pass --kind metric"):
        ex.export_checkpoint(hf_folder, tmp_path / "m.onnx", encoder="tiny", kind="relative")
    with pytest.raises(InputError, match=r"config.json says max_depth 20, but 80"):
        ex.export_checkpoint(hf_folder, tmp_path / "m.onnx", encoder="tiny", kind="metric", max_depth_m=80)


def test_hf_folder_problems(tmp_path, hf_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"needs config.json"):
        ex.export_checkpoint(empty, tmp_path / "m.onnx", encoder="tiny", kind="metric")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((hf_folder / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(FormatError, match="cannot load the weights"):
        ex.export_checkpoint(broken, tmp_path / "m.onnx", encoder="tiny", kind="metric")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "dinov2"}))
    with pytest.raises(FormatError, match="expected a depth_anything model"):
        ex.export_checkpoint(other, tmp_path / "m.onnx", encoder="tiny", kind="metric")
    assert not (tmp_path / "m.onnx").exists()


def test_existing_output_refused_before_any_work(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    ck = tmp_path / "whatever.pth"
    ck.write_bytes(b"not even read")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        ex.export_checkpoint(ck, out, encoder="vits", kind="relative")
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"encoder": "vitg"}, "encoder: expected one of vits, vitb, vitl"),
    ({"kind": "absolute"}, "kind: expected one of metric, relative"),
    ({"kind": "relative", "max_depth_m": 20}, "relative model has no depth range"),
    ({"max_depth_m": -1}, "max_depth_m: expected a positive"),
    ({"max_depth_m": float("nan")}, "max_depth_m: expected a positive"),
    ({"input_size": 500}, "input_size: expected a positive multiple of 14"),
    ({"input_size": 0}, "input_size"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    args = {"encoder": "vits", "kind": "metric", "max_depth_m": 20.0, **kwargs}
    with pytest.raises(InputError, match=match):
        ex.export_checkpoint(tmp_path / "x.pth", tmp_path / "m.onnx", **args)


def test_missing_dependency_names_the_extra(tmp_path, monkeypatch, official_pth):
    real_import = builtins.__import__

    def no_onnxscript(name, *args, **kwargs):
        if name == "onnxscript":
            raise ImportError("No module named 'onnxscript'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxscript)
    with pytest.raises(MissingDependencyError, match=r"onnxscript .*depthcloud\[mono-export\]"):
        ex.export_checkpoint(official_pth, tmp_path / "m.onnx", encoder="tiny", kind="metric", max_depth_m=20)


def test_model_that_disagrees_with_torch_is_not_written(tmp_path, monkeypatch, official_pth):
    """The ONNX Runtime check guards the rename: a graph that computes something else (here the
    channel mean of the input) raises and leaves no file, not even a temporary one."""
    from onnx import TensorProto, helper

    def wrong_graph(d, model):
        graph = helper.make_graph(
            [helper.make_node("ReduceMean", ["pixel_values", "axes"], ["predicted_depth"], keepdims=0)], "wrong",
            [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
            [helper.make_tensor_value_info("predicted_depth", TensorProto.FLOAT, ["batch", "height", "width"])],
            [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", ex.OPSET)])

    monkeypatch.setattr(ex, "_to_onnx", wrong_graph)
    out = tmp_path / "m.onnx"
    with pytest.raises(DepthcloudError, match="differs from PyTorch"):
        ex.export_checkpoint(official_pth, out, encoder="tiny", kind="metric", max_depth_m=20)
    assert list(tmp_path.iterdir()) == []
