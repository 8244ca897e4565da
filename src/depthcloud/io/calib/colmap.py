"""COLMAP ``cameras.txt``: one camera per line, ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``, ``#`` comments.

Models read (parameters in COLMAP's order) and the depthcloud distortion they become:

==========================  =============================================  ==================================
SIMPLE_PINHOLE              f, cx, cy                                      none
PINHOLE                     fx, fy, cx, cy                                 none
SIMPLE_RADIAL               f, cx, cy, k                                   opencv (k, 0, 0, 0)
RADIAL                      f, cx, cy, k1, k2                              opencv (k1, k2, 0, 0)
OPENCV                      fx, fy, cx, cy, k1, k2, p1, p2                 opencv (k1, k2, p1, p2)
FULL_OPENCV                 fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6  opencv, 8 coefficients
OPENCV_FISHEYE              fx, fy, cx, cy, k1, k2, k3, k4                 fisheye (k1..k4)
SIMPLE_RADIAL_FISHEYE       f, cx, cy, k                                   fisheye (k, 0, 0, 0)
RADIAL_FISHEYE              f, cx, cy, k1, k2                              fisheye (k1, k2, 0, 0)
==========================  =============================================  ==================================

Pixel convention: COLMAP puts the image's top-left *corner* at (0, 0), so the first pixel's centre is
(0.5, 0.5); depthcloud (like OpenCV) puts the first pixel's centre at (0, 0). The principal point is
therefore shifted by −0.5 px on both axes when read. This module must not import a source, the
server or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from depthcloud.camera import Intrinsics
from depthcloud.errors import FormatError
from depthcloud.io._files import read_input
from depthcloud.io.calib._common import PathArg, _clip, _intrinsics, _number, _text

# name → (parameter names, depthcloud model, how the distortion coefficients are made from k…)
COLMAP_MODELS: dict[str, tuple[tuple[str, ...], str]] = {
    "SIMPLE_PINHOLE": (("f", "cx", "cy"), "none"),
    "PINHOLE": (("fx", "fy", "cx", "cy"), "none"),
    "SIMPLE_RADIAL": (("f", "cx", "cy", "k"), "opencv"),
    "RADIAL": (("f", "cx", "cy", "k1", "k2"), "opencv"),
    "OPENCV": (("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"), "opencv"),
    "FULL_OPENCV": (("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"), "opencv"),
    "OPENCV_FISHEYE": (("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"), "fisheye"),
    "SIMPLE_RADIAL_FISHEYE": (("f", "cx", "cy", "k"), "fisheye"),
    "RADIAL_FISHEYE": (("f", "cx", "cy", "k1", "k2"), "fisheye"),
}
# What the first non-comment line of a cameras.txt looks like: an id, a known model, width, height.
_LINE = re.compile(r"^\s*\d+\s+(" + "|".join(COLMAP_MODELS) + r")\s+\d+\s+\d+\s", re.M)


def looks_like_colmap(text: str) -> bool:
    return bool(_LINE.search(text)) or "# Camera list with one line of data per camera" in text


def read_colmap_cameras(path: PathArg) -> dict[int, Intrinsics]:
    """Every camera of a COLMAP ``cameras.txt``, by camera id, in depthcloud's pixel convention."""
    return parse_colmap_cameras(read_input(path), source=path)


def read_colmap_camera(path: PathArg, *, camera_id: int | None = None) -> Intrinsics:
    """One camera of a COLMAP ``cameras.txt``: ``camera_id``, or the first one listed."""
    cams = read_colmap_cameras(path)
    if camera_id is None:
        return next(iter(cams.values()))
    if camera_id not in cams:
        raise FormatError(f"no camera with id {camera_id}; ids present: {', '.join(map(str, cams))}", path=path)
    return cams[camera_id]


def parse_colmap_cameras(text: str | bytes, *, source: PathArg = "<cameras.txt>") -> dict[int, Intrinsics]:
    """Parse the content of a COLMAP ``cameras.txt``; ``source`` names it in errors."""
    body = _text(text, source) if isinstance(text, bytes) else text
    cams: dict[int, Intrinsics] = {}
    for lineno, raw in enumerate(body.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        tokens = s.split()
        if len(tokens) < 4:
            raise FormatError(f"expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...', got {_clip(s)!r}",
                              path=source, line=lineno)
        cam_id = _whole(tokens[0], "CAMERA_ID", source, lineno, low=0)
        model = tokens[1]
        if model not in COLMAP_MODELS:
            raise FormatError(f"camera model {_clip(model)!r} is not read; known: {', '.join(COLMAP_MODELS)}",
                              path=source, line=lineno)
        names, dc_model = COLMAP_MODELS[model]
        params = tokens[4:]
        if len(params) != len(names):
            raise FormatError(f"{model} takes {len(names)} parameters ({', '.join(names)}), got {len(params)}",
                              path=source, line=lineno)
        w = _whole(tokens[2], "WIDTH", source, lineno, low=1)
        h = _whole(tokens[3], "HEIGHT", source, lineno, low=1)
        p = dict(zip(names, (_number(t, path=source, line=lineno, key=n) for t, n in zip(params, names, strict=True)),
                     strict=True))
        if cam_id in cams:
            raise FormatError(f"camera id {cam_id} appears twice", path=source, line=lineno)
        cams[cam_id] = _camera(p, w, h, dc_model, source=source, lineno=lineno)
    if not cams:
        raise FormatError("no camera lines (CAMERA_ID MODEL WIDTH HEIGHT PARAMS...)", path=source)
    return cams


def _whole(token: str, what: str, source: PathArg, lineno: int, *, low: int) -> int:
    x = _number(token, path=source, line=lineno, key=what)
    if not x.is_integer() or x < low:
        raise FormatError(f"{what}: expected an integer >= {low}, got {_clip(token)!r}", path=source, line=lineno)
    return int(x)


def _camera(p: dict[str, float], w: int, h: int, model: str, *, source: PathArg, lineno: int) -> Intrinsics:
    fx = p.get("fx", p.get("f"))
    fy = p.get("fy", p.get("f"))
    # COLMAP's (0.5, 0.5) is the first pixel's centre; depthcloud's is (0, 0).
    K = np.array([[fx, 0.0, p["cx"] - 0.5], [0.0, fy, p["cy"] - 0.5], [0.0, 0.0, 1.0]])
    ks: Sequence[float]
    if model == "none":
        ks = ()
    elif model == "fisheye":
        ks = [p.get("k1", p.get("k", 0.0)), p.get("k2", 0.0), p.get("k3", 0.0), p.get("k4", 0.0)]
    elif "k3" in p:  # FULL_OPENCV: OpenCV's rational order k1 k2 p1 p2 k3 k4 k5 k6
        ks = [p[k] for k in ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")]
    else:
        ks = [p.get("k1", p.get("k", 0.0)), p.get("k2", 0.0), p.get("p1", 0.0), p.get("p2", 0.0)]
    return _intrinsics(K, w, h, tuple(ks), model, path=source, key=f"line {lineno}")
