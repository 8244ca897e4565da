"""The frame → cloud chain that ``serve`` and ``export`` share: filters, unprojection, cloud operations.

Order (one definition, so a served cloud and an exported file of the same frame are the same points):

1. at full resolution, once per frame and in stream order: spatial → temporal → hole filling
   (librealsense's semantics, :meth:`FilterChain.from_options`); the temporal filter keeps state;
2. decimation by a magnitude (``serve`` clients pick theirs; ``export`` uses ``decimation``);
3. unprojection keeping depths in [min_depth_m, max_depth_m];
4. voxel grid (``voxel_m`` > 0), in the optical frame;
5. conversion to the named output ``frame``;
6. crop to an axis-aligned box given in that output frame;
7. statistical outlier removal (PCL's rule, 20 neighbours, 2 σ).

This module must not import a source, the server, the exporter or the CLI.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from depthcloud import _validate as v
from depthcloud.cloud import FRAMES, PointCloud
from depthcloud.errors import InputError
from depthcloud.frame import Frame
from depthcloud.geometry import Unprojector

__all__ = ["CloudOptions", "CloudPipeline"]

OUTLIER_NEIGHBORS = 20
OUTLIER_STD_RATIO = 2.0


@dataclass(frozen=True)
class CloudOptions:
    """What the chain does (see the module docstring for the order).

    decimation: magnitude 1..8 (1 = every pixel); temporal, spatial: librealsense's filters with their
    defaults; holes: a hole-filling mode (``fill_from_left``, ``farthest``, ``nearest``) or None;
    min_depth_m, max_depth_m: depth kept, metres; voxel_m: voxel edge in metres (0 = none);
    frame: output frame name; crop: (x0, y0, z0, x1, y1, z1) metres in the output frame, or None;
    outliers: remove statistical outliers.
    """

    decimation: int = 1
    temporal: bool = False
    spatial: bool = False
    holes: str | None = None
    min_depth_m: float = 0.0
    max_depth_m: float = math.inf
    voxel_m: float = 0.0
    frame: str = "optical"
    crop: tuple[float, float, float, float, float, float] | None = None
    outliers: bool = False

    def __post_init__(self) -> None:
        v.integer("decimation", self.decimation, low=1, high=8)
        lo = v.number("min_depth_m", self.min_depth_m, nonnegative=True)
        hi = v.number("max_depth_m", self.max_depth_m, positive=True, allow_inf=True)
        if lo > hi:
            raise InputError(f"min_depth_m {lo} exceeds max_depth_m {hi}")
        v.number("voxel_m", self.voxel_m, nonnegative=True)
        if self.frame not in FRAMES:
            raise InputError(f"frame: expected one of {', '.join(FRAMES)}, got {self.frame!r}")
        if self.crop is not None:
            box = tuple(float(x) for x in self.crop)
            if len(box) != 6 or not all(math.isfinite(x) for x in box):
                raise InputError(f"crop: expected six finite numbers x0,y0,z0,x1,y1,z1, got {self.crop!r}")
            if any(box[i] > box[i + 3] for i in range(3)):
                raise InputError(f"crop: the minimum corner {box[:3]} exceeds the maximum corner {box[3:]}")
            object.__setattr__(self, "crop", box)
        if self.holes is not None:
            from depthcloud.filters import HoleFilling

            HoleFilling(self.holes)


class CloudPipeline:
    """Frame → filtered full-resolution frame (:meth:`prepare`) → cloud at a decimation magnitude
    (:meth:`cloud`). Thread-safe for :meth:`cloud`; :meth:`prepare` is stateful (temporal filter):
    call it once per frame, in stream order, and :meth:`reset` when the stream starts over."""

    def __init__(self, options: CloudOptions) -> None:
        if not isinstance(options, CloudOptions):
            raise InputError(f"options: expected CloudOptions, got {type(options).__name__}")
        self.options = options
        self._base: Any = None
        if options.temporal or options.spatial or options.holes is not None:
            self._base = self._chain(temporal=options.temporal, spatial=options.spatial, holes=options.holes)
        self._decimators: dict[int, Any] = {}
        self._unprojectors: dict[Any, Unprojector] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _chain(**options: Any) -> Any:
        from depthcloud.filters import FilterChain

        return FilterChain.from_options(**options)

    @property
    def stateful(self) -> bool:
        """True when a frame's cloud depends on the frames before it (the temporal filter)."""
        return self.options.temporal

    def reset(self) -> None:
        """Forget the temporal filter's history (a reopened source starts a new stream)."""
        if self._base is not None:
            self._base.reset()

    def prepare(self, frame: Frame) -> Frame:
        """The full-resolution filtered frame (stateful filters: call once per frame, in order)."""
        return frame if self._base is None else self._base.apply(frame)

    def decimated(self, frame: Frame, magnitude: int | None = None) -> Frame:
        """A prepared frame decimated by ``magnitude`` (1..8, default the options'), colour and intrinsics too."""
        magnitude = self.options.decimation if magnitude is None else magnitude
        if magnitude <= 1:
            return frame
        with self._lock:
            chain = self._decimators.get(magnitude)
            if chain is None:
                chain = self._decimators[magnitude] = self._chain(decimation=magnitude)
        return chain.apply(frame)

    def cloud(self, frame: Frame, magnitude: int | None = None) -> PointCloud:
        """The cloud of a prepared frame at decimation ``magnitude`` (default: the options')."""
        opt = self.options
        frame = self.decimated(frame, magnitude)
        with self._lock:
            unproject = self._unprojectors.get(frame.intrinsics)
            if unproject is None:
                if len(self._unprojectors) > 32:
                    self._unprojectors.clear()
                unproject = self._unprojectors[frame.intrinsics] = Unprojector(frame.intrinsics)
        cloud = unproject(frame.depth, color=frame.color, min_depth_m=opt.min_depth_m, max_depth_m=opt.max_depth_m,
                          stamp=frame.stamp)
        if opt.voxel_m > 0:
            cloud = cloud.voxel_downsample(opt.voxel_m)
        if opt.frame != cloud.frame:
            cloud = cloud.to_frame(opt.frame)
        if opt.crop is not None:
            cloud = cloud.crop(opt.crop[:3], opt.crop[3:])
        if opt.outliers:
            cloud = cloud.remove_statistical_outliers(neighbors=OUTLIER_NEIGHBORS, std_ratio=OUTLIER_STD_RATIO)
        return cloud

    def __call__(self, frame: Frame) -> PointCloud:
        """prepare + cloud at the options' decimation: one frame of a stream, in order."""
        return self.cloud(self.prepare(frame))
