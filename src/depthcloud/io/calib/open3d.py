"""Open3D's ``PinholeCameraIntrinsic`` JSON: ``width``, ``height`` and ``intrinsic_matrix`` (the 3×3 matrix
as 9 numbers in column-major order, as ``o3d.io.write_pinhole_camera_intrinsic`` writes it).

Open3D's pixel convention is depthcloud's (integer pixel centres), so the numbers pass unchanged.
This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from depthcloud.camera import Intrinsics
from depthcloud.errors import FormatError
from depthcloud.io._files import read_input
from depthcloud.io.calib._common import PathArg, _as_int, _as_vector, _intrinsics, _json_doc, _require, _text

OPEN3D_KEYS = ("width", "height", "intrinsic_matrix")


def is_open3d_intrinsic(doc: Any) -> bool:
    """True for a parsed JSON object that looks like Open3D's PinholeCameraIntrinsic."""
    return isinstance(doc, Mapping) and "intrinsic_matrix" in doc


def read_open3d_intrinsic(path: PathArg) -> Intrinsics:
    """A camera from an Open3D PinholeCameraIntrinsic JSON file (pinhole, no distortion)."""
    return parse_open3d_intrinsic(_json_doc(_text(read_input(path), path), path), source=path)


def parse_open3d_intrinsic(doc: Any, *, source: PathArg = "<open3d>") -> Intrinsics:
    """The parsed JSON of an Open3D PinholeCameraIntrinsic as Intrinsics; ``source`` names it in errors."""
    if not isinstance(doc, Mapping):
        raise FormatError(f"expected a JSON object, got {type(doc).__name__}", path=source)
    _require(doc, OPEN3D_KEYS, path=source, what="Open3D PinholeCameraIntrinsic")
    w = _as_int(doc["width"], path=source, key="width", low=1)
    h = _as_int(doc["height"], path=source, key="height", low=1)
    m = _as_vector(doc["intrinsic_matrix"], path=source, key="intrinsic_matrix", sizes=(9,))
    K = np.array(m, dtype=np.float64).reshape(3, 3).T  # stored column-major
    return _intrinsics(K, w, h, (), "none", path=source, key="intrinsic_matrix")
