"""Depth Anything V2 checkpoints → the ONNX model that ``depthcloud mono`` runs.

Reads the official checkpoints (``depth_anything_v2_metric_{hypersim,vkitti}_{vits,vitb,vitl}.pth``,
``depth_anything_v2_{vits,vitb,vitl}.pth``: a plain state_dict with the official repository's names,
``pretrained.*`` for the DINOv2 backbone and ``depth_head.*`` for the DPT head) and Hugging Face
model folders (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin`` of a
``DepthAnythingForDepthEstimation``), rebuilds the network as transformers'
``DepthAnythingForDepthEstimation`` and exports it with ``torch.onnx.export`` (the dynamo exporter).

The written model has one input ``pixel_values`` float32 [N, 3, H, W] (ImageNet-normalised RGB;
H and W free, multiples of 14) and one output ``predicted_depth`` float32 [N, H, W]: metres for
metric models (the head ends in sigmoid × max depth), relative inverse depth for relative ones (ReLU).
Its ``metadata_props`` say what it is: ``depthcloud.kind`` (metric|relative), ``depthcloud.max_depth``
(metres; metric models only), ``depthcloud.encoder`` (vits|vitb|vitl),
``depthcloud.input_size`` (the shorter side the model wants, pixels) and ``depthcloud.checkpoint``
(the file or folder name it came from).

Before anything is written the exported model runs in ONNX Runtime at two sizes that differ from the
one it was traced at, and must agree with PyTorch; the file then lands through a temporary file and a
rename. torch, transformers, onnx, onnxscript and onnxruntime come with the ``mono-export`` extra and
are imported only here. This module must not run inference for users (that is the ONNX runtime's job)
and must not import the CLI.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from depthcloud.errors import (
    DepthcloudError,
    FormatError,
    InputError,
    MissingDependencyError,
    OutputExistsError,
)
from depthcloud.io._files import write_atomic

__all__ = ["KINDS", "encoders", "export_checkpoint"]

KINDS = ("metric", "relative")
PATCH = 14
OPSET = 18  # ONNX Runtime has run opset 18 since 1.14; the `mono` extra asks for >= 1.17
_EXTRA = "mono-export"


@dataclass(frozen=True)
class _Encoder:
    """The shape of one Depth Anything V2 size: its DINOv2 backbone and its DPT head."""

    hidden_size: int
    num_layers: int
    num_heads: int
    out_indices: tuple[int, ...]  # transformers' stage numbers (stage k = output of block k-1)
    neck_hidden_sizes: tuple[int, ...]
    fusion_hidden_size: int
    image_size: int = 518  # the position-embedding grid (37 × 37 patches) the backbone was trained at


# The official model taps blocks (2, 5, 8, 11) of ViT-S/B and (4, 11, 17, 23) of ViT-L, which are
# transformers' stages one higher. ViT-G (SwiGLU, 40 blocks) has no released checkpoint.
_ENCODERS: dict[str, _Encoder] = {
    "vits": _Encoder(384, 12, 6, (3, 6, 9, 12), (48, 96, 192, 384), 64),
    "vitb": _Encoder(768, 12, 12, (3, 6, 9, 12), (96, 192, 384, 768), 128),
    "vitl": _Encoder(1024, 24, 16, (5, 12, 18, 24), (256, 512, 1024, 1024), 256),
}

# What an official file name says: kind, the training set's depth range, the encoder.
_OFFICIAL_NAME = re.compile(r"depth_anything_v2_(?:metric_(?P<data>hypersim|vkitti)_)?(?P<enc>vit[sblg])\b")
_DATASET_MAX_DEPTH = {"hypersim": 20.0, "vkitti": 80.0}


# ---------------------------------------------------------------------------------------------
# Official names ↔ transformers names


def _wb(official: str, hf: str) -> list[tuple[str, str]]:
    return [(f"{official}.weight", f"{hf}.weight"), (f"{official}.bias", f"{hf}.bias")]


# transformers 5 renamed DINOv2's attention layers; the names are read off the model being loaded.
_ATTENTION_NAMES = {
    "v5": ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj"),
    "v4": ("attention.attention.query", "attention.attention.key", "attention.attention.value",
           "attention.output.dense"),
}


def _attention_names(hf_keys: Any) -> tuple[str, str, str, str]:
    """Query, key, value and output projection names (relative to an encoder layer) of a
    transformers DINOv2 whose state_dict has ``hf_keys``."""
    for names in _ATTENTION_NAMES.values():
        if f"backbone.encoder.layer.0.{names[0]}.weight" in hf_keys:
            return names
    raise DepthcloudError("this transformers version names DINOv2's attention layers in a way depthcloud does not "
                          "know; install the versions of the 'mono-export' extra")


def _renamed_keys(num_layers: int, attention: tuple[str, str, str, str]) -> list[tuple[str, str]]:
    """(official, transformers) name of every tensor that moves unchanged; the fused attention
    projection ``qkv`` is the one tensor that does not (see :func:`_qkv_keys`)."""
    pairs = [
        ("pretrained.cls_token", "backbone.embeddings.cls_token"),
        ("pretrained.mask_token", "backbone.embeddings.mask_token"),
        ("pretrained.pos_embed", "backbone.embeddings.position_embeddings"),
        *_wb("pretrained.patch_embed.proj", "backbone.embeddings.patch_embeddings.projection"),
        *_wb("pretrained.norm", "backbone.layernorm"),
    ]
    for i in range(num_layers):
        src, dst = f"pretrained.blocks.{i}", f"backbone.encoder.layer.{i}"
        for official, hf in (("norm1", "norm1"), ("norm2", "norm2"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2"),
                             ("attn.proj", attention[3])):
            pairs += _wb(f"{src}.{official}", f"{dst}.{hf}")
        pairs += [(f"{src}.ls1.gamma", f"{dst}.layer_scale1.lambda1"), (f"{src}.ls2.gamma", f"{dst}.layer_scale2.lambda1")]
    head = "depth_head"
    for i in range(4):
        pairs += _wb(f"{head}.projects.{i}", f"neck.reassemble_stage.layers.{i}.projection")
        if i != 2:  # the third reassemble step keeps the patch resolution (an identity, no weights)
            pairs += _wb(f"{head}.resize_layers.{i}", f"neck.reassemble_stage.layers.{i}.resize")
        pairs.append((f"{head}.scratch.layer{i + 1}_rn.weight", f"neck.convs.{i}.weight"))
    # The official refinenet4 fuses first (the coarsest features); transformers numbers its fusion
    # layers in the order they run, so refinenet k is fusion layer 4 - k.
    for k in range(1, 5):
        src, dst = f"{head}.scratch.refinenet{k}", f"neck.fusion_stage.layers.{4 - k}"
        pairs += _wb(f"{src}.out_conv", f"{dst}.projection")
        for unit in (1, 2):
            for conv in (1, 2):
                pairs += _wb(f"{src}.resConfUnit{unit}.conv{conv}", f"{dst}.residual_layer{unit}.convolution{conv}")
    pairs += _wb(f"{head}.scratch.output_conv1", "head.conv1")
    pairs += _wb(f"{head}.scratch.output_conv2.0", "head.conv2")  # .1 is a ReLU
    pairs += _wb(f"{head}.scratch.output_conv2.2", "head.conv3")  # .3 is the sigmoid or ReLU
    return pairs


def _qkv_keys(i: int, attention: tuple[str, str, str, str]) -> tuple[str, list[str]]:
    """The fused official attention projection of block ``i`` (rows: query, key, value, each
    hidden_size long) and the names of its three transformers parts."""
    dst = f"backbone.encoder.layer.{i}"
    return f"pretrained.blocks.{i}.attn.qkv", [f"{dst}.{name}" for name in attention[:3]]


def _official_to_hf(state: Mapping[str, Any], num_layers: int, attention: tuple[str, str, str, str]) -> dict[str, Any]:
    """An official-layout state_dict renamed for transformers; tensors it does not know are kept
    under their own names so that loading reports them as unexpected."""
    out = dict(state)
    for official, hf in _renamed_keys(num_layers, attention):
        if official in out:
            out[hf] = out.pop(official)
    for i in range(num_layers):
        fused, parts = _qkv_keys(i, attention)
        for suffix in ("weight", "bias"):
            if f"{fused}.{suffix}" in out:
                for name, chunk in zip(parts, out.pop(f"{fused}.{suffix}").chunk(3, dim=0), strict=True):
                    out[f"{name}.{suffix}"] = chunk.clone()
    return out


# ---------------------------------------------------------------------------------------------
# Dependencies and quiet third-party calls


@dataclass(frozen=True)
class _Deps:
    torch: ModuleType
    transformers: ModuleType
    onnx: ModuleType
    ort: ModuleType


def _deps() -> _Deps:
    mods = {}
    for name in ("torch", "transformers", "onnx", "onnxscript", "onnxruntime"):
        try:
            mods[name] = __import__(name)
        except ImportError as exc:
            raise MissingDependencyError.for_extra(name, _EXTRA) from exc
    return _Deps(mods["torch"], mods["transformers"], mods["onnx"], mods["onnxruntime"])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress lines and the libraries' warnings: errors still raise."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "transformers", "onnxscript")]
    levels = [lg.level for lg in loggers]
    tf_logging: Any = sys.modules.get("transformers.utils.logging")  # its progress bars go to stderr
    bars = tf_logging is not None and tf_logging.is_progress_bar_enabled()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        if bars:
            tf_logging.disable_progress_bar()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if bars:
            tf_logging.enable_progress_bar()


# ---------------------------------------------------------------------------------------------
# Loading


def _config(d: _Deps, enc: _Encoder, kind: str) -> Any:
    tf = d.transformers
    backbone = tf.Dinov2Config(
        hidden_size=enc.hidden_size, num_hidden_layers=enc.num_layers, num_attention_heads=enc.num_heads,
        intermediate_size=4 * enc.hidden_size, patch_size=PATCH, image_size=enc.image_size, layerscale_value=1.0,
        layer_norm_eps=1e-6, out_indices=list(enc.out_indices), apply_layernorm=True, reshape_hidden_states=False,
    )
    return tf.DepthAnythingConfig(
        backbone_config=backbone, patch_size=PATCH, reassemble_hidden_size=enc.hidden_size,
        neck_hidden_sizes=list(enc.neck_hidden_sizes), fusion_hidden_size=enc.fusion_hidden_size,
        depth_estimation_type=kind,
    )  # max_depth goes on the head afterwards (_with_range)


def _fits(hidden: int, layers: int) -> str:
    """Which encoder has this backbone width and depth, as words for an error message."""
    names = [n for n, e in _ENCODERS.items() if e.hidden_size == hidden and e.num_layers == layers]
    if names:
        return f"these weights are {names[0]} (hidden size {hidden}, {layers} blocks): pass --encoder {names[0]}"
    return f"these weights (hidden size {hidden}, {layers} blocks) fit none of {', '.join(_ENCODERS)}"


def _read_state(d: _Deps, path: Path) -> dict[str, Any]:
    """The state_dict of an official-layout checkpoint file, unwrapped from a training checkpoint
    (``{"model": ...}``) and from DistributedDataParallel's ``module.`` prefix when present."""
    try:
        with _quiet():
            obj = d.torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for broken files
        raise FormatError(f"not a readable PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)})",
                          path=path) from exc
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, d.torch.Tensor) for v in obj.values()):
        raise FormatError("expected a state_dict (a mapping of names to tensors)", path=path)
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    if "pretrained.cls_token" not in obj or not any(k.startswith("depth_head.") for k in obj):
        raise FormatError("not a Depth Anything V2 checkpoint (no 'pretrained.cls_token' or 'depth_head.*' tensors);"
                          " a Hugging Face model is a folder with config.json", path=path)
    return obj


