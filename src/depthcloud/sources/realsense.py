"""Intel RealSense: a live camera through pyrealsense2, and ``.bag`` recordings with no device.

Units are converted once, here: z16 depth × the device's depth scale → float32 metres, computed as
``float32(z16) * float32(depth_scale)`` — the product librealsense itself forms — so unprojecting a
Frame with :class:`~depthcloud.geometry.Unprojector` reproduces ``rs.pointcloud().calculate`` bit for
bit on pinhole depth streams.

Intrinsics come from the depth stream profile. librealsense's distortion models map as follows:
``none`` and any model whose coefficients are all 0 → ``"none"`` (the D400 depth streams);
``brown_conrady`` → OpenCV ``"opencv"`` (same k1, k2, p1, p2, k3 order and maths);
``kannala_brandt4`` → ``"fisheye"``. ``modified_brown_conrady`` and ``inverse_brown_conrady`` (D400
colour streams, usually with zero coefficients) have no OpenCV equivalent: such a *depth* stream is
refused with a clear error; for colour they are only used to align colour to depth, with
librealsense's own projection formula (:func:`project_points`).

Bag playback is sensor-level (every recorded depth frame, not only synchronised framesets); colour
frames are kept as they arrive and the newest one is aligned to each depth frame.

pyrealsense2 is optional: a missing one raises MissingDependencyError naming the ``realsense`` extra.
This module must not import the server or the CLI.
"""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics
from depthcloud.errors import ConfigError, FormatError, InputError, MissingDependencyError, SourceError
from depthcloud.frame import Frame
from depthcloud.sources.base import ReconnectPolicy, ThreadedSource

__all__ = [
    "FPS_CHOICES",
    "VISUAL_PRESETS",
    "BagSource",
    "RealSenseSource",
    "RsCamera",
    "align_color_to_depth",
    "depth_to_metres",
    "intrinsics_from_rs",
    "load_preset",
    "open_bag",
    "open_realsense",
    "project_points",
]

FPS_CHOICES = (6, 15, 30, 60, 90)
VISUAL_PRESETS = ("custom", "default", "hand", "high_accuracy", "high_density", "medium_density")


def _rs() -> Any:
    try:
        import pyrealsense2 as rs
    except (ImportError, OSError) as exc:  # OSError: a system library (libusb) it loads is missing
        raise MissingDependencyError.for_import_failure("pyrealsense2", "realsense", exc) from exc
    return rs


@dataclass(frozen=True)
class RsCamera:
    """A librealsense camera model as plain values: size, focal lengths and principal point in
    pixels, ``model`` (librealsense's distortion name, e.g. ``"brown_conrady"``) and its 5 coefficients."""

    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float
    model: str = "none"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def from_rs(cls, intr: Any) -> RsCamera:
        """From a ``pyrealsense2.intrinsics``."""
        return cls(
            int(intr.width), int(intr.height), float(intr.fx), float(intr.fy), float(intr.ppx), float(intr.ppy),
            str(intr.model).rsplit(".", 1)[-1], tuple(float(c) for c in intr.coeffs),
        )

    @property
    def distorted(self) -> bool:
        return self.model != "none" and any(c != 0.0 for c in self.coeffs)


def intrinsics_from_rs(intr: Any) -> Intrinsics:
    """Intrinsics of a ``pyrealsense2.intrinsics`` (or :class:`RsCamera`); see the module docstring
    for how distortion models map. Raises SourceError for models OpenCV cannot express."""
    cam = intr if isinstance(intr, RsCamera) else RsCamera.from_rs(intr)
    if not cam.distorted:
        return Intrinsics(cam.fx, cam.fy, cam.ppx, cam.ppy, cam.width, cam.height)
    if cam.model == "brown_conrady":
        return Intrinsics(cam.fx, cam.fy, cam.ppx, cam.ppy, cam.width, cam.height, dist=cam.coeffs[:5])
    if cam.model == "kannala_brandt4":
        return Intrinsics(
            cam.fx, cam.fy, cam.ppx, cam.ppy, cam.width, cam.height, dist=cam.coeffs[:4], model="fisheye"
        )
    raise SourceError(
        f"librealsense distortion model {cam.model!r} with coefficients {list(cam.coeffs)} has no OpenCV "
        "equivalent; depthcloud takes depth streams with none, brown_conrady or kannala_brandt4"
    )


