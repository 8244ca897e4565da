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

from depthcloud.cli._common import check_input, check_output, console, progress
from depthcloud.errors import CalibrationError, InputError, StereoError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")

BoardOpt = Annotated[str, typer.Option("--board", help="Inner corners per row x per column, e.g. 9x6.")]
SquareOpt = Annotated[float, typer.Option("--square-m", help="Side of one square in metres, e.g. 0.025.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")]
MethodOpt = Annotated[str, typer.Option("--method", help="Corner detector: auto (the measurably better per view), sb, classic.")]
AspectOpt = Annotated[bool, typer.Option("--fix-aspect-ratio", help="Keep fy/fx = 1 (CALIB_FIX_ASPECT_RATIO).")]
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


def _stereo_rig(rig: Path | None, middlebury: Path | None) -> tuple[Any, tuple[int, int] | None]:
    if (rig is None) == (middlebury is None):
        raise InputError("give exactly one of --rig RIG.yaml or --middlebury calib.txt")
    if rig is not None:
        from depthcloud.camera import StereoRig
        from depthcloud.io.calibfiles import load_calibration

        loaded = load_calibration(rig)
        if not isinstance(loaded, StereoRig):
            raise InputError("is a single camera, expected a stereo rig (from `depthcloud calibrate stereo`)", path=rig)
        return loaded, None
    from depthcloud.io.calibfiles import read_middlebury_calib

    cal = read_middlebury_calib(middlebury)  # type: ignore[arg-type]  # exactly one of the two is given
    ndisp = cal.ndisp or max(16, cal.width // 8)
    return cal.rig, (0, 16 * math.ceil(ndisp / 16))


def register(app: typer.Typer) -> None:
    calibrate = typer.Typer(help="Calibrate a camera or a stereo rig from checkerboard images.", no_args_is_help=True)
    app.add_typer(calibrate, name="calibrate")

    @calibrate.command("mono")
    def calibrate_mono(
        images: Annotated[list[str], typer.Argument(help="Checkerboard images (files or quoted globs).", show_default=False)],
        board: BoardOpt,
        square_m: SquareOpt,
        output: Annotated[Path, typer.Option("-o", "--output", help="Camera file to write (OpenCV FileStorage YAML).")],
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
                     rational_model=rational, fix_principal_point=fix_principal_point)
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
        output: Annotated[Path, typer.Option("-o", "--output", help="Rig file to write (OpenCV FileStorage YAML, with the rectification).")],
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
        opts = {"fix_aspect_ratio": fix_aspect_ratio, "zero_tangent": zero_tangent, "rational_model": rational}
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

    @app.command("stereo")
    def stereo(
        left: Annotated[Path, typer.Argument(help="Left image, or a folder of left images.", show_default=False)],
        right: Annotated[Path, typer.Argument(help="Right image, or a folder of right images (paired by sorted name).", show_default=False)],
        output: Annotated[Path, typer.Option("-o", "--output", help="Cloud file (.ply …), or a folder for folders of pairs.")],
        rig: Annotated[Path | None, typer.Option("--rig", help="Rig file from `calibrate stereo` (or any stereo calibration file).")] = None,
        middlebury: Annotated[Path | None, typer.Option("--middlebury", help="Middlebury calib.txt of a rectified pair (its ndisp sets the search range).")] = None,
        disparity: Annotated[Path | None, typer.Option("--disparity", help="Write the disparity (PFM, pixels, inf = invalid).")] = None,
        depth: Annotated[Path | None, typer.Option("--depth", help="Write the depth as 16-bit PNG in millimetres (0 = invalid).")] = None,
        preview: Annotated[Path | None, typer.Option("--preview", help="Write left | disparity | depth | right as PNG.")] = None,
        views: Annotated[Path | None, typer.Option("--views", help="Write renders of the cloud (front, left, right) as PNG.")] = None,
        mesh: Annotated[Path | None, typer.Option("--mesh", help="Write a triangle mesh of the depth (.ply .obj .glb), cut at depth jumps.")] = None,
        preset: Annotated[str, typer.Option("--preset", help="fast, balanced or quality (or the baselines tutorial, opencv).")] = "balanced",
        min_depth: Annotated[float | None, typer.Option("--min-depth", help="Nearest depth to search (metres); sets the disparity range.")] = None,
        max_depth: Annotated[float | None, typer.Option("--max-depth", help="Farthest depth to search and keep (metres).")] = None,
        wls: Annotated[bool, typer.Option("--wls", help="Smooth the disparity with the WLS filter (opencv-contrib).")] = False,
        alpha: Annotated[float, typer.Option("--alpha", help="Rectification: 0 valid pixels only … 1 every pixel.")] = 0.0,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Reconstruct stereo pairs: rectify, match (SGBM), depth, coloured cloud."""
        from dataclasses import replace

        from depthcloud.io.depthimage import read_color
        from depthcloud.stereo import StereoMatcher, params_for

        the_rig, search = _stereo_rig(rig, middlebury)
        pairs = _pairs(left, right)
        many = len(pairs) > 1 or left.is_dir()
        extras = {"disparity": (disparity, ".pfm"), "depth": (depth, ".png"), "preview": (preview, ".png"),
                  "views": (views, ".png"), "mesh": (mesh, ".ply")}
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
            _write_stereo(result, outs, overwrite=overwrite)
            if "mesh" in outs:
                from depthcloud.surface import stereo_mesh, write_mesh

                write_mesh(outs["mesh"], stereo_mesh(result, max_depth_m=max_depth), overwrite=overwrite)
            if not many:
                console.print(f"cloud: {outs['cloud']} ({len(result.cloud.points)} points)")
                for k, p in outs.items():
                    if k != "cloud":
                        console.print(f"{k}: {p}")
        if many:
            console.print(f"{len(jobs)} pairs → {output}")

    @app.command("undistort")
    def undistort(
        image: Annotated[Path, typer.Argument(help="Image to undistort.", show_default=False)],
        camera: Annotated[Path, typer.Option("--camera", help="Camera file (from `calibrate mono`, OpenCV or ROS).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Undistorted image (PNG).")],
        camera_out: Annotated[Path | None, typer.Option("--camera-out", help="Write the undistorted camera (no distortion) here.")] = None,
        alpha: Annotated[float, typer.Option("--alpha", help="0 keeps valid pixels only, 1 keeps every source pixel.")] = 0.0,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Remove lens distortion from an image with a calibrated camera."""
        from depthcloud.calibrate import undistort_image
        from depthcloud.camera import Intrinsics
        from depthcloud.io.calibfiles import load_calibration, save_camera
        from depthcloud.io.depthimage import read_color, write_png

        _outputs([output, camera_out], overwrite=overwrite)
        img = read_color(check_input(image))
        intr = load_calibration(camera, image_size=(img.shape[1], img.shape[0]))
        if not isinstance(intr, Intrinsics):
            raise InputError("is a stereo rig, expected a single camera", path=camera)
        try:
            out, new = undistort_image(img, intr, alpha=alpha)
        except InputError as exc:
            raise InputError(exc.message, path=image) from exc
        write_png(output, out, overwrite=overwrite)
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


def _write_stereo(result: Any, outs: dict[str, Path], *, overwrite: bool) -> None:
    from depthcloud.io import write_cloud
    from depthcloud.io.depthimage import write_depth_png
    from depthcloud.io.pfm import write_pfm
    from depthcloud.viz import colorize, render_views, save_png, side_by_side, value_range, with_colorbar

    write_cloud(outs["cloud"], result.cloud, overwrite=overwrite)
    if "disparity" in outs:
        write_pfm(outs["disparity"], np.where(np.isfinite(result.disparity), result.disparity, np.inf)
                  .astype(np.float32), overwrite=overwrite)
    if "depth" in outs:
        write_depth_png(outs["depth"], result.depth, overwrite=overwrite)
    if "preview" in outs:
        panels = [result.left]
        for values, label in ((result.disparity, "disparity (px)"), (result.depth, "depth (m)")):
            lo, hi = value_range(values)
            panels.append(with_colorbar(colorize(values, vmin=lo, vmax=hi), vmin=lo, vmax=hi, label=label))
        panels.append(result.right)
        save_png(outs["preview"], side_by_side(panels, labels=["left", "disparity", "depth", "right"]),
                 overwrite=overwrite)
    if "views" in outs:
        save_png(outs["views"], render_views(result.cloud), overwrite=overwrite)
