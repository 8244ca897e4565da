"""Commands ``export`` (any source → one cloud file per frame, on many cores or a Dask cluster) and
``cloud`` (convert, filter, transform and merge cloud files).

Thin: parse options, build a :class:`depthcloud.export.Exporter` or call the cloud operations, show
progress and a summary. docs/export.md is the guide.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from depthcloud.cli._common import check_input, check_output, console, err_console
from depthcloud.cloud import FRAMES
from depthcloud.errors import InputError

_FORMATS = ("ply", "pcd", "las", "laz", "npz", "xyz", "mcap")
_HOLES = ("fill_from_left", "farthest", "nearest")


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """``A:B`` (B exclusive), ``A:`` or ``:B`` → (start, stop)."""
    if text is None:
        return 0, None
    a, colon, b = text.strip().partition(":")
    try:
        if not colon:
            raise ValueError
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else None
    except ValueError:
        raise InputError(f"--frames: expected A:B (frame numbers, B not included; A: or :B also work), got {text!r}") from None
    if start < 0 or (stop is not None and stop <= start):
        raise InputError(f"--frames: expected 0 <= A < B, got {text!r}")
    return start, stop


def parse_numbers(text: str, count: int, option: str, what: str) -> tuple[float, ...]:
    words = text.replace(",", " ").split()
    try:
        values = tuple(float(w) for w in words)
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(x) for x in values):
        raise InputError(f"{option}: expected {what}, got {text!r}")
    return values


def parse_crop(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    box = parse_numbers(text, 6, "--crop", "six numbers x0,y0,z0,x1,y1,z1 (metres)")
    if any(box[i] > box[i + 3] for i in range(3)):
        raise InputError(f"--crop: the first corner {box[:3]} must not exceed the second {box[3:]}")
    return box


def parse_transform(text: str) -> np.ndarray:
    """A 4×4 matrix from a text file of 16 numbers or from 16 numbers given inline (row by row)."""
    p = Path(text)
    source = p.read_text(encoding="utf-8", errors="replace") if p.is_file() else text
    values = parse_numbers(source, 16, "--transform", "a file of 16 numbers or 16 numbers (a 4x4 matrix, row by row)")
    return np.array(values, dtype=np.float64).reshape(4, 4)


class _Rate(ProgressColumn):
    """Frames per second, from rich's own speed estimate."""

    def render(self, task: Any) -> Text:
        return Text("" if task.speed is None else f"{task.speed:.1f} frames/s")


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        sources: Annotated[list[str], typer.Argument(help="Sources: a folder of depth images (or left/ right/ pairs), FILE.bag, FILE.dcrec, FILE.bin, synthetic:WxH, depth:|disparity:|stereo:FOLDER, or any source spec.", show_default=False)],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output FOLDER for the files (one per frame) and manifest.jsonl.")],
        fmt: Annotated[str, typer.Option("--format", "-f", help=f"File format: {', '.join(_FORMATS)}.")] = "ply",
        every: Annotated[int, typer.Option("--every", help="Keep every N-th frame.")] = 1,
        frames: Annotated[str | None, typer.Option("--frames", help="Frame range A:B (B not included; A: and :B work).")] = None,
        camera: Annotated[Path | None, typer.Option("--camera", help="Calibration file: the camera of depth images, the rig of disparity and stereo folders.")] = None,
        depth_scale: Annotated[float | None, typer.Option("--depth-scale", help="Metres per stored unit of 16-bit depth PNGs (default 0.001).")] = None,
        disparity_scale: Annotated[float | None, typer.Option("--disparity-scale", help="Disparity PNGs: stored value / scale = pixels.")] = None,
        preset: Annotated[str, typer.Option("--preset", help="Stereo folders: matcher preset fast, balanced or quality.")] = "balanced",
        decimation: Annotated[int, typer.Option("--decimation", help="Decimation magnitude 1..8 (1 = every pixel).")] = 1,
        temporal: Annotated[bool, typer.Option("--temporal", help="Temporal filter (frames then depend on the ones before: one task per source).")] = False,
        spatial: Annotated[bool, typer.Option("--spatial", help="Spatial edge-preserving filter.")] = False,
        holes: Annotated[str | None, typer.Option("--holes", help=f"Hole filling: {', '.join(_HOLES)}.")] = None,
        min_depth: Annotated[float, typer.Option("--min-depth", help="Nearest depth kept, metres.")] = 0.0,
        max_depth: Annotated[float, typer.Option("--max-depth", help="Farthest depth kept, metres.")] = math.inf,
        voxel: Annotated[float, typer.Option("--voxel", help="Voxel size in metres (0 = none).")] = 0.0,
        outliers: Annotated[bool, typer.Option("--outliers", help="Remove statistical outliers (20 neighbours, 2 sigma).")] = False,
        crop: Annotated[str | None, typer.Option("--crop", help="Keep the box x0,y0,z0,x1,y1,z1 (metres, in the output frame).")] = None,
        frame: Annotated[str, typer.Option("--frame", help=f"Frame of the written points: {', '.join(FRAMES)}.")] = "optical",
        workers: Annotated[int | None, typer.Option("--workers", help="Processes (default: one per CPU; 1 = in this process, no Dask).")] = None,
        scheduler: Annotated[str | None, typer.Option("--scheduler", help="Run on an existing Dask cluster, e.g. tcp://host:8786.")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Skip frames whose files match the manifest (checksum).")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Start over in a folder that holds an export.")] = False,
        ascii_: Annotated[bool, typer.Option("--ascii", help="ASCII PLY/PCD instead of binary.")] = False,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for a --scheduler to answer.")] = 10.0,
    ) -> None:
        """Export every frame of SOURCE(s) as a cloud file (same filters as `serve`), with a manifest."""
        from depthcloud.export import Exporter, open_frames
        from depthcloud.export.run import default_workers
        from depthcloud.pipeline import CloudOptions

        if fmt not in _FORMATS:
            raise InputError(f"--format: expected one of {', '.join(_FORMATS)}, got {fmt!r}")
        if every < 1:
            raise InputError(f"--every: expected an integer >= 1, got {every}")
        if workers is not None and scheduler is not None:
            raise InputError("--workers starts a local cluster and --scheduler uses an existing one: give one")
        if workers is not None and workers < 1:
            raise InputError(f"--workers: expected an integer >= 1, got {workers}")
        if holes is not None and holes not in _HOLES:
            raise InputError(f"--holes: expected one of {', '.join(_HOLES)}, got {holes!r}")
        start, stop = parse_frames(frames)
        options = CloudOptions(decimation=decimation, temporal=temporal, spatial=spatial, holes=holes,
                               min_depth_m=min_depth, max_depth_m=max_depth, voxel_m=voxel, frame=frame,
                               crop=parse_crop(crop), outliers=outliers)  # type: ignore[arg-type]
        sets = [open_frames(s, camera=camera, depth_scale=depth_scale, disparity_scale=disparity_scale, preset=preset,
                            min_depth_m=min_depth or None, max_depth_m=None if math.isinf(max_depth) else max_depth,
                            stop=stop) for s in sources]
        exporter = Exporter(sets, output, fmt=fmt, options=options, frames=(start, stop), every=every,
                            workers=workers or (1 if scheduler else default_workers()), scheduler=scheduler,
                            resume=resume, overwrite=overwrite, ascii=ascii_, timeout_s=timeout)
        where = (f"on {scheduler}" if scheduler else f"on {exporter.workers} worker processes" if exporter.workers > 1
                 else "in this process")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
                      TimeRemainingColumn(), console=err_console, transient=False) as bar:
            task = bar.add_task(f"export → {fmt}", total=exporter.total or None)
            summary = exporter.run(lambda rows: bar.advance(task, len(rows)))
        rate = summary.written / summary.seconds if summary.seconds > 0 else 0.0
        console.print(f"{summary.written} frame(s) → {output} ({fmt}, {summary.points} points, {rate:.1f} frames/s "
                      f"{where}); manifest {summary.manifest}", markup=False)
        if summary.resumed:
            console.print(f"{summary.resumed} frame(s) were already done (--resume)", markup=False)
        for rec in summary.recordings:
            console.print(f"recording of every frame, for Foxglove: {rec}", markup=False)
        if summary.empty:
            err_console.print(f"warning: {summary.empty} frame(s) have no points; check --min-depth/--max-depth "
                              "(metres), --crop and --depth-scale", markup=False)
        if summary.written == 0 and summary.failed == 0 and not summary.resumed:
            err_console.print("warning: no frame was exported; check the source and --frames", markup=False)
        if not summary.ok:
            err_console.print(f"{summary.failed} frame(s) failed:", markup=False)
            for source, index, error in summary.failures[:50]:
                err_console.print(f"  {source} frame {index}: {error}", markup=False)
            if summary.failed > 50:
                err_console.print(f"  … and {summary.failed - 50} more (see {summary.manifest})", markup=False)
            raise typer.Exit(1)

    @app.command()
    def cloud(
        inputs: Annotated[list[Path], typer.Argument(help="Cloud files: PLY, PCD, XYZ/CSV, NPZ, LAS/LAZ, MCAP.", show_default=False)],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output: a cloud FILE; a FOLDER for several inputs without --merge.")],
        voxel: Annotated[float, typer.Option("--voxel", help="Voxel size in metres (0 = none).")] = 0.0,
        crop: Annotated[str | None, typer.Option("--crop", help="Keep the box x0,y0,z0,x1,y1,z1 (metres, after --transform/--frame).")] = None,
        outliers: Annotated[bool, typer.Option("--outliers", help="Remove statistical outliers (20 neighbours, 2 sigma).")] = False,
        transform: Annotated[str | None, typer.Option("--transform", help="4x4 matrix: a file of 16 numbers, or 16 numbers 'a,b,…'.")] = None,
        frame: Annotated[str | None, typer.Option("--frame", help=f"Convert to this named frame: {', '.join(FRAMES)}.")] = None,
        merge: Annotated[bool, typer.Option("--merge", help="Merge all inputs (every cloud of an MCAP) into one output.")] = False,
        fmt: Annotated[str | None, typer.Option("--format", "-f", help="Folder outputs: file format (default: the input's).")] = None,
        ascii_: Annotated[bool, typer.Option("--ascii", help="ASCII PLY/PCD instead of binary.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")] = False,
    ) -> None:
        """Convert, filter (--voxel, --crop, --outliers), transform and merge point-cloud files."""
        from depthcloud.cloud import PointCloud
        from depthcloud.io import CLOUD_EXTENSIONS, read_cloud, write_cloud
        from depthcloud.io.mcap import read_mcap_clouds
        from depthcloud.pipeline import OUTLIER_NEIGHBORS, OUTLIER_STD_RATIO

        if transform is not None and frame is not None:
            raise InputError("--transform and --frame both move the points: give one")
        if frame is not None and frame not in FRAMES:
            raise InputError(f"--frame: expected one of {', '.join(FRAMES)}, got {frame!r}")
        if voxel < 0 or not math.isfinite(voxel):
            raise InputError(f"--voxel: expected a size in metres >= 0, got {voxel}")
        if fmt is not None and f".{fmt}" not in CLOUD_EXTENSIONS:
            raise InputError(f"--format: expected one of {', '.join(e[1:] for e in CLOUD_EXTENSIONS)}, got {fmt!r}")
        box = parse_crop(crop)
        T = None if transform is None else parse_transform(transform)
        for p in inputs:
            check_input(p)
            if p.suffix.lower() not in CLOUD_EXTENSIONS:
                raise InputError(f"unknown point-cloud extension {p.suffix or '(none)'!r}; known: {' '.join(CLOUD_EXTENSIONS)}",
                                 path=p)
        single = merge or len(inputs) == 1
        if single and output.suffix.lower() not in CLOUD_EXTENSIONS:
            raise InputError(f"-o {output}: expected a cloud file ({' '.join(CLOUD_EXTENSIONS)}) for one output")
        if not single and output.suffix.lower() in CLOUD_EXTENSIONS:
            raise InputError(f"-o {output}: several inputs without --merge need a folder, not a file name")
        if not single and len({p.stem for p in inputs}) != len(inputs):
            raise InputError("several inputs share a file name; their outputs would collide (use --merge?)")

        def moved(c: PointCloud, where: Path) -> PointCloud:
            if T is not None:
                return c.transform(T, frame="world")
            if frame is not None:
                if c.frame not in FRAMES:
                    raise InputError(f"the cloud's frame {c.frame!r} is not a named frame; cannot convert to {frame!r}",
                                     path=where)
                return c.to_frame(frame)
            return c

        def finished(c: PointCloud) -> PointCloud:
            if box is not None:
                c = c.crop(box[:3], box[3:])
            if voxel > 0:
                c = c.voxel_downsample(voxel)
            if outliers:
                c = c.remove_statistical_outliers(neighbors=OUTLIER_NEIGHBORS, std_ratio=OUTLIER_STD_RATIO)
            return c

        def report(c: PointCloud, out: Path, n_in: int) -> None:
            console.print(f"{out}: {len(c)} points (from {n_in}), frame {c.frame}", markup=False)
            if len(c) == 0:
                err_console.print(f"warning: {out} has no points; check --crop (metres, in the output frame)",
                                  markup=False)

        if single:
            out = check_output(output, overwrite=overwrite)
            if any(p.resolve() == out.resolve() for p in inputs):
                raise InputError("an input is also the output", path=out)
            clouds: list[PointCloud] = []
            for p in inputs:
                got = list(read_mcap_clouds(p)) if p.suffix.lower() == ".mcap" and merge else [read_cloud(p)]
                clouds += [moved(c, p) for c in got]
            if not clouds:
                raise InputError("the inputs hold no point cloud")
            merged = PointCloud.concatenate(clouds) if len(clouds) > 1 else clouds[0]
            result = finished(merged)
            write_cloud(out, result, overwrite=True, ascii=ascii_)
            report(result, out, len(merged))
            return
        if output.exists() and not output.is_dir():
            raise InputError("exists and is not a folder", path=output)
        outs = [check_output(output / f"{p.stem}{'.' + fmt if fmt else p.suffix.lower()}", overwrite=overwrite)
                for p in inputs]
        for p, out in zip(inputs, outs, strict=True):
            c = moved(read_cloud(p), p)
            result = finished(c)
            write_cloud(out, result, overwrite=True, ascii=ascii_)
            report(result, out, len(c))
