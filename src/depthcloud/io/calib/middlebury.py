"""Middlebury ``calib.txt`` (MiddEval3 / 2014): a rectified rig; the file's baseline is in millimetres.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace

import numpy as np

from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError
from depthcloud.io._files import read_input
from depthcloud.io.calib._common import (
    PathArg,
    _clip,
    _intrinsics,
    _number,
    _text,
)


@dataclass(frozen=True)
class MiddleburyCalib:
    """A Middlebury ``calib.txt``.

    rig: the rectified rig (cam0 left; right = cam1 with cx = cam0.cx + doffs, so that
    ``rig.doffs_px == doffs``; baseline in metres). width, height: image size in pixels. doffs: cx1 − cx0
    in pixels, as the file states it. cam0, cam1: the two cameras exactly as written. ndisp, isint, vmin, vmax, dyavg, dymax: the optional keys (None when absent).
    """

    rig: StereoRig
    width: int
    height: int
    doffs: float
    cam0: Intrinsics
    cam1: Intrinsics
    ndisp: int | None = None
    isint: bool | None = None
    vmin: float | None = None
    vmax: float | None = None
    dyavg: float | None = None
    dymax: float | None = None

    @property
    def baseline_mm(self) -> float:
        return self.rig.baseline_m * 1000.0

    @property
    def focal_px(self) -> float:
        return self.rig.left.fx


_MB_REQUIRED = ("cam0", "cam1", "doffs", "baseline", "width", "height")
_MB_OPTIONAL = ("ndisp", "isint", "vmin", "vmax", "dyavg", "dymax")


def read_middlebury_calib(path: PathArg) -> MiddleburyCalib:
    """Read a Middlebury ``calib.txt`` (MiddEval3 / 2014 style).

    Tolerant of spaces around keys, values and ``=``, inside the brackets, leading and trailing spaces,
    blank lines, commas between numbers and CRLF line ends. Unknown or repeated keys, missing required
    keys (cam0, cam1, doffs, baseline, width, height) and non-numeric values are FormatErrors with the
    line and key. If ``doffs`` disagrees with cam1.cx − cam0.cx by more than 1e-3 px a warning is issued
    and the file's ``doffs`` is kept.
    """
    return parse_middlebury_calib(read_input(path), source=path)


def parse_middlebury_calib(text: str | bytes, *, source: PathArg = "<calib.txt>") -> MiddleburyCalib:
    """Parse the content of a Middlebury ``calib.txt``; ``source`` names it in errors."""
    body = _text(text, source) if isinstance(text, bytes) else text
    if not body.strip():
        raise FormatError("empty file", path=source)
    values: dict[str, tuple[str, int]] = {}
    known = _MB_REQUIRED + _MB_OPTIONAL
    for lineno, raw in enumerate(body.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        key, eq, value = s.partition("=")
        key = key.strip()
        if not eq:
            raise FormatError(f"expected 'key=value', got {_clip(s)!r}", path=source, line=lineno)
        if key not in known:
            raise FormatError(
                f"unknown key; Middlebury calib.txt has {', '.join(known)}", path=source, line=lineno, key=key
            )
        if key in values:
            raise FormatError(f"repeated key (first on line {values[key][1]})", path=source, line=lineno, key=key)
        values[key] = (value.strip(), lineno)
    missing = [k for k in _MB_REQUIRED if k not in values]
    if missing:
        raise FormatError(f"missing key(s) {', '.join(missing)}", path=source, key=missing[0])

    def num(k: str) -> float:
        return _number(values[k][0], path=source, key=k, line=values[k][1])

    def integer(k: str, low: int) -> int:
        x = num(k)
        if not x.is_integer() or x < low:
            raise FormatError(f"expected an integer >= {low}, got {values[k][0]!r}", path=source, key=k, line=values[k][1])
        return int(x)

    def opt(k: str) -> float | None:
        return num(k) if k in values else None

    width, height = integer("width", 1), integer("height", 1)
    cams = [_mb_matrix(k, *values[k], path=source) for k in ("cam0", "cam1")]
    doffs = num("doffs")
    baseline_mm = num("baseline")
    if baseline_mm <= 0:
        raise FormatError(f"expected a positive baseline (mm), got {baseline_mm}", path=source, key="baseline", line=values["baseline"][1])
    left = _intrinsics(cams[0], width, height, (), "none", path=source, key="cam0")
    right = _intrinsics(cams[1], width, height, (), "none", path=source, key="cam1")
    # The files round cx0, cx1 and doffs to 3 decimals each, so they may disagree by 0.001 (Pipes does).
    if abs((right.cx - left.cx) - doffs) > 1e-3 + 1e-9:
        warnings.warn(
            f"{source}: doffs {doffs} disagrees with cam1.cx - cam0.cx = {right.cx - left.cx:.6g}; keeping doffs",
            UserWarning, stacklevel=2,
        )
    rig = StereoRig.from_rectified(left, baseline_mm / 1000.0, right=replace(right, cx=left.cx + doffs))
    isint = None
    if "isint" in values:
        isint_n = integer("isint", 0)
        if isint_n > 1:
            raise FormatError(f"expected 0 or 1, got {isint_n}", path=source, key="isint", line=values["isint"][1])
        isint = bool(isint_n)
    return MiddleburyCalib(
        rig=rig, width=width, height=height, doffs=doffs, cam0=left, cam1=right,
        ndisp=integer("ndisp", 0) if "ndisp" in values else None, isint=isint,
        vmin=opt("vmin"), vmax=opt("vmax"), dyavg=opt("dyavg"), dymax=opt("dymax"),
    )


def _mb_matrix(key: str, text: str, lineno: int, *, path: PathArg) -> np.ndarray:
    """``[a b c; d e f; g h i]`` (spaces or commas between numbers, any spacing) as a 3×3 array."""
    s = text.strip()
    if not (s.startswith("[") and s.endswith("]")):
        raise FormatError(f"expected '[a b c; d e f; g h i]', got {_clip(s)!r}", path=path, line=lineno, key=key)
    rows = [r for r in s[1:-1].split(";")]
    numbers = [[t for t in re.split(r"[\s,]+", r.strip()) if t] for r in rows]
    if len(numbers) == 1 and len(numbers[0]) == 9:
        numbers = [numbers[0][0:3], numbers[0][3:6], numbers[0][6:9]]
    if len(numbers) != 3 or any(len(r) != 3 for r in numbers):
        got = "x".join(str(len(r)) for r in numbers)
        raise FormatError(f"expected a 3x3 matrix (rows split by ';'), got rows of {got} numbers", path=path, line=lineno, key=key)
    return np.array([[_number(t, path=path, key=key, line=lineno) for t in r] for r in numbers], dtype=np.float64)