def depth_to_metres(raw: np.ndarray, depth_scale: float) -> np.ndarray:
    """z16 depth (H, W) uint16 device units → (H, W) float32 metres; 0 stays 0 (invalid).

    depth_scale: metres per unit (0.001 on a D400). Computed in float32 as librealsense does.
    """
    d = v.image("depth", raw, kinds="u")
    scale = v.number("depth_scale", depth_scale, positive=True)
    return d.astype(np.float32) * np.float32(scale)


def project_points(points: np.ndarray, camera: RsCamera) -> np.ndarray:
    """(N, 3) float points in ``camera``'s frame → (N, 2) float32 pixel coordinates, with
    librealsense's projection (``rs2_project_point_to_pixel``) for every distortion model it uses on
    colour streams (none, brown_conrady, modified_brown_conrady, inverse_brown_conrady)."""
    p = v.array("points", points, shape=(None, 3), kinds="f", nonempty=False, expected="(N, 3)")
    p = p.astype(np.float32, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = p[:, 0] / p[:, 2]
        y = p[:, 1] / p[:, 2]
    k1, k2, p1, p2, k3 = (np.float32(c) for c in (*camera.coeffs, 0.0, 0.0, 0.0, 0.0, 0.0)[:5])
    if camera.distorted and camera.model in ("modified_brown_conrady", "inverse_brown_conrady"):
        r2 = x * x + y * y
        f = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        x = x * f
        y = y * f
        dx = x + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = y + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
        x, y = dx, dy
    elif camera.distorted and camera.model == "brown_conrady":
        r2 = x * x + y * y
        f = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        xf = x * f
        yf = y * f
        x, y = xf + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), yf + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
    elif camera.distorted:
        raise SourceError(f"cannot project with librealsense distortion model {camera.model!r}")
    out = np.empty((p.shape[0], 2), dtype=np.float32)
    out[:, 0] = x * np.float32(camera.fx) + np.float32(camera.ppx)
    out[:, 1] = y * np.float32(camera.fy) + np.float32(camera.ppy)
    return out


def align_color_to_depth(
    depth: np.ndarray,
    depth_camera: Intrinsics,
    color: np.ndarray,
    color_camera: RsCamera,
    *,
    rotation: np.ndarray,
    translation_m: np.ndarray,
) -> np.ndarray:
    """Colour resampled onto the depth image: (H, W, 3) uint8, black where depth is invalid or the
    point falls outside the colour image.

    depth: (H, W) float32 metres with intrinsics ``depth_camera``; color: (Hc, Wc, 3) uint8 RGB of
    ``color_camera``. rotation (3, 3) and translation_m (3,) map a depth-camera point into the colour
    camera's frame (X_c = R·X_d + t). Each depth pixel centre is unprojected, moved, projected with
    librealsense's model and takes the nearest colour pixel (librealsense's align splats pixel
    footprints instead; on edges the two can differ by a pixel).
    """
    from depthcloud.geometry import Unprojector

    d = v.image("depth", depth, kinds="f")
    c = v.color_image("color", color, (color_camera.height, color_camera.width))
    R = v.array("rotation", rotation, shape=(3, 3), kinds="f").astype(np.float32)
    t = v.array("translation_m", translation_m, shape=(3,), kinds="f").astype(np.float32)
    pts = Unprojector(depth_camera).organized(d).reshape(-1, 3)
    valid = np.isfinite(pts[:, 2])
    moved = pts[valid] @ R.T + t
    uv = project_points(moved, color_camera)
    u = np.floor(uv[:, 0] + 0.5).astype(np.int64)
    r = np.floor(uv[:, 1] + 0.5).astype(np.int64)
    inside = (u >= 0) & (u < color_camera.width) & (r >= 0) & (r < color_camera.height) & (moved[:, 2] > 0)
    out = np.zeros((d.size, 3), dtype=np.uint8)
    idx = np.flatnonzero(valid)[inside]
    out[idx] = c[r[inside], u[inside]]
    return out.reshape(*d.shape, 3)


def _extrinsics(extr: Any) -> tuple[np.ndarray, np.ndarray]:
    # librealsense stores the rotation column-major.
    R = np.asarray(extr.rotation, dtype=np.float64).reshape(3, 3).T
    return R, np.asarray(extr.translation, dtype=np.float64)


