"""One peer of bench_mono, timed in its own process (torch's and ONNX Runtime's thread pools fight).

Usage: python bench/_peer_mono.py PEER DIR [--quick]
DIR holds what bench_mono.py prepared: ``image.npy`` (H, W, 3) uint8 RGB, ``camera.json``, ``model.onnx``,
``model.int8.onnx`` and the Hugging Face folder ``hf/`` of the same random ViT-S network. Prints one JSON
document: total and per-stage medians (ms), the point count; the network-resolution prediction is
saved as ``DIR/PEER.npy`` so that the caller can compare peers.

Every peer goes from the same RGB image to a coloured cloud, without writing it:
* ``ort``, ``ort_int8``, ``ort_cuda``: depthcloud — its preprocessing, ONNX Runtime, the bilinear
  resize back to the image and ``Unprojector`` with the image's intrinsics.
* ``torch``, ``torch_cuda``: the same steps with PyTorch eager inference instead of ONNX Runtime.
* ``dav2_script``: the way Depth Anything V2's ``metric_depth/depth_to_pointcloud.py`` works, written
  here from its description: OpenCV preprocessing (BGR→RGB, /255, bicubic lower-bound resize to
  multiples of 14, ImageNet normalisation), PyTorch eager, ``F.interpolate(align_corners=True)`` back to
  the image, then colour (Lanczos) and depth (nearest) resized to 518×518 with PIL and every pixel
  unprojected in numpy with fx = fy = 470.4 px and the principal point at (259, 259). transformers'
  ``DepthAnythingForDepthEstimation`` stands in for the official class (same layers, same cost).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import timeit

SCRIPT_SIZE = 518
SCRIPT_FOCAL = 470.4  # 784 * 0.6, the script's default for non-NYU images


class Stages:
    """Wall time of named stages, one dict per call of the timed function."""

    def __init__(self) -> None:
        self.calls: list[dict[str, float]] = []
        self._t = 0.0

    def start(self) -> None:
        self.calls.append({})
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.calls[-1][name] = (now - self._t) * 1e3
        self._t = now

    def medians(self, last: int) -> dict[str, float]:
        calls = self.calls[-last:]
        return {k: float(np.median([c[k] for c in calls])) for k in calls[0]}


def _intrinsics(folder: Path) -> Any:
    from depthcloud import Intrinsics

    return Intrinsics.from_dict(json.loads((folder / "camera.json").read_text()))


def _ours(folder: Path, rgb: np.ndarray, stages: Stages, infer: Callable[[np.ndarray], np.ndarray]) -> Callable[[], Any]:
    """depthcloud's pipeline with ``infer`` (pixel_values → (N, h, w)) as the network."""
    from depthcloud import Unprojector
    from depthcloud.mono import preprocess, resize_prediction

    intr = _intrinsics(folder)
    unproject = Unprojector(intr)
    h, w = rgb.shape[:2]
    last: dict[str, np.ndarray] = {}

    def run() -> Any:
        stages.start()
        x = preprocess(rgb)
        stages.lap("preprocess")
        pred = infer(x)[0]
        stages.lap("inference")
        depth = resize_prediction(pred, w, h)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        stages.lap("resize")
        cloud = unproject(depth, color=rgb)
        stages.lap("unproject")
        last["pred"] = pred
        return cloud

    run.last = last  # type: ignore[attr-defined]
    return run


def _ort_infer(folder: Path, name: str, device: str) -> Callable[[np.ndarray], np.ndarray]:
    from depthcloud.mono import DepthModel

    model = DepthModel(folder / name, device=device)
    return model.run


def _torch_model(folder: Path, device: str) -> Any:
    import torch
    from transformers import DepthAnythingForDepthEstimation

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("torch has no CUDA device")
    return DepthAnythingForDepthEstimation.from_pretrained(folder / "hf", local_files_only=True).eval().to(device)


def _torch_infer(folder: Path, device: str) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    model = _torch_model(folder, device)

    def infer(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = model(pixel_values=torch.from_numpy(x).to(device)).predicted_depth
            return out.cpu().numpy()

    return infer


def _dav2_script(folder: Path, rgb: np.ndarray, stages: Stages) -> Callable[[], Any]:
    import cv2
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from depthcloud.mono import network_size

    model = _torch_model(folder, "cpu")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # the script reads the file with cv2.imread
    color_pil = Image.fromarray(rgb)  # …and again with PIL for the colours
    h, w = bgr.shape[:2]
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    last: dict[str, np.ndarray] = {}

    def run() -> Any:
        stages.start()
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) / 255.0  # float64, as the script
        nw, nh = network_size(w, h, input_size=SCRIPT_SIZE)
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_CUBIC)
        image = ((image - mean) / std).transpose(2, 0, 1).astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0)
        stages.lap("preprocess")
        with torch.no_grad():
            depth = model(pixel_values=x).predicted_depth
        stages.lap("inference")
        with torch.no_grad():
            pred = F.interpolate(depth[:, None], (h, w), mode="bilinear", align_corners=True)[0, 0].numpy()
        stages.lap("resize")
        colors_img = color_pil.resize((SCRIPT_SIZE, SCRIPT_SIZE), Image.LANCZOS)
        depth_img = Image.fromarray(pred).resize((SCRIPT_SIZE, SCRIPT_SIZE), Image.NEAREST)
        u, v = np.meshgrid(np.arange(SCRIPT_SIZE), np.arange(SCRIPT_SIZE))
        xn = (u - SCRIPT_SIZE / 2) / SCRIPT_FOCAL
        yn = (v - SCRIPT_SIZE / 2) / SCRIPT_FOCAL
        z = np.array(depth_img)
        points = np.stack((xn * z, yn * z, z), axis=-1).reshape(-1, 3)
        colors = np.array(colors_img).reshape(-1, 3) / 255.0
        stages.lap("unproject")
        last["pred"] = depth[0].numpy()
        return points, colors

    run.last = last  # type: ignore[attr-defined]
    return run


def main(argv: list[str]) -> int:
    peer, folder = argv[0], Path(argv[1])
    quick = "--quick" in argv
    rgb = np.load(folder / "image.npy")
    stages = Stages()
    if peer in ("ort", "ort_cuda"):
        fn = _ours(folder, rgb, stages, _ort_infer(folder, "model.onnx", "cuda" if peer == "ort_cuda" else "cpu"))
    elif peer == "ort_int8":
        fn = _ours(folder, rgb, stages, _ort_infer(folder, "model.int8.onnx", "cpu"))
    elif peer in ("torch", "torch_cuda"):
        fn = _ours(folder, rgb, stages, _torch_infer(folder, "cuda" if peer == "torch_cuda" else "cpu"))
    elif peer == "dav2_script":
        fn = _dav2_script(folder, rgb, stages)
    else:
        raise SystemExit(f"unknown peer {peer!r}")
    total = timeit(fn, warmup=1 if quick else 2, min_time_s=0.0 if quick else 3.0, max_runs=3 if quick else 20)
    stage_ms = stages.medians(total["runs"])
    out = fn()
    points = len(out[0]) if isinstance(out, tuple) else len(out)
    np.save(folder / f"{peer}.npy", fn.last["pred"])  # type: ignore[attr-defined]
    print(json.dumps({"total": total, "stages_ms": stage_ms, "points": points}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
