"""Frame sets: every source the exporter reads, as numbered frames that a task can read by range.

A :class:`FrameSet` is a small, picklable description (paths, a calibration, a spec string), never
pixels: a task gets the part of a set that covers its range (:meth:`FrameSet.part`) and reads its own
frames. Frames are numbered 0, 1, … in source order (the *index*; the file name and manifest use it).

* random access (``seekable``): depth / disparity image folders, stereo pair folders, the synthetic
  scene, and ``.dcrec`` recordings (a walk over the record headers gives each frame's byte offset);
  a part holds only its own files or offsets.
* sequential: RealSense ``.bag`` files, Amiga ``.bin`` event logs and any other source spec that
  :func:`depthcloud.sources.open_source` knows (``mono:``, live cameras): a part plays the source from
  its start and skips to its range (frames before it are read, not processed).

A frame that cannot be read is yielded as its error (the index stays), so one bad file costs one
frame; a sequential source that fails ends its part there. This module must not import the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import ConfigError, DepthcloudError, FormatError, InputError, SourceError
from depthcloud.frame import Frame

__all__ = [
    "DEPTH_SUFFIXES",
    "BagFrames",
    "DepthFolder",
    "DisparityFolder",
    "FrameSet",
    "LogFrames",
    "RecordingFrames",
    "StereoFolder",
    "StreamFrames",
    "SyntheticFrames",
    "open_frames",
]

DEPTH_SUFFIXES = (".png", ".pgm", ".pfm", ".npy", ".exr", ".tif", ".tiff")
COLOR_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
Item = tuple[int, "Frame | DepthcloudError"]
_NUMBER = re.compile(r"^[0-9]+\.[0-9]+$")  # seconds with a fraction, as TUM names files


class FrameSet(ABC):
    """Numbered frames of one source. ``name``: the label in the manifest and in folder names.
    ``count``: the number of frames (exact when ``exact``; an estimate or None otherwise)."""

    name: str
    seekable: bool = True
    exact: bool = True

    @property
    @abstractmethod
    def count(self) -> int | None: ...

    @abstractmethod
    def part(self, start: int, stop: int | None) -> FrameSet:
        """The smallest set that still reads frames ``start`` ≤ index < ``stop`` (None = to the end)."""

    @abstractmethod
    def read(self, start: int, stop: int | None) -> Iterator[Item]:
        """(index, Frame or the error that frame raised) for start ≤ index < stop, in order."""


# -- random access ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Indexed(FrameSet):
    """Frames given by a sequence of per-frame items; ``first`` is the index of ``items[0]``."""

    name: str
    items: Sequence[Any]
    first: int = 0

    @property
    def count(self) -> int | None:
        return self.first + len(self.items)

    def part(self, start: int, stop: int | None) -> FrameSet:
        lo = max(start - self.first, 0)
        hi = len(self.items) if stop is None else max(min(stop - self.first, len(self.items)), lo)
        return replace(self, items=self.items[lo:hi], first=self.first + lo)

    def read(self, start: int, stop: int | None) -> Iterator[Item]:
        lo = max(start - self.first, 0)
        hi = len(self.items) if stop is None else min(stop - self.first, len(self.items))
        with self._opened() as state:
            for k in range(lo, hi):
                index = self.first + k
                try:
                    yield index, self._load(index, self.items[k], state)
                except DepthcloudError as exc:
                    yield index, exc

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Any]:
        yield None

    @abstractmethod
    def _load(self, index: int, item: Any, state: Any) -> Frame: ...


def _stamp(path: str, index: int) -> float:
    """A file named by its time (TUM: ``1305031102.175304.png``) is stamped with it, others with the index."""
    stem = Path(path).stem
    return float(stem) if _NUMBER.match(stem) else float(index)


def _color(path: str | None, shape: tuple[int, int]) -> np.ndarray | None:
    if path is None:
        return None
    from depthcloud.io.depthimage import read_color

    rgb = read_color(path)
    if rgb.shape[:2] != shape:
        raise InputError(f"its size {rgb.shape[1]}x{rgb.shape[0]} differs from the depth image {shape[1]}x{shape[0]}",
                         path=Path(path).name)
    return rgb


def _check_size(path: str, shape: tuple[int, ...], intr: Intrinsics) -> None:
    if shape != intr.shape:
        raise InputError(f"its size {shape[1]}x{shape[0]} differs from the camera's {intr.width}x{intr.height}; "
                         "pass the --camera of this image size", path=Path(path).name)


@dataclass(frozen=True)
class DepthFolder(_Indexed):
    """Depth images (16-bit PNG × ``depth_scale``, PFM/NPY/EXR metres); items: (depth path, colour path or None)."""

    intrinsics: Intrinsics | None = None
    depth_scale: float | None = None

    def _load(self, index: int, item: Any, state: Any) -> Frame:
        from depthcloud.io.depthimage import read_depth

        depth_path, color_path = item
        png = Path(depth_path).suffix.lower() in (".png", ".pgm")
        depth = read_depth(depth_path, depth_scale=self.depth_scale if png else None)
        assert self.intrinsics is not None  # open_frames requires it
        _check_size(depth_path, depth.shape, self.intrinsics)
        return Frame(depth, self.intrinsics, _color(color_path, depth.shape), seq=index,
                     stamp=_stamp(depth_path, index), frame_id=self.name)


@dataclass(frozen=True)
class DisparityFolder(_Indexed):
    """Rectified disparity maps of the left camera of ``rig``; items: (disparity path, colour path or None)."""

    rig: StereoRig | None = None
    disparity_scale: float | None = None

    def _load(self, index: int, item: Any, state: Any) -> Frame:
        from depthcloud.geometry import disparity_to_depth
        from depthcloud.io.depthimage import read_disparity

        path, color_path = item
        rig = self.rig
        assert rig is not None  # open_frames requires it
        disp = read_disparity(path, scale=self.disparity_scale)
        _check_size(path, disp.shape, rig.left)
        depth = disparity_to_depth(disp, rig.focal_px, rig.baseline_m, doffs_px=rig.doffs_px)
        return Frame(depth, rig.left.undistorted(), _color(color_path, depth.shape), seq=index,
                     stamp=_stamp(path, index), frame_id=self.name)


@dataclass(frozen=True)
class StereoFolder(_Indexed):
    """Stereo pairs (``left/`` and ``right/`` images) matched with depthcloud.stereo's ``preset``;
    frames are in the rectified left camera, coloured by the rectified left image."""

    rig: StereoRig | None = None
    preset: str = "balanced"
    min_depth_m: float | None = None
    max_depth_m: float | None = None

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Any]:
        from depthcloud.stereo import StereoMatcher

        assert self.rig is not None  # open_frames requires it
        yield StereoMatcher(self.rig, preset=self.preset, min_depth_m=self.min_depth_m, max_depth_m=self.max_depth_m)

    def _load(self, index: int, item: Any, state: Any) -> Frame:
        from depthcloud.io.depthimage import read_color

        left, right = read_color(item[0]), read_color(item[1])
        result = state(left, right)
        # Only what the matcher found itself, as its own cloud keeps: hole-filled pixels are guesses.
        depth = np.where(result.matched, result.depth, np.float32(0.0)) if state.params.fill else result.depth
        return Frame(depth, result.rig.left, result.left if result.left.ndim == 3 else None, seq=index,
                     stamp=_stamp(item[0], index), frame_id=self.name)


@dataclass(frozen=True)
class SyntheticFrames(_Indexed):
    """The synthetic scene: frame i shows t = i / fps (items: a range of indices)."""

    intrinsics: Intrinsics | None = None
    fps: float = 30.0

    def _load(self, index: int, item: Any, state: Any) -> Frame:
        from depthcloud.sources.synthetic import render_scene

        assert self.intrinsics is not None
        t = index / self.fps
        depth, color = render_scene(self.intrinsics, t)
        return Frame(depth, self.intrinsics, color, seq=index, stamp=t, frame_id="synthetic")


@dataclass(frozen=True)
class RecordingFrames(_Indexed):
    """A ``.dcrec`` recording; items: each frame's record offset (from :meth:`RecordingReader.offsets`)."""

    path: str = ""

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Any]:
        from depthcloud.sources.replay import RecordingReader

        with RecordingReader(self.path) as reader:
            yield reader

    def _load(self, index: int, item: Any, state: Any) -> Frame:
        state.seek(int(item))
        frame = state.read_frame()
        if frame is None:
            raise FormatError(state.problem or "no record at this offset", path=Path(self.path).name)
        return frame