def load_preset(path: str | Path) -> str:
    """The text of a RealSense Viewer advanced-mode preset JSON, checked to be one.

    Accepts the flat form (``{"param-…": "…", …}``) and the schema form
    (``{"parameters": {"param-…": …}, …}``). Raises SourceError for a missing file and FormatError
    (with path and line) for anything that is not such a preset.
    """
    p = Path(path)
    if not p.is_file():
        raise SourceError("preset file not found", path=p)
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        raise FormatError("not a RealSense preset: not UTF-8 text", path=p) from exc
    except json.JSONDecodeError as exc:
        raise FormatError(f"not a RealSense preset: invalid JSON ({exc.msg})", path=p, line=exc.lineno) from exc
    params = data.get("parameters", data) if isinstance(data, dict) else None
    if not isinstance(params, dict) or not any(str(k).startswith(("param-", "controls-")) for k in params):
        raise FormatError(
            "not a RealSense advanced-mode preset: expected an object with 'param-…' keys "
            "(save one from the RealSense Viewer)", path=p,
        )
    return text


# -- bag playback ---------------------------------------------------------------------------------

_END = object()


class BagSource(ThreadedSource):
    """Every depth frame of a RealSense ``.bag`` recording, no device needed.

    realtime: play at the recorded pace (True) or as fast as the consumer takes frames (False: no
    frame is skipped). loop: start over at the end; seq and stamps keep increasing. color: attach
    the newest colour frame aligned to depth (when the recording has colour).
    Frames: depth float32 metres (z16 × the recorded depth scale), intrinsics of the depth stream,
    seq = the recorded frame number, stamp = the recorded timestamp in seconds. Colour and depth are
    separate streams at sensor level: a depth frame carries the newest colour frame that arrived
    before it (kept across loops); depth frames that come before the file's first colour frame are
    held until it arrives, so every frame of a recording with colour has colour.
    """

    #: seconds to wait for playback to begin or the next frame before calling the file broken
    stall_timeout_s = 10.0
    #: seconds without a frame, after playback reports its end, before the recording counts as done
    end_grace_s = 0.2
    #: seconds depth frames are held for the recording's first colour frame (a busy machine delays it)
    first_color_wait_s = 2.0

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = True,
        loop: bool = False,
        color: bool = True,
        frame_id: str = "realsense",
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        super().__init__(f"bag:{path}", reconnect=reconnect or ReconnectPolicy(max_retries=0))
        self.path = Path(path)
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self.want_color = bool(color)
        self.frame_id = frame_id
        self.lossless = not self.realtime
        self.depth_scale: float | None = None
        self.intrinsics: Intrinsics | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._sensors: list[Any] = []
        self._playback: Any = None
        self._played = threading.Event()
        self._stopped_playing = threading.Event()
        self._color: np.ndarray | None = None
        self._held: collections.deque[tuple[np.ndarray, int, float]] = collections.deque()
        self._color_camera: RsCamera | None = None
        self._extr: tuple[np.ndarray, np.ndarray] | None = None
        self._gen = 0  # which open() the librealsense callbacks belong to
        self._pass = 0
        self._seq_span = 0
        self._stamp_span = 0.0
        self._first: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None
        self._period_s = 0.0

    def _open(self) -> None:
        rs = _rs()
        if not self.path.is_file():
            raise SourceError("no such .bag file", path=self.path)
        if self._pass == 0:  # a loop reopens the same file: checked once is enough
            _check_bag(self.path)
        try:
            device = rs.context().load_device(str(self.path))
            playback = device.as_playback()
            playback.set_real_time(self.realtime)
            sensors = list(device.query_sensors())
        except RuntimeError as exc:
            raise SourceError(f"not a readable RealSense recording ({exc})", path=self.path) from exc
        depth_sensor = next((s for s in sensors if s.is_depth_sensor()), None)
        depth_profile = None if depth_sensor is None else _pick_profile(rs, depth_sensor, rs.stream.depth)
        if depth_sensor is None or depth_profile is None:
            raise SourceError("the recording has no z16 depth stream", path=self.path)
        self.depth_scale = float(depth_sensor.as_depth_sensor().get_depth_scale())
        vp = depth_profile.as_video_stream_profile()
        self.intrinsics = intrinsics_from_rs(vp.get_intrinsics())
        self._period_s = 1.0 / max(1, depth_profile.fps())
        self._playback = playback
        self._played.clear()
        self._stopped_playing.clear()
        # Callbacks of a previous open (before a loop's rewind) may still fire late: tag them.
        self._gen += 1
        gen = self._gen
        playback.set_status_changed_callback(lambda status: self._on_status(status, gen))
        chosen = [(depth_sensor, depth_profile)]
        if self.want_color:
            for s in sensors:
                if s is depth_sensor:
                    continue
                cp = _pick_profile(rs, s, rs.stream.color)
                if cp is not None:
                    self._color_camera = RsCamera.from_rs(cp.as_video_stream_profile().get_intrinsics())
                    self._extr = _extrinsics(depth_profile.get_extrinsics_to(cp))
                    chosen.append((s, cp))
                    break
        try:
            for s, prof in chosen:
                s.open(prof)
                self._sensors.append(s)
                s.start(lambda frame, s_gen=gen: self._on_frame(frame, s_gen))
        except RuntimeError as exc:
            self._close()
            raise SourceError(f"cannot play the recording ({exc})", path=self.path) from exc

    def _on_status(self, status: Any, gen: int) -> None:
        if gen != self._gen:
            return
        name = str(status).rsplit(".", 1)[-1]
        if name == "playing":
            self._played.set()
        elif name == "stopped" and self._played.is_set():
            self._stopped_playing.set()

    def _on_frame(self, frame: Any, gen: int) -> None:
        # Runs on librealsense's playback thread: copy the pixels out (the frame is recycled), and
        # block while the queue is full so that non-real-time playback never outruns us.
        if gen != self._gen:
            return
        rs = _rs()
        stream = frame.get_profile().stream_type()
        item: tuple[Any, ...]
        if stream == rs.stream.depth:
            item = ("depth", np.asanyarray(frame.get_data()).copy(), frame.get_frame_number(), frame.get_timestamp())
        elif stream == rs.stream.color:
            fmt = str(frame.get_profile().format()).rsplit(".", 1)[-1]
            img = np.asanyarray(frame.get_data()).copy()
            item = ("color", img[:, :, ::-1].copy() if fmt in ("bgr8", "bgra8") else img[:, :, :3].copy())
        else:
            return
        while not self._stop_event.is_set() and gen == self._gen:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _read(self) -> Frame | None:
        if self._held:
            return self._depth_frame(*self._held.popleft())
        waited = 0.0
        while not self._stop_event.is_set():
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                item = None
            if item is None:
                waited += 0.05
                # Frame callbacks run on their own threads and may land just after the playback
                # reports "stopped": the end is when the queue has stayed empty a moment after that.
                if self._held:
                    # Colour is delivered by another callback thread, possibly after playback reports
                    # its end: wait for it (bounded) before giving up and sending depth alone.
                    if waited >= self.first_color_wait_s:
                        return self._depth_frame(*self._held.popleft())
                    continue
                if self._stopped_playing.is_set() and self._queue.empty() and waited >= self.end_grace_s:
                    return self._rewind() if self.loop else None
                if waited > self.stall_timeout_s:
                    raise SourceError(f"playback stalled: no frame for {self.stall_timeout_s:g} s", path=self.path)
                continue
            waited = 0.0
            if item[0] == "color":
                self._color = item[1]
                if self._held:
                    return self._depth_frame(*self._held.popleft())
                continue
            depth = (item[1], int(item[2]), float(item[3]) / 1000.0)
            if self._color is None and self._color_camera is not None:
                # The recording's first depth frames can precede its first colour frame: hold them
                # until it comes, so that every frame has colour (kept across loops afterwards).
                self._held.append(depth)
                continue
            return self._depth_frame(*depth)
        return None

    def _depth_frame(self, raw: np.ndarray, number: int, stamp_s: float) -> Frame:
        assert self.intrinsics is not None and self.depth_scale is not None  # set by _open
        if self._first is None:
            self._first = (number, stamp_s)
        if self._pass == 0:
            self._last = (number, stamp_s)
        depth = depth_to_metres(raw, self.depth_scale)
        color = None
        if self._color is not None and self._color_camera is not None and self._extr is not None:
            color = align_color_to_depth(
                depth, self.intrinsics, self._color, self._color_camera,
                rotation=self._extr[0], translation_m=self._extr[1],
            )
        return Frame(
            depth, self.intrinsics, color, seq=number + self._pass * self._seq_span,
            stamp=stamp_s + self._pass * self._stamp_span, frame_id=self.frame_id,
        )

    def _rewind(self) -> Frame | None:
        if self._first is None or self._last is None:
            raise SourceError("the recording holds no depth frame", path=self.path)
        if self._pass == 0:
            self._seq_span = self._last[0] - self._first[0] + 1
            self._stamp_span = self._last[1] - self._first[1] + self._period_s
        self._pass += 1
        self._close()
        self._open()
        return self._read()

    def _close(self) -> None:
        # Retire this open's callbacks first: one blocked on a full queue must not hold sensor.stop().
        self._gen += 1
        for s in self._sensors:
            # A sensor that never started cannot stop, one never opened cannot close: skip those.
            with contextlib.suppress(RuntimeError):
                s.stop()
            with contextlib.suppress(RuntimeError):
                s.close()
        self._sensors = []
        self._playback = None
        while not self._queue.empty():
            self._queue.get_nowait()