def _load_official(d: _Deps, path: Path, encoder: str, kind: str, max_depth_m: float | None) -> tuple[Any, float | None]:
    hint = _OFFICIAL_NAME.search(path.name)
    if hint:
        named_kind = "metric" if hint["data"] else "relative"
        if named_kind != kind:
            what = f"a metric ({hint['data']}) model" if hint["data"] else "a relative model"
            raise InputError(f"the file name says {what}, but kind {kind!r} was given; pass --kind {named_kind}",
                             path=path)
        if hint["data"]:
            named_depth = _DATASET_MAX_DEPTH[hint["data"]]
            if max_depth_m is None:
                max_depth_m = named_depth
            elif max_depth_m != named_depth:
                raise InputError(f"a {hint['data']} model was trained to {named_depth:g} m, but max depth "
                                 f"{max_depth_m:g} was given; drop --max-depth or pass {named_depth:g}", path=path)
    if kind == "metric" and max_depth_m is None:
        raise InputError("the file name does not say the training set, so the metric head's range is unknown: pass "
                         "--max-depth 20 (indoor, Hypersim) or --max-depth 80 (outdoor, Virtual KITTI)", path=path)
    state = _read_state(d, path)
    hidden = int(state["pretrained.cls_token"].shape[-1])
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))}
    layers = max(blocks) + 1 if blocks else 0
    enc = _ENCODERS[encoder]
    if (hidden, layers) != (enc.hidden_size, enc.num_layers):
        raise InputError(f"--encoder {encoder} does not fit: {_fits(hidden, layers)}", path=path)
    with _quiet():
        model = d.transformers.DepthAnythingForDepthEstimation(_config(d, enc, kind))
    try:
        attention = _attention_names(model.state_dict().keys())
        model.load_state_dict(_official_to_hf(state, layers, attention), strict=True)
    except RuntimeError as exc:
        raise FormatError(f"the weights do not fit a Depth Anything V2 {encoder}: {_load_problem(exc)}",
                          path=path) from exc
    return _with_range(model, kind, max_depth_m), max_depth_m


