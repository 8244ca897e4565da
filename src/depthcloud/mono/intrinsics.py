"""The intrinsics of a photo, from what the user or the file says, never from a guess.

A monocular depth model predicts depth (z) per pixel; turning that into points needs the focal length
and principal point **in pixels of this image**. They come from, in this order:

1. a camera file (``--camera``: any calibration format depthcloud reads), rescaled when the image is
   the same camera at another resolution (same aspect ratio);
2. explicit values (``fx`` [``fy`` = fx] [``cx``, ``cy`` = the image centre]);
3. a horizontal field of view (``--fov``; square pixels, principal point at the centre);
4. the image's EXIF: ``FocalLengthIn35mmFilm`` (35 mm-equivalent focal length, converted with the
   diagonal: f_px = f35 / 43.27 mm × √(W² + H²)), or ``FocalLength`` in mm with the sensor's pixel
   pitch (``FocalPlaneXResolution``) or a given sensor width.

With none of these the caller gets an InputError that lists them. Every result says where it came from
(:attr:`ImageCamera.source`), and the CLI writes that into the cloud's file and its report.

This module must not import a source, the server or the CLI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.errors import FormatError, InputError, MissingDependencyError

__all__ = ["FULL_FRAME_DIAGONAL_MM", "ExifFocal", "ImageCamera", "image_camera", "intrinsics_from_exif", "read_exif_focal"]

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm: what "35 mm equivalent" refers to

# EXIF tags (CIPA DC-008): IFD0, then the Exif sub-IFD.
_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_FOCAL_PLANE_X = 0xA20E
_FOCAL_PLANE_Y = 0xA20F
_FOCAL_PLANE_UNIT = 0xA210
_PIXEL_X = 0xA002
_PIXEL_Y = 0xA003
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # inch, cm, mm, µm (1 = no unit: unusable)

NO_INTRINSICS_HELP = (
    "no intrinsics for this image: give --camera FILE, --fx F [--fy F --cx C --cy C], or --fov DEG "
    "(the image has no EXIF focal length depthcloud can use)"
)


@dataclass(frozen=True)
class ExifFocal:
    """What a photo's EXIF says about its focal length (None = tag absent).

    focal_mm: FocalLength; focal_35mm: FocalLengthIn35mmFilm; plane_px_per_mm: (x, y) sensor pixels
    per mm from FocalPlane[XY]Resolution, for an image of ``pixel_size`` = (PixelXDimension,
    PixelYDimension); orientation: the EXIF orientation (5..8 = stored rotated by 90°).
    """

    focal_mm: float | None = None
    focal_35mm: float | None = None
    plane_px_per_mm: tuple[float, float] | None = None
    pixel_size: tuple[int, int] | None = None
    orientation: int = 1


@dataclass(frozen=True)
class ImageCamera:
    """Intrinsics for one image size and the sentence that says where they came from."""

    intrinsics: Intrinsics
    source: str


def _positive(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]  # PIL gives IFDRational, int or tuples
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def read_exif_focal(path: str | Path) -> tuple[tuple[int, int], ExifFocal]:
    """The displayed (width, height) of an image file and its EXIF focal tags (pillow reads only the
    header). A rotated orientation (5..8) swaps width and height, as decoders that apply it do.

    Raises FormatError when pillow cannot read the file as an image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise MissingDependencyError.for_extra("pillow", "mono") from exc
    p = Path(path)
    try:
        with Image.open(p) as img:
            width, height = img.size
            exif = img.getexif()
    except FileNotFoundError as exc:
        raise InputError("no such file", path=p) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise FormatError(f"cannot read the image ({' '.join(str(exc).split())[:120]})", path=p) from exc
    sub = exif.get_ifd(_EXIF_IFD) if exif else {}
    orientation = int(exif.get(_ORIENTATION, 1) or 1) if exif else 1
    unit_code = _positive(sub.get(_FOCAL_PLANE_UNIT, 2))
    unit = None if unit_code is None else _UNIT_MM.get(int(unit_code))
    px, py = _positive(sub.get(_FOCAL_PLANE_X)), _positive(sub.get(_FOCAL_PLANE_Y))
    plane = None
    if unit is not None and px is not None:
        plane = (px / unit, (py or px) / unit)
    dx, dy = _positive(sub.get(_PIXEL_X)), _positive(sub.get(_PIXEL_Y))
    pixel_size = (int(dx), int(dy)) if dx is not None and dy is not None else None
    focal = ExifFocal(
        focal_mm=_positive(sub.get(_FOCAL_LENGTH)), focal_35mm=_positive(sub.get(_FOCAL_35MM)),
        plane_px_per_mm=plane, pixel_size=pixel_size, orientation=orientation if 1 <= orientation <= 8 else 1,
    )
    if focal.orientation >= 5:
        width, height = height, width
    return (width, height), focal


def _centred(fx: float, fy: float, width: int, height: int) -> Intrinsics:
    return Intrinsics(fx, fy, (width - 1) / 2.0, (height - 1) / 2.0, width, height)


