"""Monocular depth, one 640×480 RGB image → coloured cloud: depthcloud (ONNX Runtime) against PyTorch
eager and against the way Depth Anything V2's point-cloud script works, in one run.

The network is a ViT-S-sized Depth Anything V2 (the real architecture: DINOv2 hidden 384, 12 blocks,
6 heads; DPT neck 48/96/192/384, fusion 64; metric head, 20 m) with random weights — no weights can
be downloaded here, and the cost does not depend on their values. It sees 518×686 (the 640×480 image
with its shorter side at 518, sides multiples of 14). Steps:

1. build it with transformers, save it as a Hugging Face folder, convert it with
   ``depthcloud.mono.export.export_checkpoint`` (timed), and quantise the ONNX file to int8 with
   ``onnxruntime.quantization.quantize_dynamic`` (weights of the MatMuls, activations per call;
   quantising the convolutions too made it slower and less accurate);
2. time each peer in its own process (see ``_peer_mono.py``): ``ort`` (depthcloud), ``ort_int8``,
   ``torch`` (depthcloud's steps with PyTorch eager inference) and ``dav2_script`` (the script's way);
   with ``--device cuda`` also ``ort_cuda`` and ``torch_cuda`` where CUDA is available (skipped, and
   said so, where it is not);
3. compare: ratios against ``ort``, the unprojection's share of ours, ORT vs PyTorch and int8 vs
   float32 depth differences at the network's resolution.

Targets (CPU): PyTorch eager / ONNX Runtime >= 1.5; unprojection <= 2 % of ours.
Run: ``python bench/bench_mono.py [--quick] [--device cuda]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import md_table, run_isolated, versions, write_results  # noqa: E402

PEER_SCRIPT = HERE / "_peer_mono.py"
IMAGE_WH = (640, 480)  # → network input 686×518
HFOV_DEG = 70.0
CPU_PEERS = ["ort", "ort_int8", "torch", "dav2_script"]
CUDA_PEERS = ["ort_cuda", "torch_cuda"]
SPEEDUP_TARGET = 1.5  # torch eager / ORT on CPU
UNPROJECT_SHARE_TARGET = 0.02
ROUNDS = 2


def _vits_model() -> Any:
    """A metric Depth Anything V2 ViT-S with random weights (every tensor perturbed, so that norms,
    biases and layer scales are not at their neutral initial values).

    Random weights alone predict an almost constant depth (the sigmoid sits near 0.5), against which
    no error would look large; the last convolution is rescaled so that on the benchmark's image the
    head's logits have mean -0.5 and spread 1: depths from about 0.5 to 19 m, like a real room."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    from depthcloud.mono import preprocess

    backbone = Dinov2Config(
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, patch_size=14,
        image_size=518, layerscale_value=1.0, layer_norm_eps=1e-6, out_indices=[3, 6, 9, 12],
        apply_layernorm=True, reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=384, neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64, depth_estimation_type="metric", max_depth=20,
    )
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
        x = torch.from_numpy(preprocess(_image(), input_size=140))
        fraction = (model(pixel_values=x).predicted_depth / 20).clamp(1e-6, 1 - 1e-6)
        logit = torch.log(fraction / (1 - fraction))
        mean, spread = float(logit.mean()), float(logit.std())
        conv = model.head.conv3
        conv.weight /= spread
        conv.bias.copy_((conv.bias - mean) / spread - 0.5)
    return model