def _load_hf(d: _Deps, folder: Path, encoder: str, kind: str, max_depth_m: float | None) -> tuple[Any, float | None]:
    tf = d.transformers
    if not (folder / "config.json").is_file():
        raise InputError("a Hugging Face model folder needs config.json", path=folder)
    try:
        with _quiet():
            cfg = tf.AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as exc:
        raise FormatError(f"unreadable config ({_first_line(exc)})", path=folder / "config.json") from exc
    if getattr(cfg, "model_type", None) != "depth_anything":
        raise FormatError(f"expected a depth_anything model, got model_type {getattr(cfg, 'model_type', None)!r}",
                          path=folder / "config.json")
    bb = cfg.backbone_config
    enc = _ENCODERS[encoder]
    if (bb.hidden_size, bb.num_hidden_layers) != (enc.hidden_size, enc.num_layers):
        raise InputError(f"--encoder {encoder} does not fit: {_fits(bb.hidden_size, bb.num_hidden_layers)}",
                         path=folder / "config.json")
    have = cfg.depth_estimation_type or "relative"
    if have != kind:
        raise InputError(f"config.json says a {have} model, but kind {kind!r} was given; pass --kind {have}",
                         path=folder / "config.json")
    if kind == "metric":
        have_depth = float(cfg.max_depth) if cfg.max_depth else None
        if max_depth_m is None:
            max_depth_m = have_depth
        elif have_depth is not None and max_depth_m != have_depth:
            raise InputError(f"config.json says max_depth {have_depth:g}, but {max_depth_m:g} was given; drop "
                             "--max-depth or pass the same value", path=folder / "config.json")
        if max_depth_m is None:
            raise InputError("config.json gives no max_depth for this metric model: pass --max-depth 20 (indoor) "
                             "or --max-depth 80 (outdoor)", path=folder / "config.json")
    try:
        with _quiet():
            model, info = tf.DepthAnythingForDepthEstimation.from_pretrained(
                folder, config=cfg, local_files_only=True, output_loading_info=True)
    except Exception as exc:  # missing or corrupt weight files, shape mismatches
        raise FormatError(f"cannot load the weights ({_first_line(exc)})", path=folder) from exc
    problems = [f"{what} {', '.join(sorted(keys)[:3])}" for what, keys in
                (("missing", info.get("missing_keys")), ("unexpected", info.get("unexpected_keys")),
                 ("mismatched", [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys") or []]))
                if keys]
    if problems:
        raise FormatError(f"the weights do not fit config.json: {'; '.join(problems)}", path=folder)
    return _with_range(model, kind, max_depth_m), max_depth_m


def _with_range(model: Any, kind: str, max_depth_m: float | None) -> Any:
    """``model`` in eval mode, ready to export: its head's output scale is the metric range in
    metres, or 1 for a relative model (whose config may store null there) — set on the head, not the
    config, because some transformers versions accept only integers in ``DepthAnythingConfig.max_depth``;
    and its backbone attends with plain matrix products.

    transformers gives DINOv2 PyTorch's fused attention by default, which the exporter writes out with
    a guard against rows that are all masked (``IsNaN`` + ``Where`` over every attention matrix): a
    quarter of ONNX Runtime's time on a ViT-S at 518×686, for masks this model never has. The plain
    ("eager") attention computes the same softmax(QKᵀ/√d)V without it."""
    model.head.max_depth = float(max_depth_m) if kind == "metric" and max_depth_m is not None else 1.0
    set_attention = getattr(model.backbone, "set_attn_implementation", None)
    if set_attention is not None:  # older transformers choose the attention class at construction
        set_attention("eager")
    return model.eval()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_problem(exc: RuntimeError) -> str:
    """The first concrete complaint of ``load_state_dict`` (missing/unexpected names, a size)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = [ln for ln in lines[1:] if ln]
    return (detail[0] if detail else lines[0] if lines else "load failed")[:300]


# ---------------------------------------------------------------------------------------------
# Export


def _export_module(d: _Deps, model: Any) -> Any:
    """``model``'s forward with the head's upsampling size kept symbolic.

    transformers' head turns the patch grid into ``int(patch_h * 14)``; the exporter would freeze that
    to the traced size, so this wrapper runs the same layers and asks for ``(H // 14) * 14`` directly.
    """
    torch: Any = d.torch
    functional = torch.nn.functional

    class DepthModel(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: Any) -> Any:
            m = self.inner
            features = m.backbone(pixel_values).feature_maps
            ph, pw = pixel_values.shape[2] // PATCH, pixel_values.shape[3] // PATCH
            fused = m.neck(list(features), ph, pw)
            head = m.head
            x = head.conv1(fused[head.head_in_index])
            x = functional.interpolate(x, (ph * PATCH, pw * PATCH), mode="bilinear", align_corners=True)
            x = head.conv3(head.activation1(head.conv2(x)))
            return (head.activation2(x) * head.max_depth).squeeze(1)

    return DepthModel(model).eval()


def _rename_dims(model: Any, names: Mapping[str, str]) -> None:
    """Give the exporter's symbolic dimensions (``s0``…) readable names in every shape it wrote."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: names[m.group(1)], dim.dim_param)


def _to_onnx(d: _Deps, model: Any) -> Any:
    torch = d.torch
    from torch.export import Dim

    wrapped = _export_module(d, model)
    # Batch 2 and a non-square grid that is not the position-embedding grid: the exporter must see
    # no size it could mistake for a constant.
    example = torch.zeros(2, 3, 4 * PATCH, 6 * PATCH)
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                wrapped, (example,), None, dynamo=True, opset_version=OPSET, external_data=False,
                input_names=["pixel_values"], output_names=["predicted_depth"],
                dynamic_shapes={"pixel_values": {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}},
            )
    except Exception as exc:
        raise DepthcloudError(f"ONNX export failed ({type(exc).__name__}: {_first_line(exc)})") from exc
    proto = program.model_proto
    dims = [dim.dim_param for dim in proto.graph.input[0].type.tensor_type.shape.dim]
    if not (dims[0] and dims[2] and dims[3]):
        raise DepthcloudError(f"ONNX export froze the input size ({dims}); the model would run at one size only")
    _rename_dims(proto, {dims[0]: "batch", dims[2]: "height", dims[3]: "width"})
    return proto


def _check_with_ort(d: _Deps, blob: bytes, model: Any) -> float:
    """Run the serialised model in ONNX Runtime at two new sizes; return its largest difference from
    PyTorch, or raise when it is not the same function."""
    try:
        session = d.ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise DepthcloudError(f"ONNX Runtime refuses the exported model ({_first_line(exc)})") from exc
    rng = np.random.default_rng(14)
    worst = 0.0
    for h, w in ((5 * PATCH, 7 * PATCH), (3 * PATCH, 2 * PATCH)):
        x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
        with d.torch.no_grad():
            ref = model(pixel_values=d.torch.from_numpy(x)).predicted_depth.numpy()
        got = session.run(["predicted_depth"], {"pixel_values": x})[0]
        if got.shape != ref.shape:
            raise DepthcloudError(f"the exported model gives shape {got.shape} at {w}x{h}, PyTorch {ref.shape}")
        diff = float(np.max(np.abs(got - ref)))
        if not math.isfinite(diff) or diff > 1e-4 * max(1.0, float(np.max(np.abs(ref)))):
            raise DepthcloudError(f"the exported model differs from PyTorch by {diff:.3g} at {w}x{h}")
        worst = max(worst, diff)
    return worst


def encoders() -> tuple[str, ...]:
    """The encoder sizes a checkpoint can be exported for (``vits``, ``vitb``, ``vitl``)."""
    return tuple(_ENCODERS)


def export_checkpoint(
    checkpoint: Path,
    output: Path,
    *,
    encoder: str,
    kind: str,
    max_depth_m: float | None = None,
    overwrite: bool = False,
    input_size: int = 518,
) -> Path:
    """Convert a Depth Anything V2 checkpoint to the ONNX interface of ``depthcloud mono``.

    checkpoint: an official ``.pth`` state_dict or a Hugging Face model folder.
    output: the ``.onnx`` file to write; an existing one is replaced only with ``overwrite``.
    encoder: ``vits``, ``vitb`` or ``vitl``, the size of the checkpoint (checked against its weights).
    kind: ``metric`` (metres) or ``relative`` (relative inverse depth); checked against the official
        file name or ``config.json`` when they say.
    max_depth_m: the metric head's range, 20 (indoor, Hypersim) or 80 (outdoor, Virtual KITTI); read
        from the file name or ``config.json`` when not given; refused for relative models.
    input_size: the shorter side (pixels, a multiple of 14) the runtime resizes images to; recorded
        in the metadata, not baked into the graph.
    Returns ``output``. Raises InputError (wrong arguments, encoder or kind), FormatError (unreadable
    checkpoint), OutputExistsError, MissingDependencyError (the ``mono-export`` extra).
    """
    checkpoint, output = Path(checkpoint), Path(output)
    if encoder not in _ENCODERS:
        raise InputError(f"encoder: expected one of {', '.join(_ENCODERS)}, got {encoder!r}")
    if kind not in KINDS:
        raise InputError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if max_depth_m is not None:
        if kind == "relative":
            raise InputError("max_depth_m: a relative model has no depth range; drop --max-depth")
        try:
            max_depth_m = float(max_depth_m)
        except (TypeError, ValueError):
            raise InputError(f"max_depth_m: expected a number of metres, got {max_depth_m!r}") from None
        if not (math.isfinite(max_depth_m) and max_depth_m > 0):
            raise InputError(f"max_depth_m: expected a positive number of metres, got {max_depth_m!r}")
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)) or input_size < PATCH \
            or input_size % PATCH:
        raise InputError(f"input_size: expected a positive multiple of {PATCH} (e.g. 518), got {input_size!r}")
    if not checkpoint.exists():
        raise InputError("no such file or folder", path=checkpoint)
    if output.is_dir():
        raise InputError("is a folder, expected a file path", path=output)
    if output.exists() and not overwrite:
        raise OutputExistsError("exists; pass overwrite=True (--overwrite) to replace it", path=output)

    d = _deps()
    with d.torch.no_grad():
        if checkpoint.is_dir():
            model, max_depth_m = _load_hf(d, checkpoint, encoder, kind, max_depth_m)
        else:
            model, max_depth_m = _load_official(d, checkpoint, encoder, kind, max_depth_m)
    proto = _to_onnx(d, model)
    proto.producer_name = "depthcloud"
    meta = {"depthcloud.kind": kind, "depthcloud.encoder": encoder, "depthcloud.input_size": str(int(input_size)),
            "depthcloud.checkpoint": checkpoint.name}
    if kind == "metric":  # a relative model has no range; the runtime reads the key as a positive number
        meta["depthcloud.max_depth"] = f"{max_depth_m:g}"
    d.onnx.helper.set_model_props(proto, meta)
    blob = proto.SerializeToString()
    _check_with_ort(d, blob, model)
    return write_atomic(output, blob, overwrite=overwrite)