def intrinsics_from_exif(exif: ExifFocal, width: int, height: int, *,
                         sensor_width_mm: float | None = None) -> ImageCamera | None:
    """Intrinsics for a ``width`` × ``height`` (as displayed) image from its EXIF, or None when the EXIF
    does not say enough. Principal point at the image centre, no distortion.

    FocalLengthIn35mmFilm first (diagonal convention), else FocalLength with the sensor's pixel pitch
    (FocalPlaneXResolution, scaled from PixelXDimension to this image) or ``sensor_width_mm`` (the
    sensor's long side, mm, spread over the image's long side).
    """
    w = v.integer("width", width, low=1)
    h = v.integer("height", height, low=1)
    if exif.focal_35mm is not None:
        f = exif.focal_35mm / FULL_FRAME_DIAGONAL_MM * math.hypot(w, h)
        return ImageCamera(_centred(f, f, w, h), f"EXIF FocalLengthIn35mmFilm {exif.focal_35mm:g} mm "
                                                 f"(35 mm diagonal: fx = fy = {f:.2f} px, centred principal point)")
    if exif.focal_mm is None:
        return None
    rotated = exif.orientation >= 5
    stored_w = h if rotated else w  # the sensor's x axis is the stored image's x axis
    if sensor_width_mm is not None:
        sw = v.number("sensor_width_mm", sensor_width_mm, positive=True)
        f = exif.focal_mm * max(w, h) / sw
        return ImageCamera(_centred(f, f, w, h), f"EXIF FocalLength {exif.focal_mm:g} mm with sensor width "
                                                 f"{sw:g} mm (fx = fy = {f:.2f} px, centred principal point)")
    if exif.plane_px_per_mm is not None:
        scale = stored_w / exif.pixel_size[0] if exif.pixel_size else 1.0
        fsx = exif.focal_mm * exif.plane_px_per_mm[0] * scale
        fsy = exif.focal_mm * exif.plane_px_per_mm[1] * scale
        fx, fy = (fsy, fsx) if rotated else (fsx, fsy)
        return ImageCamera(_centred(fx, fy, w, h), f"EXIF FocalLength {exif.focal_mm:g} mm with FocalPlaneResolution "
                                                   f"(fx = {fx:.2f}, fy = {fy:.2f} px, centred principal point)")
    return None


def _from_camera(cal: Intrinsics | StereoRig, width: int, height: int, name: str) -> ImageCamera:
    intr = cal.left if isinstance(cal, StereoRig) else cal
    if intr.size == (width, height):
        return ImageCamera(intr, f"camera file {name}")
    if abs(intr.width * height - intr.height * width) > max(intr.width, intr.height, width, height):
        raise InputError(
            f"the camera file is for {intr.width}x{intr.height} images but the image is {width}x{height} "
            "(another aspect ratio: cropped, or another camera); give the camera file of this image size",
            path=name,
        )
    return ImageCamera(intr.resized(width, height),
                       f"camera file {name} ({intr.width}x{intr.height}, rescaled to {width}x{height})")


def image_camera(
    width: int,
    height: int,
    *,
    camera: Intrinsics | StereoRig | None = None,
    camera_name: str = "camera",
    fx: float | None = None,
    fy: float | None = None,
    cx: float | None = None,
    cy: float | None = None,
    fov_deg: float | None = None,
    exif: ExifFocal | None = None,
    sensor_width_mm: float | None = None,
) -> ImageCamera:
    """The intrinsics of a ``width`` × ``height`` image and where they came from (see the module
    docstring for the order). At most one of ``camera``, explicit values and ``fov_deg`` may be given.

    Raises InputError with the list of options when nothing gives intrinsics.
    """
    w = v.integer("width", width, low=1)
    h = v.integer("height", height, low=1)
    explicit = any(x is not None for x in (fx, fy, cx, cy))
    given = [name for name, on in (("--camera", camera is not None), ("--fx/--fy/--cx/--cy", explicit),
                                   ("--fov", fov_deg is not None)) if on]
    if len(given) > 1:
        raise InputError(f"intrinsics: give one of --camera, --fx/--fy/--cx/--cy or --fov, got {' and '.join(given)}")
    if camera is not None:
        return _from_camera(camera, w, h, camera_name)
    if explicit:
        if fx is None:
            raise InputError("intrinsics: --fy/--cx/--cy need --fx")
        fxv = v.number("fx", fx, positive=True)
        fyv = fxv if fy is None else v.number("fy", fy, positive=True)
        cxv = (w - 1) / 2.0 if cx is None else v.number("cx", cx)
        cyv = (h - 1) / 2.0 if cy is None else v.number("cy", cy)
        notes = [] if fy is not None else ["fy = fx"]
        if cx is None or cy is None:
            notes.append("principal point at the image centre" if cx is None and cy is None
                         else ("cx" if cx is None else "cy") + " at the image centre")
        extra = f" ({', '.join(notes)})" if notes else ""
        intr = Intrinsics(fxv, fyv, cxv, cyv, w, h)
        return ImageCamera(intr, f"given fx={fxv:g} fy={fyv:g} cx={cxv:g} cy={cyv:g}{extra}")
    if fov_deg is not None:
        intr = Intrinsics.from_fov(w, h, fov_deg)
        return ImageCamera(intr, f"horizontal field of view {float(fov_deg):g} deg (fx = fy = {intr.fx:.2f} px, "
                                 "centred principal point)")
    if exif is not None:
        found = intrinsics_from_exif(exif, w, h, sensor_width_mm=sensor_width_mm)
        if found is not None:
            return found
        if exif.focal_mm is not None:
            raise InputError(
                f"the image's EXIF has FocalLength {exif.focal_mm:g} mm but no 35 mm equivalent and no sensor size; "
                "give --sensor-width MM, --camera FILE, --fx F or --fov DEG"
            )
    raise InputError(NO_INTRINSICS_HELP)
