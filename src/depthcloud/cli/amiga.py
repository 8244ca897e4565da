"""``depthcloud amiga``: point clouds from a farm-ng Amiga's OAK camera service, an emulator of that
service, and recordings of it (farm-ng event logs)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from depthcloud.cli._checks import check_first_frame
from depthcloud.cli._common import (
    CameraCommand,
    check_frame,
    check_input,
    check_output,
    check_suffix,
    console,
    err_console,
)
from depthcloud.errors import InputError

ConfigOpt = Annotated[Path, typer.Option("--service-config", help="farm-ng service_config.json of the OAK service.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the service and for each frame.")]
EveryOpt = Annotated[int | None, typer.Option("--every-n", help="Take every n-th frame (default: the config's, else 1).")]
NameOpt = Annotated[str | None, typer.Option("--service-name", help="Which service of a multi-service config.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")]


@dataclass
class _Progress:
    frames: int = 0
    points: int = 0
    written: list[Path] = field(default_factory=list)
    stats: Any = None


def _run(coro: Any, progress: _Progress, what: str) -> bool:
    """Run ``coro``; True when it finished, False when Ctrl-C stopped it (the connection is closed)."""
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        err_console.print(f"stopped by Ctrl-C after {progress.frames} {what}")
        return False
    return True


def _report_corrupt(progress: _Progress) -> None:
    stats = progress.stats
    if stats is not None and stats.corrupt:
        err_console.print(f"skipped {stats.corrupt} corrupt frame(s): " + "; ".join(stats.problems[-3:]))


async def _pointcloud(
    config: Any, progress: _Progress, *, out: Path, every_n: int | None, frames: int | None, timeout_s: float,
    save_disparity: bool, save_pointcloud: bool, min_depth_m: float, max_depth_m: float, overwrite: bool,
    align_socket: int, frame: str = "optical",
) -> None:
    from depthcloud.amiga.client import DisparityModels, OakClient
    from depthcloud.io import write_cloud
    from depthcloud.viz import colorize, save_png, with_colorbar

    async with OakClient(config, timeout_s=timeout_s) as client:
        progress.stats = client.stats
        models = DisparityModels(await client.calibration(), align_socket=align_socket)
        async for item in client.disparity(every_n=every_n):
            model = models(item.disparity)
            if models.new:
                h, w = item.disparity.shape
                console.print(
                    f"{config.name}: {w}x{h} disparity, f = {model.focal_px:.2f} px, "
                    f"B = {model.baseline_m * 100:.3f} cm, keeping {min_depth_m:g}–{max_depth_m:g} m"
                )
            cloud = model.cloud(item.disparity, min_depth_m=min_depth_m, max_depth_m=max_depth_m, stamp=item.stamp)
            if progress.frames == 0:
                check_first_frame(cloud, model.depth(item.disparity), what=config.name, min_depth_m=min_depth_m,
                                  max_depth_m=max_depth_m)
            line = f"frame {item.sequence_num}: {len(cloud.points)} points"
            if save_disparity:
                # Colours span the disparities of the kept depth range, the same for every frame.
                fb = model.focal_px * model.baseline_m
                vmin = max(1.0, fb / max_depth_m)
                vmax = min(255.0, fb / min_depth_m) if min_depth_m > 0 else 255.0
                png = check_output(out / f"disparity_{item.sequence_num:06d}.png", overwrite=overwrite)
                vmax = max(vmax, vmin + 1)
                picture = with_colorbar(colorize(item.disparity, vmin=vmin, vmax=vmax), vmin=vmin, vmax=vmax, label="px")
                save_png(png, picture, overwrite=overwrite)
                progress.written.append(png)
                line += f", {png.name}"
            if save_pointcloud:
                ply = check_output(out / f"cloud_{item.sequence_num:06d}.ply", overwrite=overwrite)
                write_cloud(ply, cloud if frame == "optical" else cloud.to_frame(frame), overwrite=overwrite)
                progress.written.append(ply)
                line += f", {ply.name}"
            console.print(line)
            progress.frames += 1
            progress.points += len(cloud.points)
            if frames is not None and progress.frames >= frames:
                return


def _check_depths(min_depth: float, max_depth: float) -> None:
    if not (math.isfinite(min_depth) and min_depth >= 0):
        raise InputError(f"--min-depth: expected a number >= 0, got {min_depth}")
    if not max_depth > min_depth:
        raise InputError(f"--max-depth {max_depth} must exceed --min-depth {min_depth}")


def register(app: typer.Typer) -> None:
    amiga = typer.Typer(
        name="amiga", no_args_is_help=True,
        help="farm-ng Amiga OAK camera service: point clouds, an emulator, recordings (event logs).",
    )
    app.add_typer(amiga)

    @amiga.command("pointcloud")
    def pointcloud(
        service_config: ConfigOpt,
        output: Annotated[Path, typer.Option("-o", "--output", help="FOLDER for saved images and clouds (many outputs).")] = Path("amiga-out"),
        save_disparity: Annotated[bool, typer.Option("--save-disparity", help="Save colourised disparity PNGs.")] = False,
        save_pointcloud: Annotated[bool, typer.Option("--save-pointcloud", help="Save binary PLY clouds.")] = False,
        every_n: EveryOpt = None,
        frames: Annotated[int | None, typer.Option("--frames", help="Stop after this many frames (default: run until Ctrl-C).")] = None,
        timeout: TimeoutOpt = 5.0,
        min_depth: Annotated[float, typer.Option("--min-depth", help="Nearest kept depth, metres.")] = 0.2,
        max_depth: Annotated[float, typer.Option("--max-depth", help="Farthest kept depth, metres.")] = 7.5,
        align_socket: Annotated[int, typer.Option("--align-socket", help="Camera socket the disparity is aligned to.")] = 2,
        frame: Annotated[str, typer.Option("--frame", help="Frame of the written points: optical, zup, opengl.")] = "optical",
        service_name: NameOpt = None,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Disparity → depth (Z = f·B/d) → points, as farm-ng's camera pointcloud example, done right."""
        from depthcloud.amiga.client import read_service_config

        check_frame(frame)
        config = read_service_config(service_config, name=service_name)
        if frames is not None and frames < 1:
            raise InputError(f"--frames: expected a number >= 1, got {frames}")
        if every_n is not None and every_n < 1:
            raise InputError(f"--every-n: expected a number >= 1, got {every_n}")
        _check_depths(min_depth, max_depth)
        if (save_disparity or save_pointcloud) and output.exists() and not output.is_dir():
            raise InputError("exists and is not a folder", path=output)
        progress = _Progress()
        _run(_pointcloud(
            config, progress, out=output, every_n=every_n, frames=frames, timeout_s=timeout,
            save_disparity=save_disparity, save_pointcloud=save_pointcloud, min_depth_m=min_depth,
            max_depth_m=max_depth, overwrite=overwrite, align_socket=align_socket, frame=frame,
        ), progress, "frames")
        _report_corrupt(progress)
        where = f"; {len(progress.written)} files in {output}" if progress.written else ""
        console.print(f"{progress.frames} frames, {progress.points} points{where}")

    @amiga.command("emulate", cls=CameraCommand)
    def emulate(
        name: Annotated[str, typer.Option("--name", help="Service name: oak0 (older layout) or oak/1 (AmigaOS 2.3).")] = "oak0",
        port: Annotated[int, typer.Option("--port", help="Port to listen on (0 = any free one).")] = 50011,
        host: Annotated[str, typer.Option("--host", help="Address to bind; loopback unless you say otherwise.")] = "127.0.0.1",
        recording: Annotated[Path | None, typer.Option("--from", help="Replay this event log (.bin).")] = None,
        calibration: Annotated[Path | None, typer.Option("--camera", help="Calibration file to serve: a depthai/OAK calibration JSON (or farm-ng OakCalibration JSON).")] = None,
        fps: Annotated[float, typer.Option("--fps", help="Frames per second published.")] = 10.0,
        frames: Annotated[int | None, typer.Option("--frames", help="Stop after publishing this many (default: until Ctrl-C).")] = None,
        encoding: Annotated[str, typer.Option("--encoding", help="Synthetic disparity encoding: jpeg, png or raw.")] = "jpeg",
        loop: Annotated[bool, typer.Option("--loop", help="Replay the recording over and over.")] = False,
    ) -> None:
        """Serve /calibration and /disparity like an OAK camera service, from planes or a recording."""
        from itertools import islice

        from depthcloud.amiga.emulator import OakEmulator, planes_scene, recording_scene
        from depthcloud.amiga.messages import read_oak_calibration

        if recording is None and calibration is None:
            raise InputError("give --camera FILE (a depthai calibration JSON) or --from RECORDING.bin")
        if frames is not None and frames < 1:
            raise InputError(f"--frames: expected a number >= 1, got {frames}")
        calib = None if calibration is None else read_oak_calibration(check_input(calibration))
        if recording is not None:
            rec = recording_scene(check_input(recording))
            if rec.problem:
                err_console.print(f"{recording}: {rec.problem}")
            for skipped in rec.skipped:
                err_console.print(f"{recording}: skipped {skipped}")
            calib = calib or rec.calibration
            if calib is None:
                raise InputError("holds no OakCalibration; add --camera FILE", path=recording)
            if not rec.frames:
                raise InputError("holds no OakFrame messages to replay", path=recording)
            items: Any = rec.frames if frames is None else list(islice(rec.frames, frames))
        else:
            scene = planes_scene(calib, encoding=encoding)
            items = scene if frames is None else list(islice(scene, frames))
        emu = OakEmulator(calib, items, name=name, host=host, port=port, fps=fps, loop=loop and recording is not None,
                          wait_for_client=recording is not None)
        progress = _Progress()

        async def serve() -> None:
            async with emu:
                console.print(
                    f"OAK emulator {name!r} on {emu.host}:{emu.port}: {emu.path('calibration')}, "
                    f"{emu.path('disparity')} at {fps:g} fps" + (f" from {recording}" if recording else "")
                )
                try:
                    await emu.done()
                finally:
                    progress.frames = emu.published

        _run(serve(), progress, "messages")
        console.print(f"published {emu.published} messages, answered {emu.requests} requests")

    @amiga.command("record")
    def record(
        service_config: ConfigOpt,
        output: Annotated[Path, typer.Option("-o", "--output", help="Event log FILE to write (.bin).", show_default=False)],
        frames: Annotated[int, typer.Option("--frames", help="Messages of the first stream to record.")] = 100,
        stream: Annotated[list[str] | None, typer.Option("--stream", help="Stream to record (repeat; default disparity).")] = None,
        every_n: Annotated[int, typer.Option("--every-n", help="Take every n-th message.")] = 1,
        timeout: TimeoutOpt = 5.0,
        service_name: NameOpt = None,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Record the service's calibration and streams into a farm-ng event log."""
        from depthcloud.amiga.client import OakClient, read_service_config
        from depthcloud.amiga.client import record as record_log

        config = read_service_config(service_config, name=service_name)
        if frames < 1:
            raise InputError(f"--frames: expected a number >= 1, got {frames}")
        if every_n < 1:
            raise InputError(f"--every-n: expected a number >= 1, got {every_n}")
        out = check_output(check_suffix(output, (".bin",), "farm-ng event log"), overwrite=overwrite)
        streams = tuple(stream or ("disparity",))
        progress = _Progress()
        result: dict[str, Any] = {}

        async def go() -> None:
            async with OakClient(config, timeout_s=timeout) as client:
                result["summary"] = await record_log(client, out, frames=frames, streams=streams, every_n=every_n,
                                                     overwrite=True)

        _run(go(), progress, "messages")
        summary = result.get("summary")
        counts = ", ".join(f"{k} {n}" for k, n in summary.counts.items()) if summary else "interrupted"
        console.print(f"wrote {out} ({counts})")
