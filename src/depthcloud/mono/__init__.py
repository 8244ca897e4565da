"""Monocular depth: one RGB image (or a video) to metric depth and a coloured cloud with real intrinsics.

* :mod:`~depthcloud.mono.runtime` — :class:`DepthModel` (ONNX Runtime; ``pixel_values`` →
  ``predicted_depth``) and Depth Anything V2's preprocessing.
* :mod:`~depthcloud.mono.intrinsics` — intrinsics from a camera file, values, a field of view or EXIF;
  never guessed.
* :mod:`~depthcloud.mono.align` — robust scale (and shift) fits to sparse or dense metric depth.
* :mod:`~depthcloud.mono.metrics` — AbsRel, RMSE, δ<1.25, raw and aligned.
* :mod:`~depthcloud.mono.pipeline` — :func:`estimate`: model + camera + alignment → metric depth.
* ``depthcloud.mono.export`` — Depth Anything V2 checkpoints → ONNX (the ``mono-export`` extra).

The workflow layer: it builds on values, maths and files, and must not import a source, the server or
the CLI (the ``mono:`` source lives in :mod:`depthcloud.sources.mono`).
"""

from depthcloud.mono.align import AlignFit, align_samples, align_to, fit_alignment
from depthcloud.mono.intrinsics import (
    ExifFocal,
    ImageCamera,
    image_camera,
    intrinsics_from_exif,
    read_exif_focal,
)
from depthcloud.mono.metrics import DepthMetrics, PairScore, depth_metrics, score_prediction
from depthcloud.mono.pipeline import CameraOptions, MonoResult, estimate
from depthcloud.mono.runtime import MODEL_KINDS, DepthModel, network_size, preprocess, resize_prediction

__all__ = [
    "MODEL_KINDS",
    "AlignFit",
    "CameraOptions",
    "DepthMetrics",
    "DepthModel",
    "ExifFocal",
    "ImageCamera",
    "MonoResult",
    "PairScore",
    "align_samples",
    "align_to",
    "depth_metrics",
    "estimate",
    "fit_alignment",
    "image_camera",
    "intrinsics_from_exif",
    "network_size",
    "preprocess",
    "read_exif_focal",
    "resize_prediction",
    "score_prediction",
]
