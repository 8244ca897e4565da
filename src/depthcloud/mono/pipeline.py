"""One image to metric depth and a Frame: the model, the camera and an optional alignment together.

:class:`CameraOptions` holds what the user said about the camera (file, values, field of view, sensor
size) and resolves it per image size (and EXIF) into an :class:`~depthcloud.mono.intrinsics.ImageCamera`.
:func:`estimate` runs the model and makes its output metric: a metric model's metres as they are (or
scaled to ``align``), a relative model's inverse depth only through ``align`` — a relative prediction
has no metric scale, so it is refused without one.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError
from depthcloud.frame import Frame
from depthcloud.mono.align import AlignFit, align_to
from depthcloud.mono.intrinsics import ExifFocal, ImageCamera, image_camera
from depthcloud.mono.runtime import DepthModel

__all__ = ["CameraOptions", "MonoResult", "estimate"]


@dataclass(frozen=True)
class CameraOptions:
    """What is known about the camera; at most one of ``camera``, explicit values and ``fov_deg``.

    camera: intrinsics or a rig (its left camera) from a calibration file named ``camera_name``.
    fx, fy, cx, cy: pixels of the image; fov_deg: horizontal field of view; sensor_width_mm: for EXIF
    FocalLength without a 35 mm equivalent; use_exif: read the image's EXIF when nothing else is given.
    """

    camera: Intrinsics | StereoRig | None = None
    camera_name: str = "camera"
    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    fov_deg: float | None = None
    sensor_width_mm: float | None = None
    use_exif: bool = True

    @classmethod
    def from_file(cls, path: str | Path, **changes: object) -> CameraOptions:
        """Options with the camera from a calibration file (any format depthcloud reads)."""
        from depthcloud.io.calibfiles import load_calibration

        p = Path(path)
        if not p.is_file():
            raise InputError("no such camera file", path=p)
        return cls(camera=load_calibration(p), camera_name=p.name, **changes)  # type: ignore[arg-type]

    def resolve(self, width: int, height: int, exif: ExifFocal | None = None) -> ImageCamera:
        """The intrinsics of a ``width`` × ``height`` image (see :func:`image_camera`)."""
        return image_camera(
            width, height, camera=self.camera, camera_name=self.camera_name, fx=self.fx, fy=self.fy,
            cx=self.cx, cy=self.cy, fov_deg=self.fov_deg, exif=exif if self.use_exif else None,
            sensor_width_mm=self.sensor_width_mm,
        )


@dataclass(frozen=True, eq=False)
class MonoResult:
    """depth: (H, W) float32 metres (0 = invalid); prediction: the model's raw (H, W) output;
    camera: the intrinsics and their source; kind: the model's kind; fit: the alignment, or None."""

    depth: np.ndarray
    prediction: np.ndarray
    camera: ImageCamera
    kind: str
    fit: AlignFit | None

    def frame(self, color: np.ndarray | None = None, *, seq: int = 0, stamp: float = 0.0,
              frame_id: str = "camera") -> Frame:
        return Frame(self.depth, self.camera.intrinsics, color, seq=seq, stamp=stamp, frame_id=frame_id)


def estimate(
    model: DepthModel,
    rgb: np.ndarray,
    camera: ImageCamera,
    *,
    align: np.ndarray | PointCloud | Frame | None = None,
    threshold: float = 0.1,
) -> MonoResult:
    """Metric depth for one image.

    rgb: (H, W, 3) uint8 RGB; camera: its intrinsics (same size). align: metric depth to fit to (see
    :func:`depthcloud.mono.align.align_samples`), required for relative models.
    """
    img = v.color_image("rgb", rgb)
    if img.shape[:2] != camera.intrinsics.shape:
        raise InputError(f"rgb: its size {img.shape[1]}x{img.shape[0]} does not match the intrinsics "
                         f"{camera.intrinsics.width}x{camera.intrinsics.height}")
    if model.kind == "relative" and align is None:
        raise InputError(
            f"{model.name} is a relative model: it predicts depth only up to scale and shift; pass metric depth "
            "to align to (--align DEPTH|CLOUD|RECORDING) or use a metric model"
        )
    pred = model.predict(img)
    fit = None
    depth = pred
    if align is not None:
        fit = align_to(pred, align, camera.intrinsics, kind=model.kind, threshold=threshold)
        depth = fit.apply(pred)
    return MonoResult(depth, pred, camera, model.kind, fit)