# -- sequential -------------------------------------------------------------------------------------


def _drain(make: Callable[[], AsyncIterator[Frame]]) -> Generator[Frame, None, None]:
    """The frames of an async iterator, from a private event loop (tasks run in plain threads/processes)."""
    loop = asyncio.new_event_loop()
    agen = make()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        with contextlib.suppress(Exception):
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                loop.run_until_complete(aclose())
        loop.close()


async def _source_frames(source: Any) -> AsyncIterator[Frame]:
    from depthcloud.sources.base import SourceEnded

    async with source:
        while True:
            try:
                yield await source.next_frame()
            except SourceEnded:
                return


@dataclass(frozen=True)
class _Sequential(FrameSet):
    name: str
    estimate: int | None = None
    seekable = False
    exact = False

    @property
    def count(self) -> int | None:
        return self.estimate

    def part(self, start: int, stop: int | None) -> FrameSet:
        return self  # a sequential source is read from its start whatever the range

    def read(self, start: int, stop: int | None) -> Iterator[Item]:
        index = -1
        frames = _drain(self._frames)
        try:
            while stop is None or index + 1 < stop:
                try:
                    frame = next(frames)
                except StopIteration:
                    return
                except DepthcloudError as exc:  # the source failed: the rest of it is lost
                    yield max(index + 1, start), exc
                    return
                index += 1
                if index >= start:
                    yield index, frame
        finally:
            frames.close()

    @abstractmethod
    def _frames(self) -> AsyncIterator[Frame]: ...


