"""What ``depthcloud mono`` and the ``mono:`` source read: images, folders of images, videos, cameras.

Images are decoded once to (H, W, 3) uint8 RGB (OpenCV, which applies the EXIF orientation); their
EXIF focal tags are read separately by pillow. Videos and camera indices are read with
``cv2.VideoCapture``, frame by frame.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from depthcloud.errors import FormatError, InputError

__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "MonoInput", "expand_inputs", "iter_video", "video_frame_count"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class MonoInput:
    """One thing to read: ``kind`` "image" or "video" (``path``), or "camera" (``index``)."""

    kind: str
    path: Path | None = None
    index: int | None = None

    @property
    def name(self) -> str:
        return f"camera{self.index}" if self.path is None else self.path.stem


def expand_inputs(items: Sequence[str | Path], *, allow_camera: bool = False) -> list[MonoInput]:
    """Images, videos and folders (their images, sorted by name; not recursive) → a list of inputs.

    A bare integer is a camera index when ``allow_camera``. Raises InputError for a missing path, an
    unknown extension or a folder without images.
    """
    out: list[MonoInput] = []
    for item in items:
        text = str(item)
        if allow_camera and text.isdigit() and not Path(text).exists():
            out.append(MonoInput("camera", index=int(text)))
            continue
        p = Path(item)
        if p.is_dir():
            images = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS)
            if not images:
                raise InputError(f"no images ({' '.join(IMAGE_EXTS)}) in this folder", path=p)
            out.extend(MonoInput("image", q) for q in images)
        elif not p.exists():
            raise InputError("no such file or folder", path=p)
        elif p.suffix.lower() in IMAGE_EXTS:
            out.append(MonoInput("image", p))
        elif p.suffix.lower() in VIDEO_EXTS:
            out.append(MonoInput("video", p))
        else:
            raise InputError(f"unknown input type {p.suffix or '(no extension)'!r}; expected an image "
                             f"({' '.join(IMAGE_EXTS)}), a video ({' '.join(VIDEO_EXTS)}) or a folder", path=p)
    if not out:
        raise InputError("no inputs given")
    return out


def _capture(source: Path | int) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    if not cap.isOpened():
        cap.release()
        what = f"camera {source}" if isinstance(source, int) else str(source)
        raise FormatError("cannot open the video (not a video, or no codec for it)" if not isinstance(source, int)
                          else "cannot open the camera (no such device, or it is busy)", path=what)
    return cap


def video_frame_count(path: Path) -> int:
    """The frame count the container states (0 when it does not say)."""
    cap = _capture(path)
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        cap.release()


def iter_video(source: Path | int) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame number, stamp in seconds, (H, W, 3) uint8 RGB) for each frame of a video file or camera.

    Stamps are the container's presentation times for files and the capture clock for cameras.
    Raises FormatError when the video cannot be opened or yields no frame at all.
    """
    cap = _capture(source)
    try:
        n = 0
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            stamp = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            if bgr.ndim == 2:
                bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
            yield n, stamp, np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            n += 1
        if n == 0:
            raise FormatError("the video has no readable frame", path=str(source))
    finally:
        cap.release()