def _pick_profile(rs: Any, sensor: Any, stream: Any) -> Any:
    wanted = {rs.stream.depth: (rs.format.z16,), rs.stream.color: (rs.format.rgb8, rs.format.bgr8, rs.format.rgba8,
                                                                    rs.format.bgra8)}[stream]
    for prof in sensor.get_stream_profiles():
        if prof.stream_type() == stream and prof.format() in wanted and prof.is_video_stream_profile():
            return prof
    return None


# -- live camera ----------------------------------------------------------------------------------


class RealSenseSource(ThreadedSource):
    """A live RealSense camera through ``pyrealsense2.pipeline``.

    serial: the device to use (None = the first). width × height @ fps: the depth (and colour) stream
    mode; fps one of 6, 15, 30, 60, 90. preset: a visual preset name (see ``VISUAL_PRESETS``) or an
    advanced-mode JSON file saved by the RealSense Viewer. color: also stream colour, aligned to depth
    by librealsense. timeout_s: how long one frame may take before the device counts as lost (then the
    reconnect policy applies). pipeline_factory: makes the pipeline object (tests inject a fake).
    """

    def __init__(
        self,
        *,
        serial: str | None = None,
        width: int = 848,
        height: int = 480,
        fps: int = 30,
        preset: str | Path | None = None,
        color: bool = True,
        timeout_s: float = 2.0,
        frame_id: str = "realsense",
        reconnect: ReconnectPolicy | None = None,
        pipeline_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.width = v.integer("width", width, low=1, high=4096)
        self.height = v.integer("height", height, low=1, high=4096)
        if isinstance(fps, bool) or fps not in FPS_CHOICES:
            raise InputError(f"fps: expected one of {', '.join(map(str, FPS_CHOICES))}, got {fps!r}")
        self.fps = int(fps)
        self.serial = None if serial is None else str(serial)
        self.preset_text: str | None = None
        self.preset_name: str | None = None
        if preset is not None:
            ps = str(preset)
            if ps.lower().endswith(".json"):
                self.preset_text = load_preset(ps)
            elif ps in VISUAL_PRESETS:
                self.preset_name = ps
            else:
                raise InputError(
                    f"preset: expected a .json file or one of {', '.join(VISUAL_PRESETS)}, got {ps!r}"
                )
        self.want_color = bool(color)
        self.timeout_s = v.number("timeout_s", timeout_s, positive=True)
        self.frame_id = frame_id
        super().__init__(f"realsense:{self.serial or 'any'}", reconnect=reconnect)
        self._factory = pipeline_factory
        self._pipe: Any = None
        self._align: Any = None
        self.depth_scale: float | None = None
        self.intrinsics: Intrinsics | None = None

    def _open(self) -> None:
        rs = _rs()
        pipe = (self._factory or rs.pipeline)()
        cfg = rs.config()
        if self.serial:
            cfg.enable_device(self.serial)
        cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        if self.want_color:
            cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        try:
            profile = pipe.start(cfg)
        except RuntimeError as exc:
            who = f"device {self.serial}" if self.serial else "a RealSense device"
            raise SourceError(
                f"cannot start {who} at {self.width}x{self.height}@{self.fps} ({exc})"
            ) from exc
        try:
            device = profile.get_device()
            sensor = device.first_depth_sensor()
            self.depth_scale = float(sensor.get_depth_scale())
            if self.preset_name is not None:
                names = {str(rs.rs400_visual_preset(i)).rsplit(".", 1)[-1]: i for i in range(6)}
                sensor.set_option(rs.option.visual_preset, float(names[self.preset_name]))
            if self.preset_text is not None:
                adv = rs.rs400_advanced_mode(device)
                if not adv.is_enabled():
                    raise SourceError(
                        "advanced mode is off on this device; enable it (RealSense Viewer) to load a JSON preset"
                    )
                adv.load_json(self.preset_text)
            vp = profile.get_stream(rs.stream.depth).as_video_stream_profile()
            self.intrinsics = intrinsics_from_rs(vp.get_intrinsics())
            self._align = rs.align(rs.stream.depth) if self.want_color else None
        except RuntimeError as exc:
            pipe.stop()
            raise SourceError(f"cannot configure the device ({exc})") from exc
        except SourceError:
            pipe.stop()
            raise
        self._pipe = pipe

    def _read(self) -> Frame | None:
        assert self.intrinsics is not None and self.depth_scale is not None  # set by _open
        try:
            frames = self._pipe.wait_for_frames(int(self.timeout_s * 1000))
        except RuntimeError as exc:
            raise SourceError(f"device lost: {exc}") from exc
        color = None
        if self._align is not None:
            try:
                frames = self._align.process(frames)
                color_frame = frames.get_color_frame()
                color = None if not color_frame else np.asanyarray(color_frame.get_data()).copy()
            except RuntimeError:
                # A frameset without its colour half cannot be aligned: deliver depth alone.
                color = None
        depth_frame = frames.get_depth_frame()
        raw = np.asanyarray(depth_frame.get_data())
        number, stamp_ms = depth_frame.get_frame_number(), depth_frame.get_timestamp()
        return Frame(
            depth_to_metres(raw, self.depth_scale), self.intrinsics, color, seq=int(number),
            stamp=float(stamp_ms) / 1000.0, frame_id=self.frame_id,
        )

    def _close(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            # A device that is gone has already taken its pipeline down: nothing left to stop.
            with contextlib.suppress(RuntimeError):
                pipe.stop()


# -- spec factories -------------------------------------------------------------------------------


def open_bag(arg: str, **options: Any) -> BagSource:
    """The ``bag:FILE`` source spec; options: realtime, loop, color, frame_id, reconnect."""
    if not arg:
        raise ConfigError("bag: expected 'bag:FILE.bag'")
    _rs()
    # A wrong path is the user's to fix now, not something a reconnect policy should wait out.
    if not Path(arg).is_file():
        raise SourceError("no such .bag file", path=arg)
    _check_bag(arg)
    return BagSource(arg, **options)


def _check_bag(path: str | Path) -> None:
    """Refuse a bag whose record lengths or chunk sizes are corrupt before librealsense reads it (it
    would allocate what they say); a FormatError is final, never a reason to retry."""
    from depthcloud.io.rosbag import scan_bag

    scan_bag(path)


def open_realsense(arg: str = "", **options: Any) -> RealSenseSource:
    """The ``realsense[:serial=…,width=…,height=…,fps=…,preset=…]`` source spec; ``options`` (Python
    values) override what the spec says."""
    _rs()
    kw: dict[str, Any] = {}
    ints = {"width", "height", "fps"}
    known = {*ints, "serial", "preset", "color"}
    for item in filter(None, (s.strip() for s in arg.split(","))):
        key, eq, val = item.partition("=")
        if not eq or key not in known:
            raise ConfigError(
                f"realsense: expected key=value with keys {', '.join(sorted(known))}, got {item!r}", key=key or None
            )
        if key in ints:
            try:
                kw[key] = int(val)
            except ValueError as exc:
                raise ConfigError(f"realsense: expected an integer, got {val!r}", key=key) from exc
        elif key == "color":
            kw[key] = val.lower() not in ("0", "false", "no", "off")
        else:
            kw[key] = val
    kw.update(options)
    try:
        return RealSenseSource(**kw)
    except InputError as exc:
        raise ConfigError(f"realsense: {exc}") from exc
