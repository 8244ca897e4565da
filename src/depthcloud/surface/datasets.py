"""Posed RGB-D sequences on disk: frame folders, recordings, camera trajectories, Open3D intrinsics.

Frames (:func:`open_rgbd`), read one at a time as :class:`~depthcloud.frame.Frame` (depth in metres):

* an Open3D/Redwood folder: ``depth/`` (16-bit PNG, millimetres unless ``depth_scale`` says
  otherwise) and ``color/`` (or ``image/``, ``rgb/``), paired by ``rgbd.match`` (lines
  ``depth/00000.png color/00000.jpg``) when present, else by file name, else by sorted order;
* a TUM RGB-D folder: ``depth.txt`` and ``rgb.txt`` (lines ``stamp path``), depth PNG value / 5000 =
  metres; each depth image takes the colour image nearest in time (within ``max_dt_s``), depth images
  without one are skipped (TUM's associate.py does the same).

(``.dcrec`` recordings are read by :class:`depthcloud.sources.replay.RecordingReader`, a layer above
this one; ``depthcloud fuse`` takes them too.)

Trajectories (:func:`read_trajectory`), camera-to-world 4×4 per frame:

* Redwood/Open3D ``.log``: per frame a line of 3 integers, then 4 lines of the 4×4 matrix;
* TUM: lines ``stamp tx ty tz qx qy qz qw``, matched to frames by nearest time stamp;
* plain text with 16 numbers per frame (one 4×4 per 4 lines or per line) or 12 (a 3×4 per line,
  KITTI), or ``.npy`` of shape (N, 4, 4).

Intrinsics: :func:`read_open3d_intrinsic` reads Open3D's PinholeCameraIntrinsic JSON
(``width``, ``height``, ``intrinsic_matrix`` column-major); :func:`load_camera` takes that or any
file :func:`depthcloud.io.calibfiles.load_calibration` reads.

This module reads files only; it must not import sources, the server or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError, InputError
from depthcloud.frame import Frame
from depthcloud.io.calibfiles import load_calibration, read_open3d_intrinsic

__all__ = ["RGBDSequence", "Trajectory", "load_camera", "open_rgbd", "read_open3d_intrinsic", "read_trajectory",
           "with_camera"]

PathArg = str | Path
COLOR_DIRS = ("color", "image", "rgb")
_DEPTH_EXTS = (".png", ".pgm", ".pfm", ".npy", ".exr")
_COLOR_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


# ================================================================================================
# Intrinsics
# ================================================================================================


def load_camera(path: PathArg) -> Intrinsics:
    """The camera of a calibration file: any format ``load_calibration`` reads, Open3D's camera JSON
    included (a stereo rig gives its left camera)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file" if not p.exists() else "is a folder, expected a camera file", path=p)
    cal = load_calibration(p)
    return cal.left if isinstance(cal, StereoRig) else cal


