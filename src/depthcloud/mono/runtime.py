"""Run a monocular depth model with ONNX Runtime, preprocessing images the way Depth Anything V2 was trained.

The model interface is the one Hugging Face's depth-estimation exports use, so any such ONNX file
works (a user's own export too)::

    input   pixel_values     float32 [N, 3, H, W]  RGB in 0..1, ImageNet mean/std normalised;
                                                   H and W multiples of 14 (the ViT patch)
    output  predicted_depth  float32 [N, H', W'] or [N, 1, H', W']
                             metric models: metres;  relative models: relative inverse depth

Whether a model is ``metric`` or ``relative`` (and the metric head's ``max_depth``) is read from the
ONNX file's metadata (``depthcloud.kind``, ``depthcloud.max_depth``, written by ``depthcloud mono
export``); files without it (Hugging Face's own exports) need the kind given. A given kind wins.

Preprocessing (Depth Anything V2's ``Resize(lower_bound, keep_aspect_ratio, ensure_multiple_of=14)``):
the image is scaled so that its shorter side becomes ``input_size`` (518) with the aspect kept, each
side rounded to the nearest multiple of 14 (up, if rounding would make it smaller than ``input_size``),
resized bicubically as float RGB in 0..1, then normalised. The prediction is resized back to the
input image's size bilinearly with OpenCV's pixel-centre rule, so depth pixel (u, v) is image pixel
(u, v) and the image's intrinsics apply to the depth unchanged.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import FormatError, InputError, MissingDependencyError

__all__ = [
    "DEFAULT_INPUT_SIZE",
    "DEVICES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_NAME",
    "META_KIND",
    "META_MAX_DEPTH",
    "MODEL_KINDS",
    "OUTPUT_NAME",
    "PATCH_SIZE",
    "DepthModel",
    "network_size",
    "preprocess",
    "resize_prediction",
]

MODEL_KINDS = ("metric", "relative")
DEVICES = ("cpu", "cuda")
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "predicted_depth"
META_KIND = "depthcloud.kind"
META_MAX_DEPTH = "depthcloud.max_depth"
PATCH_SIZE = 14
DEFAULT_INPUT_SIZE = 518
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def network_size(width: int, height: int, *, input_size: int = DEFAULT_INPUT_SIZE,
                 multiple: int = PATCH_SIZE) -> tuple[int, int]:
    """The (width, height) the network sees for a ``width`` × ``height`` image.

    Both sides are scaled by ``input_size / min(width, height)``, then each is rounded to the nearest
    multiple of ``multiple`` (half to even), or rounded up when that would fall below ``input_size``.
    640×480 → (686, 518); 1920×1080 → (924, 518); 641×479 → (700, 518).
    """
    w = v.integer("width", width, low=1)
    h = v.integer("height", height, low=1)
    m = v.integer("multiple", multiple, low=1)
    size = v.integer("input_size", input_size, low=m)
    scale = size / min(w, h)

    def side(n: int) -> int:
        x = n * scale
        y = int(np.round(x / m)) * m  # numpy rounds half to even, as the reference transform does
        return y if y >= size else math.ceil(x / m) * m

    return side(w), side(h)


def preprocess(rgb: np.ndarray, *, input_size: int = DEFAULT_INPUT_SIZE) -> np.ndarray:
    """The network input for one image.

    rgb: (H, W, 3) uint8 RGB. Returns (1, 3, h, w) float32 with (h, w) from :func:`network_size`:
    bicubic resize of RGB / 255, then (x − mean) / std per channel (ImageNet).
    """
    img = v.color_image("rgb", rgb)
    w, h = network_size(img.shape[1], img.shape[0], input_size=input_size)
    # Bicubic resizing is linear, so resizing 0..255 and folding /255, −mean and /std into one multiply-add
    # per channel equals the reference order to float rounding (~2e-6), at a fifth of the time of
    # broadcasting over an (H, W, 3) array.
    resized = cv2.resize(img.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    out = np.empty((1, 3, h, w), np.float32)
    for c in range(3):
        std = 255.0 * IMAGENET_STD[c]
        np.multiply(resized[:, :, c], np.float32(1.0 / std), out=out[0, c])
        out[0, c] += np.float32(-IMAGENET_MEAN[c] / IMAGENET_STD[c])
    return out


def resize_prediction(pred: np.ndarray, width: int, height: int) -> np.ndarray:
    """A (h, w) prediction resized bilinearly to ``width`` × ``height`` (OpenCV's pixel-centre rule:
    u maps to (u + 0.5)·s − 0.5, the rule Intrinsics.resized follows). Returns float32."""
    p = np.ascontiguousarray(pred, dtype=np.float32)
    if p.shape == (height, width):
        return p.copy()
    return cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError.for_extra("onnxruntime", "mono") from exc
    return onnxruntime


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DepthModel:
    """A depth model in an ONNX file, run by ONNX Runtime on one image at a time.

    path: the .onnx file. kind: ``"metric"`` or ``"relative"``; None = the file's metadata (an error
    when it has none). max_depth_m: the metric head's range (informational); None = the metadata's.
    device: ``"cpu"`` or ``"cuda"`` (the CUDA execution provider; an error when it is not available).
    input_size: the shorter side the network sees (518 as trained). threads: ONNX Runtime intra-op
    threads (None = its default).

    Raises InputError (missing file, bad option, no CUDA), FormatError (not a loadable ONNX model, or
    not the ``pixel_values`` → ``predicted_depth`` interface), MissingDependencyError (no onnxruntime).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        kind: str | None = None,
        max_depth_m: float | None = None,
        device: str = "cpu",
        input_size: int = DEFAULT_INPUT_SIZE,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("no such model file", path=self.path)
        if kind is not None and kind not in MODEL_KINDS:
            raise InputError(f"kind: expected one of {', '.join(MODEL_KINDS)}, got {kind!r}")
        if device not in DEVICES:
            raise InputError(f"device: expected one of {', '.join(DEVICES)}, got {device!r}")
        self.input_size = v.integer("input_size", input_size, low=PATCH_SIZE)
        self.device = device
        ort = _ort()
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            available = ort.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise InputError(
                    "device cuda: this ONNX Runtime has no CUDA execution provider (it has "
                    f"{', '.join(p.removesuffix('ExecutionProvider') for p in available)}); install "
                    "onnxruntime-gpu on a machine with an NVIDIA GPU, or use --device cpu"
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors reach the user as one line below, not as ORT's log
        if threads is not None:
            options.intra_op_num_threads = v.integer("threads", threads, low=1)
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own types (InvalidProtobuf, Fail, …) for a bad file
            raise FormatError(f"not a loadable ONNX model ({_one_line(exc)})", path=self.path) from exc
        if device == "cuda" and "CUDAExecutionProvider" not in self._session.get_providers():
            raise InputError(
                "device cuda: ONNX Runtime could not start its CUDA execution provider (no GPU, or the "
                "CUDA/cuDNN libraries are missing); use --device cpu"
            )
        self._check_interface()
        meta = dict(self._session.get_modelmeta().custom_metadata_map or {})
        self.metadata = meta
        meta_kind = meta.get(META_KIND)
        if meta_kind is not None and meta_kind not in MODEL_KINDS:
            raise FormatError(f"metadata {META_KIND}: expected one of {', '.join(MODEL_KINDS)}, got {meta_kind!r}",
                              path=self.path)
        if kind is None and meta_kind is None:
            raise InputError(
                f"the model does not say whether it is metric or relative (no {META_KIND} metadata, as in "
                "Hugging Face exports); pass --kind metric or --kind relative", path=self.path,
            )
        self.kind: str = kind or str(meta_kind)
        self.kind_source = "given" if kind is not None else "model metadata"
        if max_depth_m is not None:
            self.max_depth_m: float | None = v.number("max_depth_m", max_depth_m, positive=True)
        elif META_MAX_DEPTH in meta:
            try:
                self.max_depth_m = v.number(META_MAX_DEPTH, meta[META_MAX_DEPTH], positive=True)
            except InputError as exc:
                raise FormatError(f"metadata {exc.message}", path=self.path) from exc
        else:
            self.max_depth_m = None

    def __repr__(self) -> str:
        return f"<DepthModel {self.path.name} {self.kind} {self.device}>"

    @property
    def name(self) -> str:
        return self.path.name

    def _check_interface(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        names_in = [i.name for i in inputs]
        names_out = [o.name for o in outputs]
        want = f"expected input {INPUT_NAME!r} [N,3,H,W] and output {OUTPUT_NAME!r} [N,H,W] or [N,1,H,W]"
        if names_in != [INPUT_NAME] or OUTPUT_NAME not in names_out:
            raise FormatError(f"wrong model interface: {want}; the model has inputs {names_in} and outputs "
                              f"{names_out}", path=self.path)
        inp = inputs[0]
        shape = list(inp.shape or [])
        if inp.type != "tensor(float)" or len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise FormatError(f"wrong model interface: {want}; {INPUT_NAME!r} is {inp.type} {shape}", path=self.path)
        out = outputs[names_out.index(OUTPUT_NAME)]
        oshape = list(out.shape or [])
        if oshape and (len(oshape) not in (3, 4) or (len(oshape) == 4 and isinstance(oshape[1], int)
                                                      and oshape[1] != 1)):
            raise FormatError(f"wrong model interface: {want}; {OUTPUT_NAME!r} is {out.type} {oshape}", path=self.path)

    def run(self, pixel_values: np.ndarray) -> np.ndarray:
        """Run the network on a prepared batch (N, 3, h, w) float32; returns (N, h', w') float32."""
        x = v.array("pixel_values", pixel_values, ndim=4, kinds="f", expected="(N, 3, H, W)")
        if x.shape[1] != 3:
            raise InputError(f"pixel_values: expected shape (N, 3, H, W), got {x.shape}")
        try:
            (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
        except Exception as exc:  # shape mismatches inside the graph surface as ORT errors
            raise FormatError(f"the model failed on a {x.shape[3]}x{x.shape[2]} input ({_one_line(exc)})",
                              path=self.path) from exc
        out = np.asarray(out)
        if out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 3 or out.shape[0] != x.shape[0]:
            raise FormatError(f"wrong model output: expected {OUTPUT_NAME!r} [N,H,W] or [N,1,H,W] with N = "
                              f"{x.shape[0]}, got shape {tuple(out.shape)}", path=self.path)
        return out.astype(np.float32, copy=False)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """The model's prediction for one image at the image's own size.

        rgb: (H, W, 3) uint8 RGB. Returns (H, W) float32: metres for a metric model, relative inverse
        depth for a relative one; non-finite and negative values are set to 0 (invalid).
        """
        img = v.color_image("rgb", rgb)
        raw = self.run(preprocess(img, input_size=self.input_size))[0]
        out = resize_prediction(raw, img.shape[1], img.shape[0])
        out[~np.isfinite(out) | (out < 0)] = 0.0
        return out
