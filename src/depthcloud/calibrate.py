"""Checkerboard calibration of one camera or a stereo rig, rectification, and reports a person can judge.

What it does: find the inner corners of a chessboard at sub-pixel accuracy (OpenCV's sector-based
``findChessboardCornersSB`` and the classic ``findChessboardCorners`` + ``cornerSubPix``; with
``method="auto"`` both run and the view keeps the corners that are measurably less noisy), skip and
report the views where the board is not found, calibrate one camera or a rig (OpenCV's flags exposed
as keyword options), rectify a rig (R1, R2, P1, P2, Q, valid regions, alpha), and describe the result:
RMS, per-view reprojection error with outlier views flagged, how much of the image the board covered,
the rectified epipolar error (|Δy| of matched corners) and the baseline.

Conventions: pixel centres at integer coordinates (OpenCV's), the board's object points lie on z = 0
in metres, X_right = R·X_left + T (see :mod:`depthcloud.camera`). Corner arrays are (N, 2) float32
pixels in row-major board order (``cols`` corners per row, rows running left to right in the image).

This module computes; it never writes files (``depthcloud.io.calibfiles`` does) and never prints
(the CLI does).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import cv2
import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import CalibrationError, InputError, StereoError

__all__ = [
    "Board",
    "Detection",
    "MonoCalibration",
    "Rectification",
    "StereoCalibration",
    "calibrate_mono",
    "calibrate_stereo",
    "check_calibration",
    "detect_corners",
    "detect_views",
    "draw_corners",
    "epipolar_error",
    "find_corners",
    "rectified_pair_picture",
    "rectify",
    "undistort_image",
]

ImageArg = str | PathLike[str] | np.ndarray
ProgressFn = Callable[[int, int, str], None]

#: Fewest usable views for a calibration: OpenCV solves with fewer, but the estimate is not worth keeping.
MIN_VIEWS = 3
#: Largest overall RMS reprojection error (px) a calibration may have before it is refused. A chessboard
#: calibration is well below 1 px; several pixels means the corners do not fit the board (a wrong
#: --board whose sub-grid the detector found differently from view to view) or the views are unusable.
MAX_RMS_PX = 2.0
#: Plausible focal lengths, in multiples of the image's larger side: 0.05 is a fisheye beyond 180°,
#: 20 a telephoto of under 3° field of view.
FOCAL_RANGE = (0.05, 20.0)
_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-4)
_CALIB_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-12)


# -- the board ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Board:
    """A chessboard: ``cols`` × ``rows`` inner corners, squares of ``square_size_m`` metres."""

    cols: int
    rows: int
    square_size_m: float

    def __post_init__(self) -> None:
        v.integer("board.cols", self.cols, low=2)
        v.integer("board.rows", self.rows, low=2)
        object.__setattr__(self, "square_size_m", v.number("square_size_m", self.square_size_m, positive=True))

    @classmethod
    def parse(cls, text: str, square_size_m: float) -> Board:
        """From ``"9x6"`` (inner corners per row × per column, as OpenCV counts them)."""
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
        if not m:
            raise InputError(f"board: expected COLSxROWS of inner corners like 9x6, got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)), square_size_m)

    def to_dict(self) -> dict[str, Any]:
        return {"cols": self.cols, "rows": self.rows, "square_size_m": self.square_size_m}

    @property
    def pattern_size(self) -> tuple[int, int]:
        """(cols, rows), as OpenCV takes it."""
        return (self.cols, self.rows)

    @property
    def n_corners(self) -> int:
        return self.cols * self.rows

    def object_points(self) -> np.ndarray:
        """(N, 3) float32 corner positions in metres on the board plane z = 0, row-major."""
        j, i = np.mgrid[0 : self.rows, 0 : self.cols]
        pts = np.stack([i.ravel(), j.ravel(), np.zeros(self.n_corners)], axis=1) * self.square_size_m
        return pts.astype(np.float32)

    def __str__(self) -> str:
        return f"{self.cols}x{self.rows} inner corners, {self.square_size_m * 1000:g} mm squares"


# -- detection ---------------------------------------------------------------------------------------
def _to_gray(image: np.ndarray, name: str) -> np.ndarray:
    img = v.array(name, image, ndim=(2, 3), kinds="uf", expected="(H, W) or (H, W, 3)")
    if img.ndim == 3:
        if img.shape[2] not in (3, 4):
            raise InputError(f"{name}: expected shape (H, W) or (H, W, 3), got {img.shape}")
        img = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    if img.dtype != np.uint8:
        scale = 255.0 if img.dtype.kind == "f" and float(np.nanmax(img)) <= 1.0 else 1.0
        img = np.clip(np.nan_to_num(img.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def _canonical_order(corners: np.ndarray, board: Board) -> np.ndarray:
    """Corners in row-major board order with rows running left to right in the image.

    Detectors may start at either end of a board (a 180° ambiguity); left and right views of one
    pair must agree, so the order is fixed by the image, not by the detector.
    """
    grid = corners.reshape(board.rows, board.cols, 2)
    if grid[0, -1, 0] - grid[0, 0, 0] < 0:
        grid = grid[::-1, ::-1]
    return np.ascontiguousarray(grid.reshape(-1, 2), dtype=np.float32)


def _align_to(reference: np.ndarray, corners: np.ndarray, board: Board) -> np.ndarray:
    """``corners`` in the order whose board rows point the way ``reference``'s do.

    The two views of a stereo pair see the board from nearly the same side, so when one view's rows
    run against the other's, the detector started at the opposite end; a board turned by about 90°
    makes any fixed image-based rule ambiguous, this comparison is not.
    """
    a = reference.reshape(board.rows, board.cols, 2)
    b = corners.reshape(board.rows, board.cols, 2)
    if float(np.dot(a[:, -1] .mean(0) - a[:, 0].mean(0), b[:, -1].mean(0) - b[:, 0].mean(0))) < 0:
        b = b[::-1, ::-1]
    return np.ascontiguousarray(b.reshape(-1, 2))


def corner_noise(corners: np.ndarray, board: Board) -> float:
    """RMS distance (px) of corners from a quadratic fitted along each board row and column.

    Lens distortion bends lines gently, so a quadratic absorbs it locally; what remains is detection
    noise. Lower is better; it is how ``method="auto"`` picks a detector per view.
    """
    grid = np.asarray(corners, dtype=np.float64).reshape(board.rows, board.cols, 2)
    res: list[np.ndarray] = []
    for lines in (grid, grid.transpose(1, 0, 2)):
        n = lines.shape[1]
        if n < 4:
            continue
        t = np.arange(n, dtype=np.float64)
        A = np.stack([np.ones(n), t, t * t], axis=1)
        pinv = np.linalg.pinv(A)
        for line in lines:
            fit = A @ (pinv @ line)
            res.append(((line - fit) ** 2).sum(axis=1))
    if not res:
        return 0.0
    return float(math.sqrt(np.concatenate(res).mean()))


def find_corners(image: np.ndarray, board: Board, *, method: str = "auto") -> tuple[np.ndarray | None, str]:
    """Sub-pixel inner corners of ``board`` in one image.

    image: (H, W) or (H, W, 3) RGB, uint8 (floats 0..1 or 0..255 are converted).
    method: ``"sb"`` (findChessboardCornersSB), ``"classic"`` (findChessboardCorners + cornerSubPix)
    or ``"auto"`` (both; keeps the one with the lower :func:`corner_noise`).
    Returns ((N, 2) float32 pixels in canonical order, the method used), or (None, "") when the board
    is not found.
    """
    if method not in ("auto", "sb", "classic"):
        raise InputError(f"method: expected 'auto', 'sb' or 'classic', got {method!r}")
    gray = _to_gray(image, "image")
    found: dict[str, np.ndarray] = {}
    if min(gray.shape) < 2 * (min(board.pattern_size) + 1) or max(gray.shape) < 2 * (max(board.pattern_size) + 1):
        return None, ""  # fewer than 2 px per square: no board fits, and the detectors would fail on it
    if method in ("auto", "sb"):
        ok, c = cv2.findChessboardCornersSB(gray, board.pattern_size, flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
        if ok:
            found["sb"] = _canonical_order(c.reshape(-1, 2), board)
    if method in ("auto", "classic"):
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        ok, c = cv2.findChessboardCorners(gray, board.pattern_size, flags=flags)
        if ok:
            c = cv2.cornerSubPix(gray, c.astype(np.float32), (11, 11), (-1, -1), _SUBPIX_CRITERIA)
            found["classic"] = _canonical_order(c.reshape(-1, 2), board)
    if not found:
        return None, ""
    best = min(found, key=lambda k: corner_noise(found[k], board))
    return found[best], best


@dataclass(frozen=True)
class Detection:
    """The board in one view: ``corners`` (N, 2) float32 pixels, or None when it was not found."""

    name: str
    image_size: tuple[int, int]
    corners: np.ndarray | None
    method: str = ""

    @property
    def found(self) -> bool:
        return self.corners is not None


def _read_gray(path: str | PathLike[str]) -> np.ndarray:
    from depthcloud.io.depthimage import read_color

    return _to_gray(read_color(path), str(path))


def detect_corners(
    image: ImageArg, board: Board, *, method: str = "auto", name: str | None = None
) -> Detection:
    """:func:`find_corners` on an image or an image file; the Detection carries its name and size."""
    if isinstance(image, np.ndarray):
        gray = _to_gray(image, name or "image")
        label = name or "image"
    else:
        gray = _read_gray(image)
        label = name or str(image)
    corners, used = find_corners(gray, board, method=method)
    return Detection(label, (gray.shape[1], gray.shape[0]), corners, used)


def detect_views(
    images: Sequence[ImageArg], board: Board, *, method: str = "auto", progress: ProgressFn | None = None
) -> list[Detection]:
    """One :class:`Detection` per image, in order; views without the board have ``corners=None``.

    Every image must have the same size (one camera): a different one raises :class:`CalibrationError`
    naming the file. ``progress(i, n, name)`` is called after each view.
    """
    if len(images) == 0:
        raise CalibrationError("no images given; pass the checkerboard views of the camera")
    out: list[Detection] = []
    for i, img in enumerate(images):
        name = f"view {i}" if isinstance(img, np.ndarray) else str(img)
        det = detect_corners(img, board, method=method, name=name)
        if out and det.image_size != out[0].image_size:
            raise CalibrationError(
                f"image size {det.image_size[0]}x{det.image_size[1]} differs from the first view's "
                f"{out[0].image_size[0]}x{out[0].image_size[1]} ({out[0].name}); calibrate one camera "
                "at one resolution",
                path=name,
            )
        out.append(det)
        if progress is not None:
            progress(i + 1, len(images), name)
    return out


# -- quality measures --------------------------------------------------------------------------------
def _coverage(corner_sets: Sequence[np.ndarray], image_size: tuple[int, int]) -> float:
    """Fraction of the image inside the union of the boards' outlines (0..1)."""
    w, h = image_size
    s = min(1.0, 256.0 / max(w, h))
    mask = np.zeros((max(1, round(h * s)), max(1, round(w * s))), np.uint8)
    for c in corner_sets:
        hull = cv2.convexHull((np.asarray(c, np.float32) * s).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    return float(mask.mean())


def _outliers(errors: np.ndarray) -> list[int]:
    """Views whose error stands out: above 2× the median and 3 robust deviations above it."""
    if errors.size < 3:
        return []
    med = float(np.median(errors))
    mad = 1.4826 * float(np.median(np.abs(errors - med)))
    limit = max(2.0 * med, med + 3.0 * mad)
    return [int(i) for i in np.flatnonzero(errors > limit)]


def _view_rms(obj: np.ndarray, img: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, intr: Intrinsics) -> float:
    proj, _ = cv2.projectPoints(obj, rvec, tvec, intr.K, intr.dist_array)
    return float(np.sqrt(((proj.reshape(-1, 2) - img.reshape(-1, 2)) ** 2).sum(axis=1).mean()))


def _flags(
    *, fix_aspect_ratio: bool, zero_tangent: bool, rational_model: bool, fix_principal_point: bool, k3: bool
) -> tuple[int, list[str]]:
    table = [
        (fix_aspect_ratio, cv2.CALIB_FIX_ASPECT_RATIO, "CALIB_FIX_ASPECT_RATIO"),
        (zero_tangent, cv2.CALIB_ZERO_TANGENT_DIST, "CALIB_ZERO_TANGENT_DIST"),
        (rational_model, cv2.CALIB_RATIONAL_MODEL, "CALIB_RATIONAL_MODEL"),
        (fix_principal_point, cv2.CALIB_FIX_PRINCIPAL_POINT, "CALIB_FIX_PRINCIPAL_POINT"),
        (not k3, cv2.CALIB_FIX_K3, "CALIB_FIX_K3"),
    ]
    flags = 0
    names = []
    for on, bit, name in table:
        if on:
            flags |= bit
            names.append(name)
    return flags, names


def _usable(dets: Sequence[Detection], what: str) -> None:
    n_found = sum(d.found for d in dets)
    if n_found == 0:
        names = ", ".join(d.name for d in dets[:3]) + (" …" if len(dets) > 3 else "")
        raise CalibrationError(
            f"the board was found in none of the {len(dets)} {what} ({names}); check --board "
            "(inner corners, e.g. 9x6 for a 10x7-square board) and that the whole board is visible"
        )
    if n_found < MIN_VIEWS:
        raise CalibrationError(
            f"the board was found in only {n_found} of {len(dets)} {what}; at least {MIN_VIEWS} are "
            "needed — add views with the board tilted and placed in different parts of the image"
        )


def _board_hint(board: Board) -> str:
    return (f"check --board: it counts inner corners ({board.cols}x{board.rows} now; a board of 10x7 "
            "squares is 9x6) and the whole board must be visible in every view")


def _worst(names: Sequence[str], errors: np.ndarray, n: int = 3) -> str:
    order = np.argsort(-np.asarray(errors, dtype=np.float64))[:n]
    return ", ".join(f"{_short(names[i])} {float(errors[i]):.1f} px" for i in order)


def _short(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def check_calibration(
    intrinsics: Intrinsics,
    rms_px: float,
    board: Board,
    *,
    per_view_rms_px: np.ndarray | None = None,
    views: Sequence[str] = (),
    max_rms_px: float | None = MAX_RMS_PX,
    what: str = "camera",
) -> None:
    """Refuse a calibration that cannot be right, with the evidence (raises CalibrationError).

    Checks: the RMS reprojection error is at most ``max_rms_px`` (None skips this check); the focal
    lengths lie within :data:`FOCAL_RANGE` × the image's larger side; fx/fy within 0.5..2; the
    principal point inside the image. A wrong ``--board`` that the detector still "finds" (a sub-grid
    picked differently from view to view) fails these, while a true sub-board (7x6 of a 9x6) passes.
    """
    k = intrinsics
    where = f"{what}: " if what else ""
    if max_rms_px is not None and not rms_px <= max_rms_px:
        worst = ""
        if per_view_rms_px is not None and len(views) == len(per_view_rms_px) and len(views):
            worst = f"; worst views: {_worst(views, per_view_rms_px)}"
        raise CalibrationError(
            f"{where}RMS reprojection error {rms_px:.2f} px is implausible for a chessboard (good ones are "
            f"below 1 px; limit {max_rms_px:g} px, --max-rms): the detected corners do not fit a {board.cols}x{board.rows} "
            f"board{worst}; {_board_hint(board)}"
        )
    side = max(k.width, k.height)
    lo, hi = FOCAL_RANGE
    problems = []
    for name, f in (("fx", k.fx), ("fy", k.fy)):
        if not lo * side <= f <= hi * side:
            problems.append(f"{name} {f:.0f} px is outside {lo * side:.0f}..{hi * side:.0f} px for a {k.width}x{k.height} image")
    ratio = k.fx / k.fy if k.fy > 0 else math.inf
    if not 0.5 <= ratio <= 2.0:
        problems.append(f"fx/fy = {ratio:.2f} (square pixels give 1)")
    if not (0 <= k.cx <= k.width and 0 <= k.cy <= k.height):
        problems.append(f"the principal point ({k.cx:.0f}, {k.cy:.0f}) px lies outside the {k.width}x{k.height} image")
    if problems:
        raise CalibrationError(
            f"{where}the result contradicts itself: {'; '.join(problems)} (RMS {rms_px:.2f} px); {_board_hint(board)}"
        )


# -- mono --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonoCalibration:
    """The result of :func:`calibrate_mono`.

    rms_px: OpenCV's overall RMS reprojection error. per_view_rms_px: (V,) float64, one per used view.
    views: names of the used views; skipped: names of views without the board. outliers: indices into
    ``views``. coverage: fraction of the image the boards covered (0..1).
    """

    intrinsics: Intrinsics
    board: Board
    rms_px: float
    per_view_rms_px: np.ndarray
    views: tuple[str, ...]
    skipped: tuple[str, ...]
    outliers: tuple[int, ...]
    coverage: float
    flags: tuple[str, ...]
    rvecs: tuple[np.ndarray, ...] = field(repr=False, default=())
    tvecs: tuple[np.ndarray, ...] = field(repr=False, default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "mono",
            "board": self.board.to_dict(),
            "camera": self.intrinsics.to_dict(),
            "rms_px": self.rms_px,
            "views": [
                {"name": n, "rms_px": float(e), "outlier": i in self.outliers}
                for i, (n, e) in enumerate(zip(self.views, self.per_view_rms_px, strict=True))
            ],
            "skipped": list(self.skipped),
            "coverage": self.coverage,
            "flags": list(self.flags),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self, *, reference: Intrinsics | None = None, reference_name: str = "reference") -> str:
        """A report: summary, camera, optional comparison with ``reference``, per-view table."""
        k = self.intrinsics
        lines = [
            "# Camera calibration",
            "",
            f"- board: {self.board}",
            f"- views used: {len(self.views)}; skipped (board not found): {len(self.skipped)}"
            + (f" — {', '.join(self.skipped)}" if self.skipped else ""),
            f"- flags: {', '.join(self.flags) or 'none'}",
            f"- RMS reprojection error: {self.rms_px:.4f} px",
            f"- board coverage of the image: {self.coverage * 100:.0f} %"
            + (" (low: add views near the edges and corners)" if self.coverage < 0.5 else ""),
            f"- outlier views: {', '.join(self.views[i] for i in self.outliers) or 'none'}",
            "",
            _intrinsics_table([("result", k)] + ([(reference_name, reference)] if reference else [])),
            "",
            "| view | RMS (px) | outlier |",
            "|---|---|---|",
        ]
        for i, (n, e) in enumerate(zip(self.views, self.per_view_rms_px, strict=True)):
            lines.append(f"| {n} | {e:.4f} | {'yes' if i in self.outliers else ''} |")
        return "\n".join(lines) + "\n"


def _intrinsics_table(cams: Sequence[tuple[str, Intrinsics]], *, compare: bool = True) -> str:
    """A Markdown table of cameras; with ``compare`` and two cameras, a row of their differences."""
    rows = ["| camera | fx | fy | cx | cy | distortion |", "|---|---|---|---|---|---|"]
    for name, c in cams:
        dist = ", ".join(f"{d:.5g}" for d in c.dist) or "none"
        rows.append(f"| {name} | {c.fx:.3f} | {c.fy:.3f} | {c.cx:.3f} | {c.cy:.3f} | {dist} |")
    if compare and len(cams) == 2:
        (_, a), (_, b) = cams
        rows.append(
            f"| difference | {100 * (a.fx - b.fx) / b.fx:+.2f} % | {100 * (a.fy - b.fy) / b.fy:+.2f} % | "
            f"{a.cx - b.cx:+.2f} px | {a.cy - b.cy:+.2f} px | |"
        )
    return "\n".join(rows)


def calibrate_mono(
    detections: Sequence[Detection],
    board: Board,
    *,
    fix_aspect_ratio: bool = False,
    aspect_ratio: float = 1.0,
    zero_tangent: bool = False,
    rational_model: bool = False,
    fix_principal_point: bool = False,
    k3: bool = True,
    max_rms_px: float | None = MAX_RMS_PX,
) -> MonoCalibration:
    """Intrinsics of one camera from checkerboard detections (:func:`detect_views`).

    Views without the board are skipped and listed in ``skipped``. Options map to OpenCV's flags:
    fix_aspect_ratio (fy/fx fixed to ``aspect_ratio``), zero_tangent (p1 = p2 = 0), rational_model
    (8 coefficients: k4..k6), fix_principal_point (at the image centre); ``k3=False`` fixes k3 = 0.
    Raises :class:`CalibrationError` when fewer than 3 views show the board, and when the result
    cannot be right (:func:`check_calibration`: RMS above ``max_rms_px``, None = no RMS limit; focal
    length, aspect or principal point implausible), saying why and which views are worst.
    """
    if not isinstance(board, Board):
        raise InputError(f"board: expected a Board, got {type(board).__name__}")
    if len(detections) == 0:
        raise CalibrationError("no views given; pass the checkerboard images")
    _usable(detections, "views")
    used = [d for d in detections if d.corners is not None]
    size = used[0].image_size
    for d in detections:
        if d.image_size != size:
            raise CalibrationError(
                f"image size {d.image_size[0]}x{d.image_size[1]} differs from {used[0].name}'s "
                f"{size[0]}x{size[1]}; calibrate one camera at one resolution", path=d.name,
            )
    obj = board.object_points()
    objpts = [obj] * len(used)
    imgpts = [d.corners.reshape(-1, 1, 2) for d in used if d.corners is not None]
    flags, names = _flags(
        fix_aspect_ratio=fix_aspect_ratio, zero_tangent=zero_tangent, rational_model=rational_model,
        fix_principal_point=fix_principal_point, k3=k3,
    )
    ar = v.number("aspect_ratio", aspect_ratio, positive=True)
    # Without CALIB_USE_INTRINSIC_GUESS OpenCV initialises K itself and reads only fy/fx from K0.
    K0 = np.array([[1.0, 0, (size[0] - 1) / 2], [0, ar, (size[1] - 1) / 2], [0, 0, 1]])
    try:
        rms, K, dist, rvecs, tvecs, _, _, per_view = cv2.calibrateCameraExtended(
            objpts, imgpts, size, K0, np.zeros(8 if rational_model else 5), flags=flags, criteria=_CALIB_CRITERIA
        )
    except cv2.error as exc:
        raise CalibrationError(f"OpenCV could not calibrate from {len(used)} views: {exc.err}") from exc
    intr = Intrinsics.from_K(K, size[0], size[1], dist=dist.ravel())
    errs = np.asarray(per_view, dtype=np.float64).ravel()
    check_calibration(intr, float(rms), board, per_view_rms_px=errs, views=[d.name for d in used],
                      max_rms_px=max_rms_px, what="")
    return MonoCalibration(
        intrinsics=intr, board=board, rms_px=float(rms), per_view_rms_px=errs,
        views=tuple(d.name for d in used), skipped=tuple(d.name for d in detections if not d.found),
        outliers=tuple(_outliers(errs)), coverage=_coverage([d.corners for d in used if d.corners is not None], size),
        flags=tuple(names), rvecs=tuple(rvecs), tvecs=tuple(tvecs),
    )


# -- rectification -----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Rectification:
    """``cv2.stereoRectify`` of a rig: rotations R1, R2 (3, 3), projections P1, P2 (3, 4), Q (4, 4),
    valid regions roi1, roi2 as (x, y, w, h), the ``alpha`` used and the image ``size`` (w, h)."""

    R1: np.ndarray
    R2: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    Q: np.ndarray
    roi1: tuple[int, int, int, int]
    roi2: tuple[int, int, int, int]
    alpha: float
    size: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        """The dict ``depthcloud.io.calibfiles.save_rig(rectification=...)`` takes."""
        return {
            "R1": self.R1, "R2": self.R2, "P1": self.P1, "P2": self.P2, "Q": self.Q,
            "roi1": list(self.roi1), "roi2": list(self.roi2), "alpha": self.alpha,
        }

    def rectified_rig(self, rig: StereoRig) -> StereoRig:
        """The rig the rectified images have: pinhole, row-aligned, baseline from P2."""
        w, h = self.size
        f, cx1, cy = float(self.P1[0, 0]), float(self.P1[0, 2]), float(self.P1[1, 2])
        cx2 = float(self.P2[0, 2])
        baseline = abs(float(self.P2[0, 3]) / float(self.P2[0, 0]))
        left = Intrinsics(f, float(self.P1[1, 1]), cx1, cy, w, h)
        right = Intrinsics(float(self.P2[0, 0]), float(self.P2[1, 1]), cx2, float(self.P2[1, 2]), w, h)
        if not math.isclose(baseline, rig.baseline_m, rel_tol=1e-3):
            raise CalibrationError(
                f"rectification baseline {baseline:.6f} m differs from the rig's {rig.baseline_m:.6f} m"
            )
        return StereoRig.from_rectified(left, baseline, right=right)


def rectify(rig: StereoRig, *, alpha: float = 0.0, size: tuple[int, int] | None = None) -> Rectification:
    """Rectify a calibrated rig (``cv2.stereoRectify`` with CALIB_ZERO_DISPARITY).

    alpha: 0 keeps only valid pixels (zoomed in), 1 keeps every source pixel (black borders), or
    -1 for OpenCV's automatic choice. size: (w, h) of the images; default the rig's.
    The rectified cameras share cx, so doffs = 0 and Z = f·B/d.
    """
    if not isinstance(rig, StereoRig):
        raise InputError(f"rig: expected a StereoRig, got {type(rig).__name__}")
    a = v.number("alpha", alpha, low=-1.0, high=1.0)
    if rig.left.size != rig.right.size:
        raise StereoError(
            f"the left camera is {rig.left.width}x{rig.left.height} but the right is "
            f"{rig.right.width}x{rig.right.height}; both images of a pair must have one size"
        )
    sz = rig.left.size if size is None else (int(size[0]), int(size[1]))
    if sz != rig.left.size:
        raise StereoError(
            f"the images are {sz[0]}x{sz[1]} but the rig was calibrated at {rig.left.width}x{rig.left.height}; "
            "resize the rig (StereoRig.resized) or calibrate at this resolution"
        )
    if rig.left.model == "fisheye" or rig.right.model == "fisheye":
        raise CalibrationError("fisheye rigs are not supported by rectify(); calibrate with the opencv model")
    try:
        R1, R2, P1, P2, Q, roi1, roi2 = cv2.stereoRectify(
            rig.left.K, rig.left.dist_array, rig.right.K, rig.right.dist_array, sz,
            np.asarray(rig.R, np.float64), np.asarray(rig.T, np.float64).reshape(3, 1),
            flags=cv2.CALIB_ZERO_DISPARITY, alpha=a,
        )
    except cv2.error as exc:
        raise CalibrationError(f"OpenCV could not rectify the rig: {exc.err}") from exc
    return Rectification(R1, R2, P1, P2, Q, tuple(int(x) for x in roi1), tuple(int(x) for x in roi2), a, sz)  # type: ignore[arg-type]


def epipolar_error(
    left_corners: Sequence[np.ndarray], right_corners: Sequence[np.ndarray], rig: StereoRig, rect: Rectification
) -> tuple[float, float]:
    """Mean and max |Δy| (px) between matched corners after rectification (0 for a perfect rig)."""
    dys = []
    for cl, cr in zip(left_corners, right_corners, strict=True):
        ul = cv2.undistortPoints(np.asarray(cl, np.float64).reshape(-1, 1, 2), rig.left.K, rig.left.dist_array,
                                 R=rect.R1, P=rect.P1)
        ur = cv2.undistortPoints(np.asarray(cr, np.float64).reshape(-1, 1, 2), rig.right.K, rig.right.dist_array,
                                 R=rect.R2, P=rect.P2)
        dys.append(np.abs(ul[:, 0, 1] - ur[:, 0, 1]))
    dy = np.concatenate(dys)
    return float(dy.mean()), float(dy.max())


# -- stereo ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StereoCalibration:
    """The result of :func:`calibrate_stereo`.

    rig: the raw (unrectified) rig. rectification: its :class:`Rectification`. rms_px: stereo RMS.
    per_view_rms_px: (V, 2) float64, left and right per used pair. epipolar_mean_px/max_px: |Δy| of
    matched corners after rectification. coverage: (left, right) fractions of the image.
    """

    rig: StereoRig
    rectification: Rectification
    board: Board
    rms_px: float
    per_view_rms_px: np.ndarray
    views: tuple[tuple[str, str], ...]
    skipped: tuple[tuple[str, str], ...]
    outliers: tuple[int, ...]
    coverage: tuple[float, float]
    epipolar_mean_px: float
    epipolar_max_px: float
    flags: tuple[str, ...]

    @property
    def baseline_m(self) -> float:
        return self.rig.baseline_m

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "stereo",
            "board": self.board.to_dict(),
            "rig": self.rig.to_dict(),
            "baseline_m": self.baseline_m,
            "rms_px": self.rms_px,
            "epipolar_error_px": {"mean": self.epipolar_mean_px, "max": self.epipolar_max_px},
            "alpha": self.rectification.alpha,
            "roi1": list(self.rectification.roi1),
            "roi2": list(self.rectification.roi2),
            "views": [
                {"left": a, "right": b, "rms_left_px": float(e[0]), "rms_right_px": float(e[1]),
                 "outlier": i in self.outliers}
                for i, ((a, b), e) in enumerate(zip(self.views, self.per_view_rms_px, strict=True))
            ],
            "skipped": [list(p) for p in self.skipped],
            "coverage": list(self.coverage),
            "flags": list(self.flags),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(
        self, *, reference: tuple[Intrinsics, Intrinsics] | None = None, reference_name: str = "reference"
    ) -> str:
        """A report: summary, both cameras (beside the (left, right) ``reference`` when given), per-pair table."""
        r = self.rig
        lines = [
            "# Stereo calibration",
            "",
            f"- board: {self.board}",
            f"- pairs used: {len(self.views)}; skipped (board not found in one or both): {len(self.skipped)}"
            + (f" — {', '.join(a + ' / ' + b for a, b in self.skipped)}" if self.skipped else ""),
            f"- flags: {', '.join(self.flags) or 'none'}",
            f"- RMS reprojection error: {self.rms_px:.4f} px",
            f"- baseline: {self.baseline_m * 1000:.2f} mm",
            f"- rectified epipolar error |Δy|: mean {self.epipolar_mean_px:.3f} px, max {self.epipolar_max_px:.3f} px",
            f"- rectification alpha {self.rectification.alpha:g}; valid regions (x, y, w, h): left "
            f"{self.rectification.roi1}, right {self.rectification.roi2}",
            f"- board coverage: left {self.coverage[0] * 100:.0f} %, right {self.coverage[1] * 100:.0f} %",
            f"- outlier pairs: {', '.join(self.views[i][0] for i in self.outliers) or 'none'}",
            "",
        ]
        if reference is None:
            # One table of both cameras; a "difference" row between left and right would mean nothing.
            lines.append(_intrinsics_table([("left", r.left), ("right", r.right)], compare=False))
        else:
            lines.append(_intrinsics_table([("left", r.left), (f"left ({reference_name})", reference[0])]))
            lines.append("")
            lines.append(_intrinsics_table([("right", r.right), (f"right ({reference_name})", reference[1])]))
        lines += ["", "| left | right | RMS left (px) | RMS right (px) | outlier |", "|---|---|---|---|---|"]
        for i, ((a, b), e) in enumerate(zip(self.views, self.per_view_rms_px, strict=True)):
            lines.append(f"| {a} | {b} | {e[0]:.4f} | {e[1]:.4f} | {'yes' if i in self.outliers else ''} |")
        return "\n".join(lines) + "\n"


def calibrate_stereo(
    left: Sequence[Detection],
    right: Sequence[Detection],
    board: Board,
    *,
    left_intrinsics: Intrinsics | None = None,
    right_intrinsics: Intrinsics | None = None,
    fix_intrinsics: bool = False,
    fix_aspect_ratio: bool = False,
    zero_tangent: bool = False,
    rational_model: bool = False,
    same_focal_length: bool = False,
    alpha: float = 0.0,
    max_rms_px: float | None = MAX_RMS_PX,
) -> StereoCalibration:
    """Calibrate a stereo rig from paired detections (``left[i]`` and ``right[i]`` are one moment).

    Each camera is first calibrated alone from its own views (or taken from ``*_intrinsics``); the
    stereo step then refines everything jointly, or only R and T when ``fix_intrinsics``. Pairs where
    either view lacks the board are skipped and listed. Raises :class:`CalibrationError` for unequal
    counts, different image sizes, fewer than 3 usable pairs, or a result that cannot be right (either
    camera or the joint RMS failing :func:`check_calibration`; ``max_rms_px`` as there).
    """
    if len(left) != len(right):
        raise CalibrationError(
            f"{len(left)} left views but {len(right)} right views; pass the same number, paired in order"
        )
    if len(left) == 0:
        raise CalibrationError("no views given; pass the checkerboard image pairs")
    if fix_intrinsics and (left_intrinsics is None or right_intrinsics is None):
        raise InputError("fix_intrinsics: needs left_intrinsics and right_intrinsics")
    pairs = list(zip(left, right, strict=True))
    both = [Detection(f"{a.name} + {b.name}", a.image_size, a.corners if b.found else None) for a, b in pairs]
    if not any(a.found for a in left) or not any(b.found for b in right):
        side = "left" if not any(a.found for a in left) else "right"
        _usable(list(left if side == "left" else right), f"{side} views")
    _usable(both, "pairs (the board must be found in both views of a pair)")
    used = [(a, b) for a, b in pairs if a.found and b.found]
    size = used[0][0].image_size
    if used[0][1].image_size != size:
        raise CalibrationError(
            f"left images are {size[0]}x{size[1]} but right images are "
            f"{used[0][1].image_size[0]}x{used[0][1].image_size[1]}; both cameras must have one resolution",
            path=used[0][1].name,
        )
    mono_opts: dict[str, Any] = {"fix_aspect_ratio": fix_aspect_ratio, "zero_tangent": zero_tangent,
                                 "rational_model": rational_model, "max_rms_px": max_rms_px}

    def camera(side: str, dets: list[Detection], given: Intrinsics | None) -> Intrinsics:
        if given is not None:
            return given
        try:
            return calibrate_mono(dets, board, **mono_opts).intrinsics
        except CalibrationError as exc:
            raise CalibrationError(f"{side} camera: {exc.message}") from exc

    kl = camera("left", [a for a, _ in used], left_intrinsics)
    kr = camera("right", [b for _, b in used], right_intrinsics)
    flags, names = _flags(
        fix_aspect_ratio=fix_aspect_ratio, zero_tangent=zero_tangent, rational_model=rational_model,
        fix_principal_point=False, k3=True,
    )
    flags |= cv2.CALIB_FIX_INTRINSIC if fix_intrinsics else cv2.CALIB_USE_INTRINSIC_GUESS
    names.append("CALIB_FIX_INTRINSIC" if fix_intrinsics else "CALIB_USE_INTRINSIC_GUESS")
    if same_focal_length:
        flags |= cv2.CALIB_SAME_FOCAL_LENGTH
        names.append("CALIB_SAME_FOCAL_LENGTH")
    obj = board.object_points()
    lc = [a.corners.reshape(-1, 1, 2) for a, _ in used if a.corners is not None]
    rc = [_align_to(a.corners, b.corners, board).reshape(-1, 1, 2)
          for a, b in used if a.corners is not None and b.corners is not None]
    n_dist = 8 if rational_model else 5
    dl = np.zeros(n_dist) if not kl.dist else np.resize(kl.dist_array, n_dist)
    dr = np.zeros(n_dist) if not kr.dist else np.resize(kr.dist_array, n_dist)
    try:
        out = cv2.stereoCalibrateExtended(
            [obj] * len(used), lc, rc, kl.K, dl, kr.K, dr, size, np.eye(3), np.zeros((3, 1)),
            flags=flags, criteria=_CALIB_CRITERIA,
        )
    except cv2.error as exc:
        raise CalibrationError(f"OpenCV could not calibrate the rig from {len(used)} pairs: {exc.err}") from exc
    rms, K1, D1, K2, D2, R, T = out[:7]
    per_view = np.asarray(out[-1], dtype=np.float64).reshape(-1, 2)
    rig = StereoRig(
        Intrinsics.from_K(K1, size[0], size[1], dist=D1.ravel()),
        Intrinsics.from_K(K2, size[0], size[1], dist=D2.ravel()),
        R, T.ravel(),
    )
    pair_names = [f"{_short(a.name)} + {_short(b.name)}" for a, b in used]
    check_calibration(rig.left, float(rms), board, per_view_rms_px=per_view.max(axis=1), views=pair_names,
                      max_rms_px=max_rms_px, what="stereo")
    check_calibration(rig.right, float(rms), board, max_rms_px=None, what="stereo (right camera)")
    rect = rectify(rig, alpha=alpha)
    mean_dy, max_dy = epipolar_error(lc, rc, rig, rect)
    return StereoCalibration(
        rig=rig, rectification=rect, board=board, rms_px=float(rms), per_view_rms_px=per_view,
        views=tuple((a.name, b.name) for a, b in used),
        skipped=tuple((a.name, b.name) for a, b in pairs if not (a.found and b.found)),
        outliers=tuple(_outliers(per_view.max(axis=1))),
        coverage=(_coverage([c.reshape(-1, 2) for c in lc], size), _coverage([c.reshape(-1, 2) for c in rc], size)),
        epipolar_mean_px=mean_dy, epipolar_max_px=max_dy, flags=tuple(names),
    )


# -- pictures ----------------------------------------------------------------------------------------
def draw_corners(image: np.ndarray, detection: Detection, board: Board) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of ``image`` with the detected corners drawn (OpenCV's colours)."""
    img = v.array("image", image, ndim=(2, 3), kinds="u")
    rgb = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else np.ascontiguousarray(img[:, :, :3]).copy()
    if detection.corners is not None:
        cv2.drawChessboardCorners(rgb, board.pattern_size, detection.corners.reshape(-1, 1, 2), True)
    return rgb


def rectified_pair_picture(left: np.ndarray, right: np.ndarray, *, every_px: int = 32) -> np.ndarray:
    """Two rectified images side by side with horizontal lines every ``every_px`` rows.

    left, right: (H, W) or (H, W, 3) uint8 of one size. Returns (H, 2W, 3) uint8 RGB; in a good
    rectification a feature sits on the same line in both halves.
    """
    a = v.array("left", left, ndim=(2, 3), kinds="u")
    b = v.array("right", right, ndim=(2, 3), kinds="u")
    if a.shape[:2] != b.shape[:2]:
        raise InputError(f"right: expected the size of left {a.shape[1]}x{a.shape[0]}, got {b.shape[1]}x{b.shape[0]}")
    step = v.integer("every_px", every_px, low=2)

    def rgb(x: np.ndarray) -> np.ndarray:
        return np.repeat(x[:, :, None], 3, axis=2) if x.ndim == 2 else x[:, :, :3]

    out = np.concatenate([rgb(a), rgb(b)], axis=1).copy()
    colors = [(255, 64, 64), (64, 255, 64), (64, 160, 255)]
    for i, y in enumerate(range(step // 2, out.shape[0], step)):
        out[y, :] = colors[i % len(colors)]
    return out


# -- undistortion ------------------------------------------------------------------------------------
def undistort_image(image: np.ndarray, intrinsics: Intrinsics, *, alpha: float = 0.0) -> tuple[np.ndarray, Intrinsics]:
    """The image as a distortion-free pinhole camera would see it, and that camera.

    image: (H, W) or (H, W, C) of the intrinsics' size. alpha: 0 keeps only valid pixels (no black
    border), 1 keeps every source pixel. Returns (the undistorted image, same shape and dtype; its
    Intrinsics with model "none").
    """
    img = v.array("image", image, ndim=(2, 3), kinds="uf", expected="(H, W) or (H, W, C)")
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected Intrinsics, got {type(intrinsics).__name__}")
    if img.shape[:2] != intrinsics.shape:
        raise InputError(
            f"image: its size {img.shape[1]}x{img.shape[0]} does not match the camera's "
            f"{intrinsics.width}x{intrinsics.height}; use the calibration of this resolution"
        )
    a = v.number("alpha", alpha, low=0.0, high=1.0)
    if not intrinsics.is_distorted:
        return img.copy(), intrinsics
    size = intrinsics.size
    if intrinsics.model == "fisheye":
        K_new = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            intrinsics.K, intrinsics.dist_array, size, np.eye(3), balance=a
        )
        m1, m2 = cv2.fisheye.initUndistortRectifyMap(
            intrinsics.K, intrinsics.dist_array, np.eye(3), K_new, size, cv2.CV_16SC2
        )
    else:
        K_new, _ = cv2.getOptimalNewCameraMatrix(intrinsics.K, intrinsics.dist_array, size, a, size)
        m1, m2 = cv2.initUndistortRectifyMap(intrinsics.K, intrinsics.dist_array, None, K_new, size, cv2.CV_16SC2)
    out = cv2.remap(np.ascontiguousarray(img), m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, Intrinsics.from_K(K_new, size[0], size[1])