# ================================================================================================
# Trajectories
# ================================================================================================


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Camera-to-world poses: (N, 4, 4) float64; ``stamps`` (N,) seconds for time-stamped formats
    (TUM), else None (the k-th pose belongs to the k-th frame). ``path`` names the file for errors."""

    poses: np.ndarray
    stamps: np.ndarray | None = None
    path: str = "<trajectory>"

    def __len__(self) -> int:
        return int(self.poses.shape[0])

    def for_frames(self, count: int, stamps: np.ndarray | None = None, *, max_dt_s: float = 0.02) -> np.ndarray:
        """(count, 4, 4) poses of ``count`` frames: by order, or for a stamped trajectory the pose
        nearest each frame stamp (within ``max_dt_s``). Too few poses is an InputError."""
        if self.stamps is None:
            if len(self) < count:
                raise InputError(f"has {len(self)} poses for {count} frames; give one pose per frame", path=self.path)
            return self.poses[:count]
        if stamps is None:
            raise InputError("is a time-stamped (TUM) trajectory, but the frames have no time stamps; give a .log "
                             "or 4×4-per-frame trajectory", path=self.path)
        st = np.asarray(stamps, dtype=np.float64)
        order = np.argsort(self.stamps, kind="stable")
        ts = self.stamps[order]
        pos = np.clip(np.searchsorted(ts, st), 1, len(ts) - 1) if len(ts) > 1 else np.zeros(len(st), np.int64)
        prev = np.maximum(pos - 1, 0)
        near = np.where(np.abs(ts[prev] - st) <= np.abs(ts[pos] - st), prev, pos)
        gap = np.abs(ts[near] - st)
        missing = np.flatnonzero(gap > max_dt_s)
        if len(missing):
            k = int(missing[0])
            raise InputError(f"{len(missing)} of {count} frames have no pose within {max_dt_s:g} s (first: frame {k} "
                             f"at stamp {st[k]:.6f}, nearest pose {gap[k]:.3f} s away)", path=self.path)
        return self.poses[order[near]]


def _quat_to_R(q: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions qx qy qz qw → (N, 3, 3) rotations (normalised first)."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x, y, z, w = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], 1)


def _rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the lines that are not blank or # comments; commas count as spaces."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((n, s.replace(",", " ").split()))
    return out


def _floats(fields: list[str], p: Path, line: int) -> list[float]:
    try:
        return [float(f) for f in fields]
    except ValueError as exc:
        raise FormatError(f"expected numbers, got {' '.join(fields)[:60]!r}", path=p, line=line) from exc


def read_trajectory(path: PathArg) -> Trajectory:
    """Camera-to-world poses from a Redwood/Open3D ``.log``, a TUM trajectory, a text file of 4×4 (or
    3×4) matrices, or an ``.npy`` of shape (N, 4, 4); the format is told from the content."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file" if not p.exists() else "is a folder, expected a trajectory file", path=p)
    if p.suffix.lower() == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FormatError(f"not a readable .npy array ({exc})", path=p) from exc
        if a.ndim != 3 or a.shape[1:] != (4, 4) or a.dtype.kind not in "fiu":
            raise FormatError(f"expected an (N, 4, 4) array of poses, got {a.shape} {a.dtype}", path=p)
        return _checked(a.astype(np.float64), None, p)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("not a text trajectory (not UTF-8)", path=p) from exc
    rows = _rows(text)
    if not rows:
        raise FormatError("no poses in the file", path=p)
    widths = {len(f) for _, f in rows}
    first = rows[0][1]
    if len(first) == 3 and all(re.fullmatch(r"-?\d+", f) for f in first):
        return _read_log(rows, p)
    if widths == {8}:
        a = np.array([_floats(f, p, n) for n, f in rows])
        T = np.tile(np.eye(4), (len(a), 1, 1))
        T[:, :3, :3] = _quat_to_R(a[:, 4:8])
        T[:, :3, 3] = a[:, 1:4]
        return _checked(T, a[:, 0], p)
    if widths in ({16}, {12}):
        a = np.array([_floats(f, p, n) for n, f in rows])
        T = np.tile(np.eye(4), (len(a), 1, 1))
        T[:, : a.shape[1] // 4] = a.reshape(len(a), -1, 4)
        return _checked(T, None, p)
    if widths == {4}:
        if len(rows) % 4:
            raise FormatError(f"expected 4 lines per 4×4 pose, got {len(rows)} lines", path=p)
        a = np.array([_floats(f, p, n) for n, f in rows]).reshape(-1, 4, 4)
        return _checked(a, None, p)
    raise FormatError("not a trajectory depthcloud reads: expected a Redwood .log (i j n + 4×4 per frame), TUM lines "
                      "(stamp tx ty tz qx qy qz qw), 4×4 or 3×4 matrices, or an .npy of (N, 4, 4)", path=p,
                      line=rows[0][0])


def _read_log(rows: list[tuple[int, list[str]]], p: Path) -> Trajectory:
    if len(rows) % 5:
        raise FormatError(f"a .log trajectory has 5 lines per frame (i j n, then 4×4); got {len(rows)} lines", path=p)
    mats = []
    for k in range(0, len(rows), 5):
        n, head = rows[k]
        if len(head) != 3:
            raise FormatError(f"expected the frame line 'i j n', got {' '.join(head)[:60]!r}", path=p, line=n)
        m = []
        for n, f in rows[k + 1 : k + 5]:
            if len(f) != 4:
                raise FormatError(f"expected 4 numbers of a matrix row, got {len(f)}", path=p, line=n)
            m.append(_floats(f, p, n))
        mats.append(m)
    return _checked(np.array(mats, dtype=np.float64), None, p)


def _checked(T: np.ndarray, stamps: np.ndarray | None, p: Path) -> Trajectory:
    if not np.isfinite(T).all():
        raise FormatError("a pose contains NaN or inf", path=p)
    R = T[:, :3, :3]
    bad = np.flatnonzero(~np.all(np.isclose(np.einsum("nij,nkj->nik", R, R), np.eye(3), atol=1e-3), axis=(1, 2))
                         | (np.linalg.det(R) < 0) | ~np.all(np.isclose(T[:, 3], [0, 0, 0, 1], atol=1e-6), axis=1))
    if len(bad):
        raise FormatError(f"pose {int(bad[0])} is not a rigid transform (rotation and last row [0 0 0 1])", path=p)
    return Trajectory(np.ascontiguousarray(T), stamps, str(p))


# ================================================================================================
# Frames
# ================================================================================================


@dataclass(frozen=True)
class _Item:
    depth: Path
    color: Path | None
    stamp: float | None


class RGBDSequence:
    """Frames of a folder, read one at a time.

    ``kind``: ``redwood`` or ``tum``. ``len()`` is the number of frames; ``stamps`` their time stamps
    in seconds (None for a Redwood folder, whose frames are matched to poses by order); ``skipped``
    the depth images left out for want of colour (TUM).
    """

    def __init__(self, path: PathArg, *, camera: Intrinsics | None = None, depth_scale: float | None = None,
                 max_dt_s: float = 0.02) -> None:
        self.path = Path(path)
        self.camera = camera
        self.depth_scale = depth_scale
        self.skipped = 0
        self._items: list[_Item] = []
        if not self.path.exists():
            raise InputError("no such folder", path=self.path)
        if not self.path.is_dir():
            raise InputError("expected a frames folder (Open3D/Redwood or TUM layout)", path=self.path)
        if (self.path / "depth.txt").is_file():
            self.kind = "tum"
            self._items = self._tum(max_dt_s)
        elif (self.path / "depth").is_dir():
            self.kind = "redwood"
            self._items = self._redwood()
        else:
            raise InputError("is neither an Open3D/Redwood folder (depth/ and color/) nor a TUM folder (depth.txt, "
                             "rgb.txt)", path=self.path)
        if not self._items:
            raise InputError("has no depth frames", path=self.path)
        if camera is None:
            raise InputError("the depth images come without intrinsics; give the camera with --camera FILE",
                             path=self.path)
        self._count = len(self._items)
        self._stamps = None if self.kind == "redwood" else np.array([it.stamp for it in self._items], np.float64)

    # -- listing --------------------------------------------------------------------------------
    def _redwood(self) -> list[_Item]:
        depth_dir = self.path / "depth"
        color_dir = next((self.path / d for d in COLOR_DIRS if (self.path / d).is_dir()), None)
        match = self.path / "rgbd.match"
        if match.is_file():
            items = []
            for n, fields in _rows(match.read_text(encoding="utf-8")):
                if len(fields) != 2:
                    raise FormatError(f"expected 'depth/NAME color/NAME', got {' '.join(fields)[:60]!r}", path=match,
                                      line=n)
                items.append(_Item(self.path / fields[0], self.path / fields[1], None))
            return items
        depths = sorted(f for f in depth_dir.iterdir() if f.suffix.lower() in _DEPTH_EXTS)
        if color_dir is None:
            return [_Item(d, None, None) for d in depths]
        colors = sorted(f for f in color_dir.iterdir() if f.suffix.lower() in _COLOR_EXTS)
        by_stem = {c.stem: c for c in colors}
        if all(d.stem in by_stem for d in depths):
            return [_Item(d, by_stem[d.stem], None) for d in depths]
        if len(colors) != len(depths):
            raise InputError(f"{len(depths)} depth images but {len(colors)} colour images in {color_dir.name}/ and no "
                             "rgbd.match to pair them", path=self.path)
        return [_Item(d, c, None) for d, c in zip(depths, colors, strict=True)]

    def _tum_list(self, name: str) -> tuple[np.ndarray, list[Path]]:
        f = self.path / name
        stamps, paths = [], []
        for n, fields in _rows(f.read_text(encoding="utf-8")):
            if len(fields) < 2:
                raise FormatError(f"expected 'stamp path', got {' '.join(fields)[:60]!r}", path=f, line=n)
            stamps.append(_floats(fields[:1], f, n)[0])
            paths.append(self.path / fields[1])
        return np.array(stamps, np.float64), paths

    def _tum(self, max_dt_s: float) -> list[_Item]:
        ds, dp = self._tum_list("depth.txt")
        if not (self.path / "rgb.txt").is_file():
            return [_Item(p, None, s) for s, p in zip(ds, dp, strict=True)]
        cs, cp = self._tum_list("rgb.txt")
        items = []
        if len(cs) == 0:
            raise InputError("rgb.txt lists no images", path=self.path)
        order = np.argsort(cs, kind="stable")
        cs_sorted = cs[order]
        for s, p in zip(ds, dp, strict=True):
            k = int(np.clip(np.searchsorted(cs_sorted, s), 1, len(cs_sorted) - 1)) if len(cs_sorted) > 1 else 0
            if k > 0 and abs(cs_sorted[k - 1] - s) <= abs(cs_sorted[k] - s):
                k -= 1
            if abs(cs_sorted[k] - s) > max_dt_s:
                self.skipped += 1
                continue
            items.append(_Item(p, cp[int(order[k])], float(s)))
        return items

    # -- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    @property
    def stamps(self) -> np.ndarray | None:
        return self._stamps

    def __iter__(self) -> Iterator[Frame]:
        from depthcloud.io.depthimage import read_color, read_depth

        for k, it in enumerate(self._items):
            if self.kind == "tum" and self.depth_scale is None:
                depth = read_depth(it.depth, kind="tum")
            else:
                depth = read_depth(it.depth, depth_scale=self.depth_scale)
            color = None if it.color is None else read_color(it.color)
            assert self.camera is not None
            yield with_camera(depth, self.camera, color, seq=k, stamp=it.stamp or 0.0, where=it.depth)


def with_camera(depth: np.ndarray, camera: Intrinsics, color: np.ndarray | None = None, *, seq: int = 0,
                stamp: float = 0.0, where: PathArg = "<frame>") -> Frame:
    """A Frame of ``depth`` with ``camera``; a size mismatch is an InputError naming ``where``."""
    try:
        return Frame(depth, camera, color, seq=seq, stamp=stamp)
    except InputError as exc:
        raise InputError(f"{exc.message} (camera {camera.width}x{camera.height} from --camera)", path=where) from exc


def open_rgbd(path: PathArg, *, camera: Intrinsics | None = None, depth_scale: float | None = None,
              max_dt_s: float = 0.02) -> RGBDSequence:
    """The frames of an Open3D/Redwood folder or a TUM folder (see the module).

    camera: intrinsics of the depth images (required). depth_scale: metres per stored unit of 16-bit depth (Redwood default 0.001,
    TUM 1/5000). max_dt_s: how far apart in time a TUM depth and colour image may be paired.
    """
    return RGBDSequence(path, camera=camera, depth_scale=depth_scale, max_dt_s=max_dt_s)
