"""The ``mono:`` source: metric depth Frames from one ordinary camera, a video or images, by a depth model.

Spec::

    mono:INPUT[,model=FILE.onnx][,camera=FILE | fx=F[,fy=F,cx=C,cy=C] | fov=DEG][,sensor_width=MM]
         [,kind=metric][,device=cpu|cuda][,input_size=518][,fps=N][,loop=1][,realtime=0]

INPUT is an image, a folder of images, a video file, or a camera index (``mono:0``). ``model`` defaults
to ``$DEPTHCLOUD_MONO_MODEL``. The model must be metric (a relative model has no metric scale to
stream). Intrinsics follow :mod:`depthcloud.mono.intrinsics`: the camera options, else each image's
EXIF; a first frame without intrinsics fails at start. Images and video files are paced at ``fps``
(default: the video's own rate, 5 for images) unless ``realtime=0`` (every frame, as fast as taken);
``loop=1`` starts over at the end. Frames carry the colour image; the model runs in the capture thread.

This module must not import the server or the CLI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthcloud import _validate as v
from depthcloud.errors import ConfigError, DepthcloudError, InputError, SourceError
from depthcloud.frame import Frame
from depthcloud.mono.inputs import MonoInput, expand_inputs, iter_video
from depthcloud.mono.intrinsics import ExifFocal, ImageCamera, read_exif_focal
from depthcloud.mono.pipeline import CameraOptions, estimate
from depthcloud.mono.runtime import DEFAULT_INPUT_SIZE, DepthModel
from depthcloud.sources.base import RateLimiter, ReconnectPolicy, ThreadedSource

__all__ = ["MODEL_ENV", "MonoSource", "open_mono"]

MODEL_ENV = "DEPTHCLOUD_MONO_MODEL"
IMAGE_FPS = 5.0

_Item = tuple[float | None, np.ndarray, ExifFocal | None]  # (stamp or None, rgb, exif)


class MonoSource(ThreadedSource):
    """Frames of metric depth predicted by ``model`` from images, a video or a camera.

    inputs: what to read (see :func:`depthcloud.mono.inputs.expand_inputs`; one video or camera, or
    images). model: a metric :class:`DepthModel` or the path of one (loaded in ``start``).
    camera: what is known about the camera (None = EXIF only). fps: pace of images and video files
    (None = the video's rate, or 5 for images); realtime False = as fast as the consumer takes them.
    loop: start over at the end (files only). name: the source's name (default ``mono:`` + the first input).
    """

    def __init__(
        self,
        inputs: list[MonoInput],
        *,
        model: DepthModel | str | Path,
        camera: CameraOptions | None = None,
        kind: str | None = None,
        device: str = "cpu",
        input_size: int = DEFAULT_INPUT_SIZE,
        fps: float | None = None,
        realtime: bool = True,
        loop: bool = False,
        frame_id: str = "mono",
        name: str | None = None,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        if not inputs:
            raise InputError("inputs: expected at least one image, a video or a camera")
        streams = [i for i in inputs if i.kind != "image"]
        if streams and len(inputs) > 1:
            raise InputError("inputs: a video or a camera must be the only input")
        first = inputs[0]
        super().__init__(name or f"mono:{first.path if first.path is not None else first.index}",
                         reconnect=reconnect or ReconnectPolicy(max_retries=0))
        self.inputs = list(inputs)
        self.model_spec = model
        self.model: DepthModel | None = model if isinstance(model, DepthModel) else None
        self.camera = camera or CameraOptions()
        self.kind, self.device, self.input_size = kind, device, input_size
        self.fps = None if fps is None else v.number("fps", fps, positive=True, high=1000.0)
        self.realtime = bool(realtime)
        self.lossless = not self.realtime
        self.loop = bool(loop) and first.kind != "camera"
        self.frame_id = frame_id
        self._items: Iterator[_Item] | None = None
        self._pending: _Item | None = None
        self._limiter: RateLimiter | None = None
        self._cameras: dict[tuple[int, int, ExifFocal | None], ImageCamera] = {}
        self._seq = 0
        self._stamp0 = 0.0
        self._last_stamp = 0.0
        self._pass_offset = 0.0

    # -- reading ------------------------------------------------------------------------------
    def _iter_items(self) -> Iterator[_Item]:
        from depthcloud.io.depthimage import read_color

        first = self.inputs[0]
        if first.kind == "camera":
            assert first.index is not None
            for _n, _stamp, rgb in iter_video(first.index):
                yield time.time(), rgb, None
            return
        if first.kind == "video":
            assert first.path is not None
            for _n, stamp, rgb in iter_video(first.path):
                yield stamp, rgb, None
            return
        for item in self.inputs:
            assert item.path is not None
            _size, exif = read_exif_focal(item.path)
            yield None, read_color(item.path), exif

    def _camera_for(self, rgb: np.ndarray, exif: ExifFocal | None) -> ImageCamera:
        key = (rgb.shape[1], rgb.shape[0], exif)
        cam = self._cameras.get(key)
        if cam is None:
            cam = self.camera.resolve(rgb.shape[1], rgb.shape[0], exif)
            self._cameras[key] = cam
        return cam

    def _video_fps(self) -> float:
        first = self.inputs[0]
        if first.kind == "image":
            return IMAGE_FPS
        cap = cv2.VideoCapture(str(first.path))
        try:
            rate = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        finally:
            cap.release()
        return rate if 0 < rate <= 1000 else IMAGE_FPS

    def _open(self) -> None:
        try:
            if self.model is None:
                self.model = DepthModel(self.model_spec, kind=self.kind, device=self.device,  # type: ignore[arg-type]
                                        input_size=self.input_size)
            if self.model.kind != "metric":
                raise ConfigError(f"mono: {self.model.name} is a relative model (depth up to scale and shift); "
                                  "the mono: source needs a metric model (depthcloud mono export --kind metric)")
            self._items = self._iter_items()
            self._pending = next(self._items, None)
            if self._pending is None:
                raise SourceError(f"{self.name}: no frame to read")
            self._camera_for(self._pending[1], self._pending[2])  # no intrinsics: fail now, not mid-stream
        except SourceError:
            raise
        except DepthcloudError as exc:
            raise SourceError(f"{self.name}: {exc}") from exc
        if self.fps is None and self.inputs[0].kind != "camera":
            self.fps = self._video_fps()
        paced = self.realtime and self.inputs[0].kind != "camera"
        self._limiter = RateLimiter(self.fps or IMAGE_FPS) if paced else None

    def _next_item(self) -> _Item | None:
        if self._pending is not None:
            first, self._pending = self._pending, None
            return first
        assert self._items is not None
        item = next(self._items, None)
        if item is None and self.loop:
            self._pass_offset = self._last_stamp + 1.0 / (self.fps or IMAGE_FPS)
            self._items = self._iter_items()
            item = next(self._items, None)
        return item

    def _read(self) -> Frame | None:
        if self._limiter is not None:
            missed = self._limiter.wait(self._stop_event)
            if missed < 0:
                return None
        item = self._next_item()
        if item is None:
            return None
        stamp, rgb, exif = item
        if stamp is None:  # images: evenly spaced at fps, increasing across loops
            stamp = self._seq / (self.fps or IMAGE_FPS)
        elif self.inputs[0].kind == "video":
            stamp += self._pass_offset
        assert self.model is not None
        result = estimate(self.model, rgb, self._camera_for(rgb, exif))
        frame = result.frame(rgb, seq=self._seq, stamp=stamp, frame_id=self.frame_id)
        self._seq += 1
        self._last_stamp = stamp
        return frame

    def _close(self) -> None:
        if self._items is not None:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
        self._items = None
        self._limiter = None


_NUMBERS = {"fx", "fy", "cx", "cy", "fov", "sensor_width", "fps"}
_KEYS = {*_NUMBERS, "model", "camera", "kind", "device", "input_size", "loop", "realtime"}


def _flag(key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"mono: expected 1/0, true/false, got {value!r}", key=key)


def open_mono(arg: str, **options: Any) -> MonoSource:
    """The ``mono:INPUT[,key=value,...]`` source spec (see the module docstring); ``options`` (Python
    values: realtime, loop, fps, model, camera, frame_id, reconnect) override what the spec says."""
    target, *items = [s.strip() for s in arg.split(",")]
    if not target:
        raise ConfigError("mono: expected 'mono:IMAGE|FOLDER|VIDEO|CAMERA_INDEX[,model=FILE.onnx,...]'")
    kw: dict[str, Any] = {}
    cam: dict[str, Any] = {}
    for item in filter(None, items):
        key, eq, val = item.partition("=")
        if not eq or key not in _KEYS:
            raise ConfigError(f"mono: expected key=value with keys {', '.join(sorted(_KEYS))}, got {item!r}",
                              key=key or None)
        if key in _NUMBERS:
            try:
                num = float(val)
            except ValueError as exc:
                raise ConfigError(f"mono: expected a number, got {val!r}", key=key) from exc
            if key == "fps":
                kw["fps"] = num
            else:
                cam[{"fov": "fov_deg", "sensor_width": "sensor_width_mm"}.get(key, key)] = num
        elif key == "input_size":
            if not val.isdigit():
                raise ConfigError(f"mono: expected an integer, got {val!r}", key=key)
            kw["input_size"] = int(val)
        elif key in ("loop", "realtime"):
            kw[key] = _flag(key, val)
        elif key == "camera":
            cam["file"] = val
        else:
            kw[key] = val
    kw.update(options)
    kw.setdefault("model", os.environ.get(MODEL_ENV))
    if not kw["model"]:
        raise ConfigError(f"mono: no model; add ',model=FILE.onnx' to the spec or set {MODEL_ENV}")
    if not isinstance(kw["model"], DepthModel) and not Path(kw["model"]).is_file():
        raise SourceError("no such model file", path=str(kw["model"]))
    try:
        if "camera" not in kw:
            path = cam.pop("file", None)
            kw["camera"] = CameraOptions.from_file(path, **cam) if path else CameraOptions(**cam)
        inputs = expand_inputs([target], allow_camera=True)
        kw.setdefault("name", f"mono:{target}")
        return MonoSource(inputs, **kw)
    except (InputError, TypeError) as exc:
        raise ConfigError(f"mono: {exc}") from exc