def _image() -> np.ndarray:
    """A deterministic 640×480 RGB picture with structure at several scales."""
    w, h = IMAGE_WH
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(5)
    img = np.stack([128 + 100 * np.sin(u / 37.0), 128 + 100 * np.cos(v / 23.0), (u + v) % 256], axis=-1)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def prepare(folder: Path) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from depthcloud import Intrinsics
    from depthcloud.mono.export import export_checkpoint

    model = _vits_model()
    model.save_pretrained(folder / "hf")
    t0 = time.perf_counter()
    export_checkpoint(folder / "hf", folder / "model.onnx", encoder="vits", kind="metric")
    export_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    quantize_dynamic(folder / "model.onnx", folder / "model.int8.onnx", weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])
    quantize_s = time.perf_counter() - t0
    np.save(folder / "image.npy", _image())
    intr = Intrinsics.from_fov(*IMAGE_WH, HFOV_DEG)
    (folder / "camera.json").write_text(json.dumps(intr.to_dict()))
    return {
        "export_s": export_s, "quantize_s": quantize_s,
        "onnx_mb": (folder / "model.onnx").stat().st_size / 1e6,
        "onnx_int8_mb": (folder / "model.int8.onnx").stat().st_size / 1e6,
    }


def cuda_available() -> dict[str, bool]:
    import onnxruntime

    try:
        import torch

        torch_cuda = bool(torch.cuda.is_available())
    except ImportError:
        torch_cuda = False
    return {"ort_cuda": "CUDAExecutionProvider" in onnxruntime.get_available_providers(), "torch_cuda": torch_cuda}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    want_cuda = "--device" in argv and argv[argv.index("--device") + 1 : argv.index("--device") + 2] == ["cuda"]
    rounds = 1 if quick else ROUNDS
    peers = list(CPU_PEERS)
    skipped: dict[str, str] = {}
    if want_cuda:
        have = cuda_available()
        for peer in CUDA_PEERS:
            if have[peer]:
                peers.append(peer)
            else:
                skipped[peer] = "no CUDA here (" + ("ONNX Runtime has no CUDA execution provider" if peer == "ort_cuda"
                                                   else "torch.cuda.is_available() is False") + ")"
                print(f"  {peer}: skipped, {skipped[peer]}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_mono_") as tmp:
        folder = Path(tmp)
        print("  preparing: random ViT-S, export to ONNX, int8 quantisation ...", flush=True)
        prep = prepare(folder)
        all_rounds: dict[str, list[Any]] = {p: [] for p in peers}
        for i in range(rounds):
            for peer in peers:
                print(f"  round {i + 1}/{rounds}: {peer} ...", flush=True)
                args = [peer, str(folder)] + (["--quick"] if quick else [])
                all_rounds[peer].append(run_isolated(PEER_SCRIPT, args, timeout_s=1800))
        preds = {p: np.load(folder / f"{p}.npy") for p in peers if (folder / f"{p}.npy").exists()}

    results: dict[str, Any] = {}
    for peer, runs in all_rounds.items():
        ok = [r for r in runs if "error" not in r]
        results[peer] = min(ok, key=lambda r: r["total"]["median_ms"]) if ok else runs[-1]

    def total(peer: str, key: str = "median_ms") -> float:
        r = results.get(peer, {})
        return float(r["total"][key]) if "total" in r else float("nan")

    def stage(peer: str, name: str) -> float:
        r = results.get(peer, {})
        return float(r["stages_ms"][name]) if "stages_ms" in r else float("nan")

    def maxdiff(a: str, b: str) -> float:
        return float(np.max(np.abs(preds[a] - preds[b]))) if a in preds and b in preds else float("nan")

    accuracy = {
        "ort_vs_torch_max_m": maxdiff("ort", "torch"),
        "int8_vs_fp32_max_m": maxdiff("ort_int8", "ort"),
        "int8_vs_fp32_mean_m": float(np.mean(np.abs(preds["ort_int8"] - preds["ort"])))
        if "ort_int8" in preds and "ort" in preds else float("nan"),
        "prediction_range_m": [float(preds["ort"].min()), float(preds["ort"].max())] if "ort" in preds else [],
    }
    if "ort_cuda" in preds:
        accuracy["ort_cuda_vs_cpu_max_m"] = maxdiff("ort_cuda", "ort")

    headers = ["peer", "total ms (median / p10)", "preprocess", "inference", "resize back", "unproject",
               "unproject share", "× ort (median)", "points"]
    rows = []
    for peer in peers:
        r = results[peer]
        if "error" in r:
            rows.append([peer, "error: " + str(r["error"])[:70], *[""] * 7])
            continue
        share = stage(peer, "unproject") / total(peer)
        rows.append([peer, f"{total(peer):.0f} / {total(peer, 'p10_ms'):.0f}",
                     *[f"{stage(peer, s):.1f}" for s in ("preprocess", "inference", "resize", "unproject")],
                     f"{100 * share:.2f} %", f"{total(peer) / total('ort'):.2f}", r["points"]])
    table = md_table(headers, rows)

    checks = []
    for key in ("median_ms", "p10_ms"):
        got = total("torch", key) / total("ort", key)
        checks.append([f"torch eager / ort ({key[:-3]})", f">= {SPEEDUP_TARGET:g}", f"{got:.2f}",
                       "yes" if got >= SPEEDUP_TARGET else "NO"])
    share = stage("ort", "unproject") / total("ort")
    checks.append(["unprojection share of ours", f"<= {100 * UNPROJECT_SHARE_TARGET:g} %", f"{100 * share:.2f} %",
                   "yes" if share <= UNPROJECT_SHARE_TARGET else "NO"])
    checks.append(["dav2 script / ort (median)", "-", f"{total('dav2_script') / total('ort'):.2f}", "-"])
    checks.append(["ort / ort int8 (median)", "-", f"{total('ort') / total('ort_int8'):.2f}", "-"])
    table += "\nTargets (CPU):\n\n" + md_table(["ratio", "target", "measured", "met"], checks)
    table += "\nDepth differences at the network's 518×686 (metres; the random network predicts "
    table += f"{accuracy['prediction_range_m'][0]:.2f}..{accuracy['prediction_range_m'][1]:.2f} m):\n\n" \
        if accuracy["prediction_range_m"] else ":\n\n"
    table += md_table(["comparison", "max |Δ| m", "mean |Δ| m"], [
        ["ONNX Runtime vs PyTorch (same input)", f"{accuracy['ort_vs_torch_max_m']:.2e}", "-"],
        ["int8 vs float32 ONNX Runtime", f"{accuracy['int8_vs_fp32_max_m']:.2e}", f"{accuracy['int8_vs_fp32_mean_m']:.2e}"],
        *([["ONNX Runtime CUDA vs CPU", f"{accuracy['ort_cuda_vs_cpu_max_m']:.2e}", "-"]]
          if "ort_cuda_vs_cpu_max_m" in accuracy else []),
    ])
    table += (
        f"\nExport of the ViT-S (transformers → ONNX, checked in ONNX Runtime): {prep['export_s']:.0f} s; "
        f"int8 quantisation {prep['quantize_s']:.0f} s; files {prep['onnx_mb']:.0f} MB (float32), "
        f"{prep['onnx_int8_mb']:.0f} MB (int8).\n"
    )
    if skipped:
        table += "\nSkipped: " + "; ".join(f"{p}: {why}" for p, why in skipped.items()) + "\n"
    table += (
        "\nEach peer goes from the same 640×480 RGB image to a coloured cloud (not written). `ort`: depthcloud's"
        " preprocessing, ONNX Runtime, bilinear resize back to 640×480, `Unprojector` with the image's intrinsics."
        " `torch`: the same with PyTorch eager inference. `dav2_script`: Depth Anything V2's point-cloud script's"
        " way (PyTorch, then a 518×518 resize and a numpy unprojection with a fixed 470.4 px focal length)."
        " Each peer runs in its own process; the best of the rounds is kept.\n"
    )
    data = {
        "image_wh": IMAGE_WH, "network_hw": [518, 686], "rounds": all_rounds, "results": results, "prepare": prep,
        "accuracy": accuracy, "checks": checks, "skipped": skipped, "quick": quick,
        "versions": versions("numpy", "onnxruntime", "onnx", "torch", "transformers", "opencv-contrib-python-headless"),
    }
    write_results("mono", data, table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
