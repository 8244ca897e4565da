"""depthcloud: metric, coloured 3D point clouds from cameras and depth sensors.

The public API is listed in ``__all__``; submodules hold the rest (``depthcloud.io``,
``depthcloud.sources``, ``depthcloud.serve``, ``depthcloud.amiga``).
"""

from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.cloud import FRAMES, PointCloud
from depthcloud.errors import (
    CalibrationError,
    ConfigError,
    DepthcloudError,
    FormatError,
    InputError,
    MissingDependencyError,
    OutputExistsError,
    ProtocolError,
    SourceError,
    SourceTimeout,
    StereoError,
)
from depthcloud.frame import Frame
from depthcloud.geometry import Unprojector, depth_to_points, disparity_to_depth, reproject_with_q

__version__ = "0.1.0"

__all__ = [
    "FRAMES",
    "CalibrationError",
    "ConfigError",
    "DepthcloudError",
    "FormatError",
    "Frame",
    "InputError",
    "Intrinsics",
    "MissingDependencyError",
    "OutputExistsError",
    "PointCloud",
    "ProtocolError",
    "SourceError",
    "SourceTimeout",
    "StereoError",
    "StereoRig",
    "Unprojector",
    "__version__",
    "depth_to_points",
    "disparity_to_depth",
    "reproject_with_q",
]
