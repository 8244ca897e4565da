"""Calibration and stereo commands: ``calibrate mono``, ``calibrate stereo``, ``stereo``, ``undistort``.

Thin: parse options, read files through ``depthcloud.io``, call ``depthcloud.calibrate`` and
``depthcloud.stereo``, write results, print the report and where the files went. Every output is
checked before any work starts, so a refused ``-o`` costs nothing.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from depthcloud.cli._checks import AllowEmptyOpt, check_stereo
from depthcloud.cli._common import (
    CameraCommand,
    CameraOpt,
    check_frame,
    check_input,
    check_output,
    check_suffix,
    console,
    load_camera_file,
    output_kind,
    progress,
)
from depthcloud.errors import CalibrationError, InputError, StereoError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")

BoardOpt = Annotated[str, typer.Option("--board", help="Inner corners per row x per column, e.g. 9x6.")]
SquareOpt = Annotated[float, typer.Option("--square-m", help="Side of one square in metres, e.g. 0.025.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")]
MethodOpt = Annotated[str, typer.Option("--method", help="Corner detector: auto (the measurably better per view), sb, classic.")]
AspectOpt = Annotated[bool, typer.Option("--fix-aspect-ratio", help="Keep fy/fx = 1 (CALIB_FIX_ASPECT_RATIO).")]
MaxRmsOpt = Annotated[float, typer.Option("--max-rms", help="Refuse a calibration whose RMS reprojection error is above this many pixels (a chessboard gives well under 1).")]
TangentOpt = Annotated[bool, typer.Option("--zero-tangent", help="No tangential distortion (CALIB_ZERO_TANGENT_DIST).")]
RationalOpt = Annotated[bool, typer.Option("--rational", help="8-coefficient rational model (CALIB_RATIONAL_MODEL).")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write the report as Markdown here.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")]
PicturesOpt = Annotated[Path | None, typer.Option("--pictures", help="Folder for pictures: corners drawn per view (and the rectified pair).")]


def expand(patterns: Sequence[str], what: str) -> list[Path]:
    """Paths from arguments that may be files or quoted glob patterns, in sorted order per pattern."""
    out: list[Path] = []
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            hits = sorted(glob.glob(pat))
            if not hits:
                raise InputError(f"{what}: the pattern {pat!r} matches no file")
            out += [Path(h) for h in hits]
        else:
            out.append(check_input(pat))
    return out


def _board(board: str, square_m: float) -> Any:
    from depthcloud.calibrate import Board

    return Board.parse(board, square_m)


def _outputs(paths: Sequence[Path | None], *, overwrite: bool) -> None:
    for p in paths:
        if p is not None:
            check_output(p, overwrite=overwrite)


def _detect(paths: list[Path], board: Any, method: str, label: str) -> list[Any]:
    from depthcloud.calibrate import detect_corners

    # Views without the board are listed by the report (or named by the error when too few remain).
    return [detect_corners(p, board, method=method) for p in progress(paths, total=len(paths), label=label)]


def _pictures(folder: Path, dets: Sequence[Any], board: Any, *, overwrite: bool) -> int:
    from depthcloud.calibrate import draw_corners
    from depthcloud.io.depthimage import read_color
    from depthcloud.viz import save_png

    n = 0
    for d in dets:
        if d.found:
            save_png(folder / f"corners_{Path(d.name).stem}.png", draw_corners(read_color(d.name), d, board),
                     overwrite=overwrite)
            n += 1
    return n


def _write_reports(text: str, json_text: str, report: Path | None, json_out: Path | None, *, overwrite: bool) -> None:
    from depthcloud.io._files import write_atomic

    if report is not None:
        write_atomic(report, text.encode(), overwrite=overwrite)
        console.print(f"report: {report}")
    if json_out is not None:
        write_atomic(json_out, json_text.encode(), overwrite=overwrite)
        console.print(f"report (JSON): {json_out}")


def _pairs(left: Path, right: Path) -> list[tuple[Path, Path]]:
    """One pair, or the pairs of two folders matched by sorted file name."""
    if left.is_dir() != right.is_dir():
        raise InputError("give two images or two folders", path=left if not left.is_dir() else right)
    if not left.is_dir():
        return [(check_input(left), check_input(right))]
    ls = sorted(p for p in left.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    rs = sorted(p for p in right.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not ls:
        raise InputError("no images in this folder", path=left)
    if len(ls) != len(rs):
        raise StereoError(
            f"{len(ls)} left images but {len(rs)} right images in {right}; the folders must hold the same "
            "number of images, paired by sorted file name", path=left,
        )
    return list(zip(ls, rs, strict=True))


def _stereo_rig(camera: Path) -> tuple[Any, tuple[int, int] | None]:
    """The rig of ``--camera`` and, for a Middlebury calib.txt, the search range its ndisp sets."""
    from depthcloud.camera import StereoRig
    from depthcloud.io.calibfiles import calibration_format, read_middlebury_calib

    if calibration_format(check_input(camera)) == "middlebury":
        cal = read_middlebury_calib(camera)
        ndisp = cal.ndisp or max(16, cal.width // 8)
        return cal.rig, (0, 16 * math.ceil(ndisp / 16))
    loaded = load_camera_file(camera)
    if not isinstance(loaded, StereoRig):
        raise InputError("is a single camera, expected a stereo rig (from `depthcloud calibrate stereo`, "
                         "a Middlebury calib.txt, an OpenCV stereo file or a depthai JSON)", path=camera)
    return loaded, None


def register(app: typer.Typer) -> None:
    calibrate = typer.Typer(help="Calibrate a camera or a stereo rig from checkerboard images.", no_args_is_help=True)
    app.add_typer(calibrate, name="calibrate")

    @calibrate.command("mono")
    def calibrate_mono(
        images: Annotated[list[str], typer.Argument(help="Checkerboard images (files or quoted globs).", show_default=False)],
        board: BoardOpt,
        square_m: SquareOpt,
        output: Annotated[Path, typer.Option("-o", "--output", help="Camera FILE to write (.yaml/.yml/.xml: OpenCV FileStorage).", show_default=False)],
        ros: Annotated[Path | None, typer.Option("--ros", help="Also write a ROS camera_info YAML here.")] = None,
        report: ReportOpt = None,
        json_out: JsonOpt = None,
        pictures: PicturesOpt = None,
        reference: Annotated[Path | None, typer.Option("--reference", help="A camera file to compare against in the report.")] = None,
        method: MethodOpt = "auto",
        fix_aspect_ratio: AspectOpt = False,
        zero_tangent: TangentOpt = False,
        rational: RationalOpt = False,
        fix_principal_point: Annotated[bool, typer.Option("--fix-principal-point", help="Keep the principal point at the image centre.")] = False,
        max_rms: MaxRmsOpt = 2.0,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Calibrate one camera: RMS, per-view errors, outliers, coverage; writes a camera file."""
        from depthcloud.calibrate import calibrate_mono as run
        from depthcloud.camera import StereoRig
        from depthcloud.io.calibfiles import load_calibration, save_camera, write_ros_camera_info

        b = _board(board, square_m)
        _outputs([output, ros, report, json_out], overwrite=overwrite)
        paths = expand(images, "IMAGES")
        dets = _detect(paths, b, method, "detecting corners")
        result = run(dets, b, fix_aspect_ratio=fix_aspect_ratio, zero_tangent=zero_tangent,
                     rational_model=rational, fix_principal_point=fix_principal_point, max_rms_px=max_rms)
        ref = None
        if reference is not None:
            loaded = load_calibration(reference, image_size=result.intrinsics.size)
            ref = loaded.left if isinstance(loaded, StereoRig) else loaded
        text = result.to_markdown(reference=ref, reference_name=reference.name if reference else "reference")
        save_camera(output, result.intrinsics, overwrite=overwrite,
                    metadata={"rms_px": result.rms_px, "views": len(result.views), "board": str(b)})
        console.print(text, markup=False)
        console.print(f"camera: {output}")
        if ros is not None:
            write_ros_camera_info(ros, result.intrinsics, overwrite=overwrite)
            console.print(f"ROS camera_info: {ros}")
        _write_reports(text, result.to_json(), report, json_out, overwrite=overwrite)
        if pictures is not None:
            n = _pictures(pictures, dets, b, overwrite=overwrite)
            console.print(f"pictures: {n} in {pictures}")

    @calibrate.command("stereo")
    def calibrate_stereo(
        left: Annotated[list[str], typer.Option("--left", help="Left images (quoted glob, or repeat the option).")],
        right: Annotated[list[str], typer.Option("--right", help="Right images, paired with --left in sorted order.")],
        board: BoardOpt,
        square_m: SquareOpt,
        output: Annotated[Path, typer.Option("-o", "--output", help="Rig FILE to write (.yaml/.yml/.xml: OpenCV FileStorage, with the rectification).", show_default=False)],
        ros: Annotated[Path | None, typer.Option("--ros", help="Also write ROS camera_info YAML: NAME_left.yaml and NAME_right.yaml.")] = None,
        report: ReportOpt = None,
        json_out: JsonOpt = None,
        pictures: PicturesOpt = None,
        reference: Annotated[Path | None, typer.Option("--reference", help="An OpenCV stereo file (M1 D1 M2 D2) to compare against.")] = None,
        alpha: Annotated[float, typer.Option("--alpha", help="Rectification: 0 valid pixels only … 1 every pixel.")] = 0.0,
        method: MethodOpt = "auto",
        fix_aspect_ratio: AspectOpt = False,
        zero_tangent: TangentOpt = False,
        rational: RationalOpt = False,
        fix_intrinsics: Annotated[bool, typer.Option("--fix-intrinsics", help="Calibrate each camera alone first and keep it (CALIB_FIX_INTRINSIC).")] = False,
        max_rms: MaxRmsOpt = 2.0,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Calibrate a stereo rig: baseline, rectification, epipolar error; writes a rig file."""
        from depthcloud.calibrate import calibrate_mono as mono
        from depthcloud.calibrate import calibrate_stereo as run
        from depthcloud.io.calibfiles import read_opencv_stereo_cameras, save_rig, write_ros_camera_info

        b = _board(board, square_m)
        ros_paths = [] if ros is None else [ros.with_name(f"{ros.stem}_{side}{ros.suffix or '.yaml'}") for side in ("left", "right")]
        _outputs([output, report, json_out, *ros_paths], overwrite=overwrite)
        lp, rp = expand(left, "--left"), expand(right, "--right")
        if len(lp) != len(rp):
            raise CalibrationError(
                f"--left gives {len(lp)} images but --right gives {len(rp)}; pass one right image per left image"
            )
        ld = _detect(lp, b, method, "detecting corners (left)")
        rd = _detect(rp, b, method, "detecting corners (right)")
        opts: dict[str, Any] = {"fix_aspect_ratio": fix_aspect_ratio, "zero_tangent": zero_tangent,
                                "rational_model": rational, "max_rms_px": max_rms}
        kl = kr = None
        if fix_intrinsics:
            kl, kr = mono(ld, b, **opts).intrinsics, mono(rd, b, **opts).intrinsics
        result = run(ld, rd, b, left_intrinsics=kl, right_intrinsics=kr, fix_intrinsics=fix_intrinsics,
                     alpha=alpha, **opts)
        ref = None if reference is None else read_opencv_stereo_cameras(reference, image_size=result.rig.left.size)
        text = result.to_markdown(reference=ref, reference_name=reference.name if reference else "reference")
        save_rig(output, result.rig, overwrite=overwrite, rectification=result.rectification.to_dict(),
                 metadata={"rms_px": result.rms_px, "pairs": len(result.views), "board": str(b),
                           "epipolar_mean_px": result.epipolar_mean_px})
        console.print(text, markup=False)
        console.print(f"rig: {output}")
        for path, cam, name in zip(ros_paths, (result.rig.left, result.rig.right), ("left", "right"), strict=False):
            write_ros_camera_info(path, cam, camera_name=name, overwrite=overwrite)
            console.print(f"ROS camera_info ({name}): {path}")
        _write_reports(text, result.to_json(), report, json_out, overwrite=overwrite)
        if pictures is not None:
            n = _pictures(pictures, [*ld, *rd], b, overwrite=overwrite)
            _rectified_picture(pictures, result, lp, rp, ld, rd, overwrite=overwrite)
            console.print(f"pictures: {n + 1} in {pictures}")

    @app.command("stereo", cls=CameraCommand)
    def stereo(
        left: Annotated[Path, typer.Argument(help="Left image, or a folder of left images.", show_default=False)],
        right: Annotated[Path, typer.Argument(help="Right image, or a folder of right images (paired by sorted name).", show_default=False)],
        camera: CameraOpt,
        output: Annotated[Path, typer.Option("-o", "--output", help="Output: a cloud FILE (.ply .pcd .xyz .csv .npz) for one pair; a FOLDER for folders of pairs.", show_default=False)],
        disparity: Annotated[Path | None, typer.Option("--disparity", help="Write the disparity (PFM, pixels, inf = invalid): a FILE, or a FOLDER for folders of pairs.")] = None,
        depth: Annotated[Path | None, typer.Option("--depth", help="Write the depth as 16-bit PNG in millimetres (0 = invalid): a FILE, or a FOLDER.")] = None,
        preview: Annotated[Path | None, typer.Option("--preview", help="Write a 2x2 picture (left | right over disparity | depth, filled holes hatched) as PNG: a FILE, or a FOLDER.")] = None,
        views: Annotated[Path | None, typer.Option("--views", help="Write renders of the cloud (front, left, right) as PNG: a FILE, or a FOLDER.")] = None,
        frame: Annotated[str, typer.Option("--frame", help="Frame of the written points: optical, zup, opengl.")] = "optical",
        mesh: Annotated[Path | None, typer.Option("--mesh", help="Write a triangle mesh of the depth (.ply .obj .glb), cut at depth jumps: a FILE, or a FOLDER.")] = None,
        preset: Annotated[str, typer.Option("--preset", help="fast, balanced or quality (or the baselines tutorial, opencv).")] = "balanced",
        min_depth: Annotated[float | None, typer.Option("--min-depth", help="Nearest depth to search (metres); sets the disparity range.")] = None,
        max_depth: Annotated[float | None, typer.Option("--max-depth", help="Farthest depth to search and keep (metres).")] = None,
        wls: Annotated[bool, typer.Option("--wls", help="Smooth the disparity with the WLS filter (opencv-contrib).")] = False,
        alpha: Annotated[float, typer.Option("--alpha", help="Rectification: 0 valid pixels only … 1 every pixel.")] = 0.0,
        overwrite: OverwriteOpt = False,
        allow_empty: AllowEmptyOpt = False,
    ) -> None:
        """Reconstruct stereo pairs: rectify, match (SGBM), depth, coloured cloud."""
        from dataclasses import replace

        from depthcloud.io import CLOUD_EXTENSIONS
        from depthcloud.io.depthimage import read_color
        from depthcloud.stereo import StereoMatcher, params_for

        check_frame(frame)
        the_rig, search = _stereo_rig(camera)
        pairs = _pairs(left, right)
        many = len(pairs) > 1 or left.is_dir()
        output_kind(output, CLOUD_EXTENSIONS, many=many)
        extras = {"disparity": (disparity, ".pfm"), "depth": (depth, ".png"), "preview": (preview, ".png"),
                  "views": (views, ".png"), "mesh": (mesh, ".ply")}
        if not many:
            from depthcloud.surface.meshio import MESH_EXTENSIONS

            for name, (p, ext) in extras.items():
                if p is not None:
                    check_suffix(p, MESH_EXTENSIONS if name == "mesh" else (ext,), name, option=f"--{name}")
        jobs = []
        for lp, rp in pairs:
            outs = {"cloud": output / f"{lp.stem}.ply" if many else output}
            outs.update({k: (p / f"{lp.stem}{ext}" if many else p) for k, (p, ext) in extras.items() if p is not None})
            _outputs(list(outs.values()), overwrite=overwrite)
            jobs.append((lp, rp, outs))
        params = replace(params_for(preset), wls=True) if wls else params_for(preset)
        matcher = StereoMatcher(the_rig, preset=params, min_depth_m=min_depth, max_depth_m=max_depth,
                                search_range=search if min_depth is None else None, alpha=alpha)
        for lp, rp, outs in progress(jobs, total=len(jobs), label="stereo"):
            a, b = read_color(lp), read_color(rp)
            try:
                result = matcher(a, b)
            except StereoError as exc:
                raise StereoError(f"{exc.message} (right image: {rp})", path=lp) from exc
            check_stereo(result, matcher, what=lp.name, allow_empty=allow_empty)
            _write_stereo(result, outs, overwrite=overwrite, frame=frame)
            if "mesh" in outs:
                from depthcloud.surface import stereo_mesh, write_mesh

                mesh_ = stereo_mesh(result, max_depth_m=max_depth)
                write_mesh(outs["mesh"], mesh_ if frame == "optical" else mesh_.to_frame(frame), overwrite=overwrite)
            if not many:
                console.print(f"cloud: {outs['cloud']} ({len(result.cloud.points)} points)")
                for k, p in outs.items():
                    if k != "cloud":
                        console.print(f"{k}: {p}")
        if many:
            console.print(f"{len(jobs)} pairs → {output}")

    @app.command("undistort", cls=CameraCommand)
    def undistort(
        image: Annotated[Path, typer.Argument(help="Image to undistort.", show_default=False)],
        camera: CameraOpt,
        output: Annotated[Path, typer.Option("-o", "--output", help="Undistorted image FILE: .png, or .jpg/.jpeg (JPEG).", show_default=False)],
        camera_out: Annotated[Path | None, typer.Option("--camera-out", help="Write the undistorted camera (no distortion) here.")] = None,
        alpha: Annotated[float, typer.Option("--alpha", help="0 keeps valid pixels only, 1 keeps every source pixel.")] = 0.0,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Remove lens distortion from an image with a calibrated camera."""
        from depthcloud.calibrate import undistort_image
        from depthcloud.camera import Intrinsics
        from depthcloud.io.calibfiles import save_camera
        from depthcloud.io.depthimage import read_color

        check_suffix(output, (".png", ".jpg", ".jpeg"), "undistorted image")
        if camera_out is not None:
            check_suffix(camera_out, (".yaml", ".yml", ".xml", ".json"), "camera")
        _outputs([output, camera_out], overwrite=overwrite)
        img = read_color(check_input(image))
        intr = load_camera_file(camera, image_size=(img.shape[1], img.shape[0]))
        if not isinstance(intr, Intrinsics):
            raise InputError("is a stereo rig, expected a single camera", path=camera)
        try:
            out, new = undistort_image(img, intr, alpha=alpha)
        except InputError as exc:
            raise InputError(exc.message, path=image) from exc
        _write_image(output, out, overwrite=overwrite)
        console.print(f"undistorted: {output}")
        if camera_out is not None:
            save_camera(camera_out, new, overwrite=overwrite)
            console.print(f"camera: {camera_out}")


def _rectified_picture(folder: Path, result: Any, lp: list[Path], rp: list[Path], ld: list[Any], rd: list[Any],
                       *, overwrite: bool) -> None:
    """The first pair with the board in both views, rectified, with horizontal lines."""
    from depthcloud.calibrate import rectified_pair_picture
    from depthcloud.io.depthimage import read_color
    from depthcloud.stereo import StereoMatcher
    from depthcloud.viz import save_png

    i = next(k for k, (a, b) in enumerate(zip(ld, rd, strict=True)) if a.found and b.found)
    m = StereoMatcher(result.rig, alpha=result.rectification.alpha)
    a, b = m.rectify(read_color(lp[i]), read_color(rp[i]))
    save_png(folder / "rectified_pair.png", rectified_pair_picture(a, b), overwrite=overwrite)


def _write_image(path: Path, rgb: np.ndarray, *, overwrite: bool) -> Path:
    """An RGB image as PNG or JPEG, as the extension says (checked up front by check_suffix)."""
    import cv2

    from depthcloud.io._files import write_atomic
    from depthcloud.io.depthimage import write_png

    if path.suffix.lower() == ".png":
        return write_png(path, rgb, overwrite=overwrite)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise InputError("OpenCV could not encode the JPEG", path=path)
    return write_atomic(path, buf.tobytes(), overwrite=overwrite)


def stereo_preview(result: Any) -> np.ndarray:
    """The 2x2 picture of a stereo result: rectified left | right over disparity | depth, each map with
    a colour bar in its unit, and the pixels only hole filling gave a value hatched."""
    from depthcloud.viz import colorize, grid, hatch, value_range, with_colorbar

    filled = np.isfinite(result.disparity) & ~result.matched
    maps = []
    for values, label in ((result.disparity, "px"), (result.depth, "m")):
        lo, hi = value_range(values)
        maps.append(with_colorbar(hatch(colorize(values, vmin=lo, vmax=hi), filled), vmin=lo, vmax=hi, label=label))
    n_filled = int(filled.sum())
    note = f" ({100.0 * n_filled / filled.size:.0f} % hole-filled, hatched)" if n_filled else ""
    return grid([result.left, result.right, *maps], columns=2,
                labels=["left (rectified)", "right (rectified)", "disparity (px)" + note, "depth (m)" + note])


def _write_stereo(result: Any, outs: dict[str, Path], *, overwrite: bool, frame: str = "optical") -> None:
    from depthcloud.io import write_cloud
    from depthcloud.io.depthimage import write_depth_png
    from depthcloud.io.pfm import write_pfm
    from depthcloud.viz import render_views, save_png

    cloud = result.cloud if frame == "optical" else result.cloud.to_frame(frame)
    write_cloud(outs["cloud"], cloud, overwrite=overwrite)
    if "disparity" in outs:
        write_pfm(outs["disparity"], np.where(np.isfinite(result.disparity), result.disparity, np.inf)
                  .astype(np.float32), overwrite=overwrite)
    if "depth" in outs:
        write_depth_png(outs["depth"], result.depth, overwrite=overwrite)
    if "preview" in outs:
        save_png(outs["preview"], stereo_preview(result), overwrite=overwrite)
    if "views" in outs:
        save_png(outs["views"], render_views(result.cloud), overwrite=overwrite)
