"""Source commands: ``record`` (any source spec → a depthcloud recording) and ``sources`` (the specs).

Thin: parse options, open the source through :func:`depthcloud.sources.open_source`, record with
:func:`depthcloud.sources.replay.record_source`, print where the frames went.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from depthcloud.cli._common import check_output, check_suffix, console, err_console
from depthcloud.errors import ConfigError, InputError

# Sources that generate or play files can run faster than real time; live devices cannot.
_PACEABLE = ("synthetic", "replay", "bag", "mono")


def register(app: typer.Typer) -> None:
    @app.command()
    def record(
        source: Annotated[str, typer.Option("--source", "-s", help="Source spec, e.g. synthetic:640x480@30, bag:FILE, realsense.")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Recording FILE to write (.dcrec).", show_default=False)],
        frames: Annotated[int | None, typer.Option("--frames", "-n", help="Stop after this many frames (recordings: bag, replay, amiga FILE.bin: default all).")] = None,
        seconds: Annotated[float | None, typer.Option("--seconds", "-t", help="Stop after this many seconds.")] = None,
        fast: Annotated[bool, typer.Option("--fast", help="Synthetic, replay and bag: every frame as fast as possible, not in real time.")] = False,
        compression: Annotated[str | None, typer.Option("--compression", help="zstd (default when installed) or zlib.")] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output if it exists.")] = False,
    ) -> None:
        """Record frames from a source into a lossless depthcloud recording (play it with replay:PATH)."""
        from depthcloud.sources import is_recording, open_source
        from depthcloud.sources.replay import record_source

        check_suffix(output, (".dcrec",), "depthcloud recording")
        scheme = source.partition(":")[0]
        if frames is None and seconds is None and not is_recording(source):
            raise InputError(f"record: a {scheme!r} source does not end by itself; give --frames N or --seconds S")
        if frames is not None and frames < 1:
            raise InputError(f"--frames: expected an integer >= 1, got {frames}")
        if seconds is not None and not seconds > 0:
            raise InputError(f"--seconds: expected a positive number, got {seconds}")
        if compression is not None and compression not in ("zstd", "zlib"):
            raise InputError(f"--compression: expected zstd or zlib, got {compression!r}")
        options = {}
        if fast:
            if scheme not in _PACEABLE:
                raise ConfigError(f"--fast applies to {', '.join(_PACEABLE)} sources, not {scheme!r}")
            options["realtime"] = False
        src = open_source(source, **options)
        out = check_output(output, overwrite=overwrite)
        # The source logs what went wrong; here it is said once, as a `warning:` line, after the bar.
        quiet = logging.NullHandler()
        logging.getLogger("depthcloud.sources").addHandler(quiet)
        try:
            with Progress(
                TextColumn("recording {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=err_console, transient=True,
            ) as bar:
                task = bar.add_task(src.name, total=frames)
                stats = asyncio.run(
                    record_source(
                        src, out, frames=frames, seconds=seconds, overwrite=True, compression=compression,
                        on_frame=lambda _f: bar.advance(task),
                    )
                )
        finally:
            logging.getLogger("depthcloud.sources").removeHandler(quiet)
        problem = getattr(src, "problem", None)  # a replayed recording that was cut short
        if problem:
            err_console.print(f"warning: {problem}", markup=False, highlight=False, soft_wrap=True)
        fps = stats.frames / stats.seconds if stats.seconds > 0 else 0.0
        console.print(
            f"recorded {stats.frames} frames ({fps:.1f} fps; dropped {stats.dropped}, missed {stats.missed}) "
            f"→ {out} ({stats.bytes / 1e6:.2f} MB)",
            markup=False,
        )
        if stats.frames == 0:
            raise typer.Exit(1)

    @app.command("sources")
    def sources_() -> None:
        """List the source specs that --source takes."""
        from depthcloud.sources import known_schemes

        for scheme, syntax in known_schemes().items():
            console.print(f"{scheme:<10} {syntax}", markup=False)
