"""Core commands: ``depth``, ``disparity``, ``info``, ``convert``, ``demo``, ``version``.

Each command reads its inputs through ``depthcloud.io``, calls the library, and prints where the
results went. Several inputs make one output each inside the ``-o`` folder, with a progress bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.cli._checks import AllowEmptyOpt, check_cloud
from depthcloud.cli._common import (
    CameraCommand,
    CameraOpt,
    check_frame,
    check_input,
    check_output,
    console,
    load_camera_file,
    output_kind,
    progress,
    single_camera,
)
from depthcloud.cloud import FRAMES, PointCloud
from depthcloud.errors import FormatError, InputError
from depthcloud.io.clouds import CLOUD_EXTENSIONS as CLOUD_EXTS
from depthcloud.io.depthimage import read_disparity

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pfm", ".exr", ".npy")

OutOpt = Annotated[Path, typer.Option("-o", "--output", help="Output: a cloud FILE (.ply .pcd .xyz .csv .npz) for one input; a FOLDER (existing, or no extension) for several.", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")]
FrameOpt = Annotated[str, typer.Option("--frame", help=f"Frame of the written points: {', '.join(FRAMES)}.")]
MinOpt = Annotated[float, typer.Option("--min-depth", help="Drop points nearer than this (metres).")]
MaxOpt = Annotated[float, typer.Option("--max-depth", help="Drop points farther than this (metres).")]
AsciiOpt = Annotated[bool, typer.Option("--ascii", help="Write ASCII instead of binary where the format has both.")]


@dataclass(frozen=True)
class _Job:
    data: Path
    color: Path | None
    out: Path


def _jobs(inputs: list[Path], colors: list[Path] | None, output: Path, *, overwrite: bool, ext: str = ".ply") -> list[_Job]:
    """Pair inputs with colours and outputs; one input → ``output`` is the file, several → a folder."""
    if colors and len(colors) != len(inputs):
        raise InputError(f"--color: given {len(colors)} time(s) for {len(inputs)} input(s); give one per input or none")
    for p in inputs:
        check_input(p)
    for c in colors or []:
        check_input(c)
    if output_kind(output, CLOUD_EXTS, many=len(inputs) > 1) == "file":
        outs = [check_output(output, overwrite=overwrite)]
    else:
        if output.exists() and not output.is_dir():
            raise InputError("exists and is not a folder", path=output)
        stems = [p.stem for p in inputs]
        if len(set(stems)) != len(stems):
            raise InputError("several inputs share a file name; their clouds would overwrite each other")
        outs = [check_output(output / f"{p.stem}{ext}", overwrite=overwrite) for p in inputs]
    cols: list[Path | None] = list(colors) if colors else [None] * len(inputs)
    return [_Job(d, c, o) for d, c, o in zip(inputs, cols, outs, strict=True)]


def _load_rectified_rig(path: Path) -> StereoRig:
    # A rig file from `calibrate stereo` holds the raw rig and its rectification: disparity maps are
    # computed on the rectified images, so the rectified rig (from P1, P2) is the one that applies.
    cal = load_camera_file(path, rectified=True)
    if not isinstance(cal, StereoRig):
        raise InputError("is a single-camera calibration; disparity needs a stereo rig (Middlebury calib.txt or a rig file)", path=path)
    if not cal.rectified:
        raise InputError(
            "describes an unrectified rig without its rectification; disparity needs the rectified rig "
            "(run `depthcloud calibrate stereo`, whose rig file holds it)", path=path,
        )
    return cal


def _read_color(path: Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    if path is None:
        return None
    from depthcloud.io.depthimage import read_color

    rgb = read_color(path)
    if rgb.shape[:2] != shape:
        raise InputError(
            f"its size {rgb.shape[1]}x{rgb.shape[0]} differs from the depth/disparity image {shape[1]}x{shape[0]}", path=path
        )
    return rgb


def _finish(cloud: PointCloud, out: Path, *, frame: str, ascii_: bool) -> PointCloud:
    from depthcloud.io import write_cloud

    if frame != "optical":
        cloud = cloud.to_frame(frame)
    write_cloud(out, cloud, overwrite=True, ascii=ascii_)  # existence already checked up front
    return cloud




def _load_npy(path: Path) -> np.ndarray:
    """A .npy array, its header checked against the size limit first (depthcloud.io.limits)."""
    from depthcloud.io.limits import check_npy_header

    with open(path, "rb") as fh:
        check_npy_header(fh, path=path.name)
    try:
        return np.load(path, allow_pickle=False)  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise FormatError(f"not a readable .npy array ({exc})", path=path) from exc


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the depthcloud version."""
        from depthcloud import __version__

        typer.echo(__version__)

    @app.command(cls=CameraCommand)
    def depth(
        inputs: Annotated[list[Path], typer.Argument(help="Depth images: 16-bit PNG, PFM, NPY or EXR.", show_default=False)],
        camera: CameraOpt,
        output: OutOpt,
        depth_scale: Annotated[float | None, typer.Option("--depth-scale", help="Metres per stored unit (16-bit PNG default 0.001; TUM 0.0002).")] = None,
        color: Annotated[list[Path] | None, typer.Option("--color", "-c", help="Colour image aligned to the depth, once per input.")] = None,
        min_depth: MinOpt = 0.0,
        max_depth: MaxOpt = float("inf"),
        frame: FrameOpt = "optical",
        ascii_: AsciiOpt = False,
        overwrite: OverwriteOpt = False,
        allow_empty: AllowEmptyOpt = False,
    ) -> None:
        """Depth images + intrinsics → coloured point clouds."""
        from depthcloud.geometry import Unprojector
        from depthcloud.io.depthimage import read_depth

        check_frame(frame)
        intr = single_camera(camera)
        jobs = _jobs(inputs, color, output, overwrite=overwrite)
        unproject: Unprojector | None = None
        for job in progress(jobs, total=len(jobs), label="depth → cloud"):
            d = read_depth(job.data, depth_scale=depth_scale)
            if d.shape != intr.shape:
                raise InputError(
                    f"its size {d.shape[1]}x{d.shape[0]} differs from the intrinsics {intr.width}x{intr.height}; "
                    "pass the camera file of this image size", path=job.data,
                )
            unproject = unproject or Unprojector(intr)
            cloud = unproject(d, color=_read_color(job.color, d.shape), min_depth_m=min_depth, max_depth_m=max_depth)
            check_cloud(cloud, d, what=job.data.name, min_depth_m=min_depth, max_depth_m=max_depth,
                        allow_empty=allow_empty)
            _finish(cloud, job.out, frame=frame, ascii_=ascii_)
            console.print(f"{job.out}: {len(cloud)} points")

    @app.command(cls=CameraCommand)
    def disparity(
        inputs: Annotated[list[Path], typer.Argument(help="Disparity maps of the left image: PFM, NPY or PNG.", show_default=False)],
        camera: CameraOpt,
        output: OutOpt,
        color: Annotated[list[Path] | None, typer.Option("--color", "-c", help="Left colour image, once per input.")] = None,
        disparity_scale: Annotated[float | None, typer.Option("--disparity-scale", help="PNG only: stored value / scale = pixels.")] = None,
        min_depth: MinOpt = 0.0,
        max_depth: MaxOpt = float("inf"),
        frame: FrameOpt = "optical",
        ascii_: AsciiOpt = False,
        overwrite: OverwriteOpt = False,
        allow_empty: AllowEmptyOpt = False,
    ) -> None:
        """Rectified disparity + stereo calibration → metric coloured point clouds (Z = f·B/(d + doffs))."""
        from depthcloud.geometry import Unprojector, disparity_to_depth

        check_frame(frame)
        rig = _load_rectified_rig(camera)
        jobs = _jobs(inputs, color, output, overwrite=overwrite)
        unproject = Unprojector(rig.left.undistorted())
        for job in progress(jobs, total=len(jobs), label="disparity → cloud"):
            d = read_disparity(job.data, scale=disparity_scale)
            if d.shape != rig.left.shape:
                raise InputError(
                    f"its size {d.shape[1]}x{d.shape[0]} differs from the calibration {rig.left.width}x{rig.left.height}",
                    path=job.data,
                )
            z = disparity_to_depth(d, rig.focal_px, rig.baseline_m, doffs_px=rig.doffs_px)
            cloud = unproject(z, color=_read_color(job.color, d.shape), min_depth_m=min_depth, max_depth_m=max_depth)
            check_cloud(cloud, z, what=job.data.name, min_depth_m=min_depth, max_depth_m=max_depth,
                        allow_empty=allow_empty, scale_hint=None)
            _finish(cloud, job.out, frame=frame, ascii_=ascii_)
            console.print(f"{job.out}: {len(cloud)} points (baseline {rig.baseline_m:.6g} m, f {rig.focal_px:.6g} px)")

    @app.command()
    def convert(
        src: Annotated[Path, typer.Argument(help="Input cloud.", show_default=False)],
        dst: Annotated[Path, typer.Argument(help="Output cloud FILE; the format follows the extension.", show_default=False)],
        frame: Annotated[str | None, typer.Option("--frame", help=f"Frame of the written points (converted from the cloud's): {', '.join(FRAMES)}.")] = None,
        ascii_: AsciiOpt = False,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Convert a point cloud between PLY, PCD, XYZ/CSV, NPZ, LAS/LAZ and MCAP."""
        from depthcloud.io import read_cloud, write_cloud

        check_input(src)
        if frame is not None:
            check_frame(frame)
        if src.resolve() == dst.resolve():
            raise InputError("input and output are the same file", path=dst)
        out = check_output(dst, overwrite=overwrite)
        cloud = read_cloud(src)
        if frame is not None:
            if cloud.frame not in FRAMES:
                raise InputError(f"the cloud's frame {cloud.frame!r} is not a named frame; cannot convert to {frame!r}", path=src)
            cloud = cloud.to_frame(frame)
        write_cloud(out, cloud, overwrite=True, ascii=ascii_)
        console.print(f"{out}: {len(cloud)} points")

    @app.command()
    def info(
        path: Annotated[Path, typer.Argument(help="A cloud, an image (depth, disparity, colour), a calibration file, or a recording (.dcrec, RealSense .bag, Amiga .bin).", show_default=False)],
    ) -> None:
        """Describe a point cloud, an image, a calibration file or a recording."""
        check_input(path)
        for line in describe(path):
            console.print(line)

    @app.command()
    def demo(
        output: Annotated[Path, typer.Option("-o", "--output", help="FOLDER for the demo's files (scene.ply, preview.png, depth.png, color.png, camera.yaml).")] = Path("demo-out"),
        width: Annotated[int, typer.Option(help="Image width in pixels.")] = 848,
        height: Annotated[int, typer.Option(help="Image height in pixels.")] = 480,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Render a synthetic scene with known geometry, make its coloured cloud, write a PLY and a PNG preview."""
        from depthcloud.cli.demo import run_demo

        run_demo(output, width=width, height=height, overwrite=overwrite)


def describe(path: Path) -> list[str]:
    """Lines describing ``path``: a cloud, an image or a calibration file (chosen by extension, then content)."""
    ext = path.suffix.lower()
    if ext == ".dcrec":
        return _describe_recording(path)
    if ext == ".mcap":
        return _describe_mcap(path)
    if ext == ".bag":
        return _describe_bag(path)
    if ext == ".bin":
        return _describe_event_log(path)
    if ext in CLOUD_EXTS and ext != ".txt":
        return _describe_cloud(path)
    if ext in IMAGE_EXTS:
        return _describe_image(path)
    from depthcloud.io.calibfiles import load_calibration

    try:
        return _describe_calib(load_calibration(path), path)
    except FormatError:
        if ext == ".txt":
            return _describe_cloud(path)
        raise


def _describe_cloud(path: Path) -> list[str]:
    from depthcloud.io import read_cloud

    c = read_cloud(path)
    lines = [f"{path}: point cloud, {len(c)} points, frame {c.frame}"]
    attrs = [n for n in ("colors", "normals") if getattr(c, n) is not None]
    lines.append(f"  attributes: xyz{''.join(', ' + a for a in attrs)}")
    if len(c):
        lo, hi = c.bounds()
        lines.append(f"  bounds (m): x {lo[0]:.4g}..{hi[0]:.4g}, y {lo[1]:.4g}..{hi[1]:.4g}, z {lo[2]:.4g}..{hi[2]:.4g}")
        lines.append(f"  centroid (m): {np.array2string(c.points.mean(axis=0), precision=4)}")
    return lines


def _describe_mcap(path: Path) -> list[str]:
    from depthcloud.io.mcap import read_mcap_clouds, topics

    lines = [f"{path}: MCAP, " + "; ".join(f"{topic} ({schema}) × {n}" for topic, schema, n in topics(path))]
    clouds = read_mcap_clouds(path)
    first = next(clouds, None)
    if first is not None:
        lines.append(f"  first point cloud: {len(first)} points, frame {first.frame}, stamp {first.stamp:.6f} s"
                     f"{', colours' if first.has_colors else ''}")
    return lines


def _describe_recording(path: Path) -> list[str]:
    from depthcloud.sources.replay import RecordingReader

    with RecordingReader(path) as reader:
        first = last = None
        has_color = False
        for frame in reader:
            first = first or frame
            last = frame
            has_color = has_color or frame.color is not None
        n, problem, header = reader.frames_read, reader.problem, reader.header
    lines = [f"{path}: depthcloud recording, {n} frame(s), source {header.get('source', '?')!r}, "
             f"compression {header.get('compression', '?')}"]
    if first is not None and last is not None:
        span = last.stamp - first.stamp
        rate = f", {(n - 1) / span:.1f} fps" if n > 1 and span > 0 else ""
        lines.append(f"  {span:.3f} s of frames (seq {first.seq}..{last.seq}){rate}; colour: {'yes' if has_color else 'no'}")
        lines += _describe_intrinsics(first.intrinsics, "depth camera")
    if problem:
        lines.append(f"  damaged: {problem} (the frames before it are whole)")
    return lines


def _describe_bag(path: Path) -> list[str]:
    from depthcloud.io.rosbag import scan_bag

    bag = scan_bag(path)
    streams = bag.streams()
    lines = [f"{path}: RealSense recording (ROS bag 2.0), {bag.size / 1e6:.2f} MB, {bag.chunks} chunk(s) "
             f"({', '.join(sorted(bag.compressions)) or 'none'})"]
    if bag.duration_s is not None:
        lines.append(f"  {bag.duration_s:.3f} s of recording")
    for name, n in streams.items():
        lines.append(f"  stream {name.rsplit('/', 1)[-1]}: {n} frame(s) ({name})")
    if not streams:
        lines.append("  no image streams")
    return lines


def _describe_event_log(path: Path) -> list[str]:
    from depthcloud.amiga.eventlog import EventLogReader

    reader = EventLogReader(path)
    counts: dict[str, int] = {}
    stamps: list[float] = []
    for rec in reader:
        key = f"{rec.path} ({rec.type_name.rsplit('.', 1)[-1] or '?'})"
        counts[key] = counts.get(key, 0) + 1
        if rec.event.timestamps:
            stamps.append(float(rec.event.timestamps[0].stamp))
    lines = [f"{path}: farm-ng event log (Amiga), {reader.count} record(s), {reader.size / 1e6:.2f} MB"]
    if len(stamps) > 1:
        lines.append(f"  {max(stamps) - min(stamps):.3f} s of recording")
    for key, n in sorted(counts.items()):
        lines.append(f"  stream {key}: {n} message(s)")
    if reader.problem:
        lines.append(f"  damaged: {reader.problem} (the records before it are whole)")
    return lines


def _describe_image(path: Path) -> list[str]:
    ext = path.suffix.lower()
    arr: np.ndarray
    if ext == ".pfm":
        from depthcloud.io.pfm import read_pfm

        arr = read_pfm(path)
    elif ext == ".npy":
        arr = _load_npy(path)
    else:
        import cv2

        from depthcloud.io.limits import check_image_bytes

        data = path.read_bytes()
        check_image_bytes(data, path=path.name)  # before OpenCV allocates what the header declares
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise FormatError("not a readable image", path=path)
        arr = img
    h, w = arr.shape[:2]
    ch = 1 if arr.ndim == 2 else arr.shape[2]
    lines = [f"{path}: image {w}x{h}, {ch} channel(s), {arr.dtype}"]
    if arr.size and arr.dtype.kind in "fui":
        a = arr.astype(np.float64)
        finite = np.isfinite(a)
        valid = finite & (a > 0)
        lines.append(f"  valid (finite, > 0): {100.0 * valid.mean():.1f} %")
        if valid.any():
            lines.append(f"  range of valid values: {a[valid].min():.6g}..{a[valid].max():.6g}")
        if arr.dtype == np.uint16:
            lines.append("  16-bit: a depth image? `depthcloud depth` takes --depth-scale (metres per unit, default 0.001)")
    return lines


def _describe_intrinsics(intr: Intrinsics, label: str) -> list[str]:
    dist = f"{intr.model} ({len(intr.dist)} coefficients)" if intr.dist else "none"
    return [
        f"  {label}: {intr.width}x{intr.height}, fx {intr.fx:.6g}, fy {intr.fy:.6g}, cx {intr.cx:.6g}, cy {intr.cy:.6g}",
        f"    distortion: {dist}; field of view {intr.hfov_deg:.1f}° x {intr.vfov_deg:.1f}°",
    ]


def _describe_calib(cal: Any, path: Path) -> list[str]:
    if isinstance(cal, StereoRig):
        lines = [f"{path}: stereo rig ({'rectified' if cal.rectified else 'unrectified'})"]
        lines += _describe_intrinsics(cal.left, "left")
        lines += _describe_intrinsics(cal.right, "right")
        lines.append(f"  baseline: {cal.baseline_m:.6g} m; T (m): {np.array2string(np.asarray(cal.T), precision=6)}")
        if cal.rectified:
            lines.append(f"  doffs: {cal.doffs_px:.6g} px; depth = {cal.focal_px * cal.baseline_m:.6g} / (d + {cal.doffs_px:.6g}) m")
        return lines
    return [f"{path}: camera", *_describe_intrinsics(cal, "intrinsics")]