@dataclass(frozen=True)
class BagFrames(_Sequential):
    """Every depth frame of a RealSense ``.bag`` (played as fast as it is read, none skipped)."""

    path: str = ""

    def _frames(self) -> AsyncIterator[Frame]:
        from depthcloud.sources.realsense import BagSource

        return _source_frames(BagSource(self.path, realtime=False))


@dataclass(frozen=True)
class LogFrames(_Sequential):
    """The disparity frames of a farm-ng Amiga event log (``.bin``), in file order."""

    path: str = ""

    def _frames(self) -> AsyncIterator[Frame]:
        from depthcloud.amiga.source import replay_frames

        return replay_frames(self.path)


@dataclass(frozen=True)
class StreamFrames(_Sequential):
    """Any source spec :func:`depthcloud.sources.open_source` opens (``mono:…``, live cameras)."""

    spec: str = ""

    def _frames(self) -> AsyncIterator[Frame]:
        from depthcloud.sources import open_source

        try:
            source = open_source(self.spec, realtime=False)
        except TypeError:  # a source without pacing (a live device) takes no realtime option
            source = open_source(self.spec)
        return _source_frames(source)


# -- from what the user typed -------------------------------------------------------------------------


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                  and not p.name.startswith("."))


def _subfolder(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def _paired(main: list[Path], colors: list[Path] | None, what: str, folder: Path) -> tuple[tuple[str, str | None], ...]:
    if not main:
        raise InputError(f"no {what} files ({' '.join(DEPTH_SUFFIXES)}) in this folder", path=folder)
    if colors is None:
        return tuple((str(p), None) for p in main)
    if len(colors) != len(main):
        raise InputError(f"{len(main)} {what} files but {len(colors)} colour images; they pair up in name order, "
                         "so the counts must match", path=folder)
    return tuple((str(a), str(b)) for a, b in zip(main, colors, strict=True))


def _calibration(camera: str | Path | None, need: str, where: str) -> Intrinsics | StereoRig:
    if camera is None:
        raise InputError(f"{where}: {need}; pass --camera FILE (any calibration file `depthcloud info` reads)")
    from depthcloud.io.calibfiles import load_calibration

    p = Path(camera)
    if not p.is_file():
        raise InputError("no such calibration file", path=p)
    return load_calibration(p)


def _rig(camera: str | Path | None, where: str, *, rectified: bool) -> StereoRig:
    cal = _calibration(camera, "a stereo rig is needed", where)
    if not isinstance(cal, StereoRig):
        raise InputError(f"{where}: --camera {camera} is a single camera; this source needs a stereo rig")
    if rectified and not cal.rectified:
        raise InputError(f"{where}: --camera {camera} is an unrectified rig; disparity needs the rectified one "
                         "(`depthcloud calibrate stereo` saves it)")
    return cal


def _folder_sets(kind: str, folder: Path, label: str, camera: Any, options: dict[str, Any]) -> FrameSet:
    where = f"{kind}:{folder}"
    color_dir = _subfolder(folder, ("color", "rgb", "image", "images"))
    if kind == "stereo":
        left, right = _subfolder(folder, ("left",)), _subfolder(folder, ("right",))
        if left is None or right is None:
            raise InputError("a stereo folder needs left/ and right/ subfolders of images", path=folder)
        lefts, rights = _files(left, COLOR_SUFFIXES), _files(right, COLOR_SUFFIXES)
        if not lefts or len(lefts) != len(rights):
            raise InputError(f"left/ has {len(lefts)} images and right/ {len(rights)}; they pair up in name order",
                             path=folder)
        return StereoFolder(label, tuple((str(a), str(b)) for a, b in zip(lefts, rights, strict=True)),
                            rig=_rig(camera, where, rectified=False), preset=options.get("preset") or "balanced",
                            min_depth_m=options.get("min_depth_m"), max_depth_m=options.get("max_depth_m"))
    main_dir = _subfolder(folder, (kind,)) or folder
    main = _files(main_dir, DEPTH_SUFFIXES)
    colors = None if color_dir is None or main_dir == folder else _files(color_dir, COLOR_SUFFIXES)
    items = _paired(main, colors, kind, main_dir)
    if kind == "disparity":
        return DisparityFolder(label, items, rig=_rig(camera, where, rectified=True),
                               disparity_scale=options.get("disparity_scale"))
    cal = _calibration(camera, "depth images need the camera that took them", where)
    intr = cal.left if isinstance(cal, StereoRig) else cal
    return DepthFolder(label, items, intrinsics=intr, depth_scale=options.get("depth_scale"))


def _bag_estimate(path: str) -> int | None:
    """Frames of a .bag from its duration and depth rate (to balance ranges; reading never relies on it)."""
    try:
        import pyrealsense2 as rs

        device = rs.context().load_device(path)
        seconds = device.as_playback().get_duration().total_seconds()
        fps = max(p.fps() for s in device.query_sensors() for p in s.get_stream_profiles()
                  if p.stream_type() == rs.stream.depth)
        return max(1, round(seconds * fps) + 1)
    except Exception:  # an estimate only; the bag's real problems show when it is read
        return None


def open_frames(spec: str, *, camera: str | Path | None = None, label: str | None = None,
                **options: Any) -> FrameSet:
    """The frame set a source argument names.

    spec: ``bag:FILE`` or ``FILE.bag``; ``replay:FILE`` or ``FILE.dcrec``; ``amiga:FILE.bin`` or
    ``FILE.bin``; ``synthetic[:WxH[@FPS]]``; ``depth:FOLDER``, ``disparity:FOLDER``, ``stereo:FOLDER`` or
    a bare folder (``left/`` + ``right/`` → stereo, else depth images, in the folder or its ``depth/``,
    with colour from ``color/`` when present); any other ``SCHEME:ARG`` that open_source knows.
    camera: the calibration file (depth folders: the camera; disparity and stereo: the rig).
    options: depth_scale, disparity_scale, preset, min_depth_m, max_depth_m (stereo search range).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"source: expected a path or a source spec, got {spec!r}")
    spec = spec.strip()
    scheme, colon, arg = spec.partition(":")
    if not colon or len(scheme) == 1 or not scheme.isidentifier():  # a plain path (C:\… on Windows)
        scheme, arg = "", spec
    path = Path(arg)
    name = label or (path.name if scheme in ("", "depth", "disparity", "stereo", "bag", "replay", "amiga")
                     else re.sub(r"[^A-Za-z0-9_.-]+", "_", spec))
    if scheme in ("depth", "disparity", "stereo") or (scheme == "" and path.is_dir()):
        if not path.is_dir():
            raise InputError("no such folder", path=path)
        kind = scheme or ("stereo" if (path / "left").is_dir() and (path / "right").is_dir() else "depth")
        return _folder_sets(kind, path, name, camera, options)
    suffix = path.suffix.lower()
    if scheme == "bag" or (scheme == "" and suffix == ".bag"):
        from depthcloud.sources.realsense import open_bag

        open_bag(arg)  # checks pyrealsense2 and the file, with the source's own messages
        return BagFrames(name, estimate=_bag_estimate(arg), path=arg)
    if scheme == "replay" or (scheme == "" and suffix == ".dcrec"):
        from depthcloud.sources.replay import RecordingReader

        if not path.is_file():
            raise SourceError("no such recording", path=path)
        with RecordingReader(path) as reader:
            offsets = tuple(reader.offsets())
        return RecordingFrames(name, offsets, path=arg)
    if (scheme == "amiga" and suffix == ".bin") or (scheme == "" and suffix == ".bin"):
        if not path.is_file():
            raise SourceError("no such event log", path=path)
        return LogFrames(name, path=arg)
    if scheme == "synthetic":
        from depthcloud.sources.synthetic import open_synthetic

        src = open_synthetic(arg)
        stop = options.get("stop")
        if stop is None:
            raise InputError("synthetic: the synthetic scene never ends; give --frames A:B")
        return SyntheticFrames(name, range(int(stop)), intrinsics=src.intrinsics, fps=src.fps)
    if scheme == "":
        raise InputError("no such file or folder (sources: a folder, FILE.bag, FILE.dcrec, FILE.bin or a spec "
                         "such as synthetic:640x480)", path=path)
    from depthcloud.sources import known_schemes

    if scheme not in known_schemes():
        raise ConfigError(f"source {spec!r}: unknown scheme {scheme!r}; known: bag, replay, amiga, synthetic, depth, "
                          f"disparity, stereo, {', '.join(s for s in known_schemes() if s not in ('bag', 'replay', 'amiga', 'synthetic'))}")
    if options.get("stop") is None and (scheme == "realsense" or (scheme == "amiga" and suffix != ".bin")):
        raise InputError(f"{spec}: a live camera never ends; give --frames A:B")
    return StreamFrames(name, spec=spec)
