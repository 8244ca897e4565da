"""ROS ``camera_info`` YAML, as ``camera_calibration_parsers`` reads and writes it.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from depthcloud.camera import Intrinsics
from depthcloud.errors import FormatError, InputError
from depthcloud.io._files import read_input, write_atomic
from depthcloud.io.calib._common import (
    PathArg,
    _as_float,
    _as_int,
    _clip,
    _intrinsics,
    _refuse_unknown,
    _require,
    _text,
)

_ROS_KEYS = (
    "image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
    "distortion_coefficients", "rectification_matrix", "projection_matrix",
)
_ROS_MODELS = {"plumb_bob": ("opencv", (0, 4, 5)), "rational_polynomial": ("opencv", (0, 8, 12, 14)),
               "equidistant": ("fisheye", (0, 4))}
_ROS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


def read_ros_camera_info(path: PathArg) -> Intrinsics:
    """A camera from a ROS ``camera_info`` YAML file (as ``camera_calibration_parsers`` writes it).

    Uses image_width, image_height, camera_matrix and distortion_model/distortion_coefficients
    (plumb_bob → "opencv" 5, rational_polynomial → "opencv" 8, equidistant → "fisheye" 4);
    rectification_matrix and projection_matrix are checked for shape only.
    """
    return parse_ros_camera_info(read_input(path), source=path)


def parse_ros_camera_info(text: str | bytes, *, source: PathArg = "<camera_info>") -> Intrinsics:
    """Parse the content of a ROS ``camera_info`` YAML file; ``source`` names it in errors."""
    body = _text(text, source) if isinstance(text, bytes) else text
    doc = _yaml_doc(body, source)
    if not isinstance(doc, dict):
        raise FormatError("expected a YAML map with camera_matrix, distortion_coefficients, ...", path=source)
    _require(doc, ("image_width", "image_height", "camera_matrix", "distortion_coefficients"), path=source,
             what="ROS camera_info")
    _refuse_unknown(doc, _ROS_KEYS, path=source, what="ROS camera_info")
    w = _as_int(doc["image_width"], path=source, key="image_width", low=1)
    h = _as_int(doc["image_height"], path=source, key="image_height", low=1)
    K = _ros_matrix(doc["camera_matrix"], (3, 3), source, "camera_matrix")
    D = _ros_matrix(doc["distortion_coefficients"], None, source, "distortion_coefficients").ravel()
    model_name = doc.get("distortion_model", "plumb_bob")
    if not isinstance(model_name, str) or model_name not in _ROS_MODELS:
        raise FormatError(f"expected one of {', '.join(_ROS_MODELS)}, got {_clip(str(model_name))!r}",
                          path=source, key="distortion_model")
    model, counts = _ROS_MODELS[model_name]
    if len(D) not in counts:
        raise FormatError(f"{model_name} takes {' or '.join(map(str, counts[1:]))} coefficients, got {len(D)}",
                          path=source, key="distortion_coefficients")
    for key, shape in (("rectification_matrix", (3, 3)), ("projection_matrix", (3, 4))):
        if key in doc:
            _ros_matrix(doc[key], shape, source, key)
    return _intrinsics(K, w, h, tuple(D.tolist()), model if len(D) else "none", path=source, key="camera_matrix")


def _yaml_doc(body: str, source: PathArg) -> Any:
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FormatError(f"not valid YAML: {problem}", path=source,
                          line=None if mark is None else mark.line + 1) from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise FormatError(f"not valid YAML: {exc}", path=source) from exc


def _ros_matrix(node: Any, shape: tuple[int, int] | None, source: PathArg, key: str) -> np.ndarray:
    if not isinstance(node, dict):
        raise FormatError("expected a map with rows, cols and data", path=source, key=key)
    _require(node, ("rows", "cols", "data"), path=source, what=key)
    _refuse_unknown(node, ("rows", "cols", "data"), path=source, what=key)
    rows = _as_int(node["rows"], path=source, key=f"{key}.rows", low=0)
    cols = _as_int(node["cols"], path=source, key=f"{key}.cols", low=0)
    data = node["data"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise FormatError(f"expected a list, got {type(data).__name__}", path=source, key=f"{key}.data")
    if len(data) != rows * cols:
        raise FormatError(f"rows x cols = {rows}x{cols} but data has {len(data)} values", path=source, key=f"{key}.data")
    if shape is not None and (rows, cols) != shape:
        raise FormatError(f"expected a {shape[0]}x{shape[1]} matrix, got {rows}x{cols}", path=source, key=key)
    arr = np.array([_as_float(x, path=source, key=f"{key}.data") for x in data], dtype=np.float64)
    return arr.reshape(rows, cols)


def _yaml_float(x: float) -> str:
    """Shortest exact text of ``x`` that YAML 1.1 (PyYAML, yaml-cpp) reads as a float."""
    s = repr(float(x))
    mant, e, exp = s.partition("e")
    if e and "." not in mant:
        s = f"{mant}.0e{exp}"
    return s


def _yaml_matrix(name: str, rows: int, cols: int, values: Sequence[float]) -> str:
    data = ", ".join(_yaml_float(x) for x in values)
    return f"{name}:\n  rows: {rows}\n  cols: {cols}\n  data: [{data}]\n"


def write_ros_camera_info(
    path: PathArg, intrinsics: Intrinsics, *, camera_name: str = "camera", overwrite: bool = False
) -> Path:
    """Write ``intrinsics`` as a ROS ``camera_info`` YAML file; refuses an existing path unless ``overwrite``.

    distortion_model: "opencv" with 4–5 coefficients → plumb_bob, 8/12/14 → rational_polynomial (all
    coefficients kept), "fisheye" → equidistant, "none" → plumb_bob with five zeros. The rectification
    matrix is the identity and the projection matrix [K | 0]. Floats are written with their shortest
    exact text, so :func:`read_ros_camera_info` gives back equal intrinsics.
    """
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    if not isinstance(camera_name, str) or not _ROS_NAME.fullmatch(camera_name):
        raise InputError(f"camera_name: expected letters, digits, _ . / -, got {camera_name!r}")
    if intrinsics.model == "fisheye":
        model, dist = "equidistant", intrinsics.dist
    elif intrinsics.model == "none":
        model, dist = "plumb_bob", (0.0,) * 5
    else:
        model = "plumb_bob" if len(intrinsics.dist) <= 5 else "rational_polynomial"
        dist = intrinsics.dist
    K = intrinsics.K
    P = np.hstack([K, np.zeros((3, 1))])
    text = (
        f"image_width: {intrinsics.width}\nimage_height: {intrinsics.height}\ncamera_name: {camera_name}\n"
        + _yaml_matrix("camera_matrix", 3, 3, K.ravel().tolist())
        + f"distortion_model: {model}\n"
        + _yaml_matrix("distortion_coefficients", 1, len(dist), dist)
        + _yaml_matrix("rectification_matrix", 3, 3, np.eye(3).ravel().tolist())
        + _yaml_matrix("projection_matrix", 3, 4, P.ravel().tolist())
    )
    return write_atomic(path, text.encode("utf-8"), overwrite=overwrite)
