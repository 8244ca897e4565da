"""Plausibility on the command line: print :mod:`depthcloud.plausibility`'s warnings and refuse an
empty cloud (exit 2, nothing written) unless ``--allow-empty`` asked for one.

Every command that writes a cloud calls :func:`check_cloud` between making the cloud and writing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import numpy as np
import typer

from depthcloud.cli._common import err_console
from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError
from depthcloud.plausibility import (
    cloud_warnings,
    depth_warnings,
    empty_cloud_message,
    limit_warnings,
    saturation_warnings,
)

AllowEmptyOpt = Annotated[bool, typer.Option("--allow-empty", help="Write an empty cloud instead of refusing it.")]


def warn(lines: Iterable[str]) -> None:
    """Each warning as one line on stderr: ``warning: …``."""
    for line in lines:
        err_console.print(f"warning: {line}", markup=False, soft_wrap=True, highlight=False)


def check_cloud(
    cloud: PointCloud,
    depth_m: np.ndarray,
    *,
    what: str,
    min_depth_m: float | None,
    max_depth_m: float | None,
    allow_empty: bool,
    scale_hint: str | None = "--depth-scale",
) -> None:
    """Warn about implausible depths, limits and near-empty clouds; raise InputError for an empty one.

    scale_hint: the option that sets the units of ``depth_m`` (None: the depth came from a disparity
    and a calibration, so units are not the user's to fix with a scale).
    """
    lines = depth_warnings(depth_m, what=what, scale_hint=scale_hint) if scale_hint else []
    lines += limit_warnings(min_depth_m, max_depth_m, depth_m, what=what)
    n_pixels = int(np.asarray(depth_m).size)
    if len(cloud) == 0 and not allow_empty:
        warn(lines)
        raise InputError(empty_cloud_message(what, n_pixels, hint="--allow-empty writes it anyway"))
    warn(lines + cloud_warnings(cloud, n_pixels, what=what))


def check_stereo(result: Any, matcher: Any, *, what: str, allow_empty: bool) -> None:
    """:func:`check_cloud` for a :class:`~depthcloud.stereo.StereoResult`, plus a warning when the
    disparity search ran into its limit (things nearer than it reaches come out too far)."""
    rig = result.rig
    warn(saturation_warnings(result.disparity, min_disparity=matcher.min_disparity,
                             num_disparities=matcher.num_disparities, focal_px=rig.focal_px,
                             baseline_m=rig.baseline_m, doffs_px=rig.doffs_px, matched=result.matched, what=what))
    check_cloud(result.cloud, result.depth, what=what, min_depth_m=matcher.min_depth_m,
                max_depth_m=matcher.max_depth_m, allow_empty=allow_empty, scale_hint=None)


def check_first_frame(
    cloud: PointCloud, depth_m: np.ndarray, *, what: str, min_depth_m: float | None, max_depth_m: float | None
) -> None:
    """For a stream (a live camera): warn, never refuse, about the first frame's depth limits and cloud;
    the scene may change, so later frames are not judged."""
    lines = limit_warnings(min_depth_m, max_depth_m, depth_m, what=what)
    n_pixels = int(np.asarray(depth_m).size)
    if len(cloud) == 0:
        lines.append(f"{what}: the first frame's cloud is empty (0 points from {n_pixels} pixels)")
    else:
        lines += cloud_warnings(cloud, n_pixels, what=what)
    warn(lines)
