"""Commands ``serve`` (the point-cloud server) and ``get`` (fetch one cloud into a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        source: Annotated[str | None, typer.Option(help="Source spec, e.g. synthetic:848x480@30, bag:FILE, realsense.")] = None,
        host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option(help="TCP port; 0 picks a free one (default 8787).")] = None,
        decimation: Annotated[int | None, typer.Option(help="Default decimation magnitude 1..8 (default 2).")] = None,
        temporal: Annotated[bool | None, typer.Option("--temporal/--no-temporal", help="Temporal filter.")] = None,
        spatial: Annotated[bool | None, typer.Option("--spatial/--no-spatial", help="Spatial filter.")] = None,
        min_depth: Annotated[float | None, typer.Option(help="Nearest depth kept, metres.")] = None,
        max_depth: Annotated[float | None, typer.Option(help="Farthest depth kept, metres.")] = None,
        voxel: Annotated[float | None, typer.Option(help="Voxel size in metres (0 = none).")] = None,
        frame: Annotated[str | None, typer.Option(help="Frame of the served clouds: optical, zup or opengl.")] = None,
        config: Annotated[Path | None, typer.Option(help="YAML or TOML config file (flags and DEPTHCLOUD_* win).")] = None,
        token: Annotated[str | None, typer.Option(help="Require this bearer token (header or ?token=).")] = None,
        max_clients: Annotated[int | None, typer.Option(help="Websocket connections at once (default 64).")] = None,
        max_message_mb: Annotated[float | None, typer.Option(help="Largest reply in MiB (default 256).")] = None,
        foxglove: Annotated[bool, typer.Option(
            "--foxglove", help="Also publish to Foxglove Studio over its WebSocket protocol (bound to --host).")] = False,
        foxglove_port: Annotated[int, typer.Option(help="Port of the Foxglove WebSocket server; 0 picks a free one.")] = 8765,
        insecure: Annotated[bool, typer.Option("--insecure", help="Allow serving without a token on a non-loopback --host, or with --token ''.")] = False,
    ) -> None:
        """Serve the newest point cloud over websocket (/ compatible, /v1 binary) and HTTP on one port.

        The browser viewer is at http://HOST:PORT/view (add ?token=TOKEN when --token is set).
        """
        import asyncio
        import contextlib
        import logging
        import signal

        from depthcloud.cli._common import console, err_console
        from depthcloud.serve.config import load_config
        from depthcloud.serve.foxglove_bridge import foxglove_bridge
        from depthcloud.serve.server import CloudServer

        flags: dict[str, Any] = {
            "source": source, "host": host, "port": port, "decimation": decimation, "temporal": temporal,
            "spatial": spatial, "min_depth_m": min_depth, "max_depth_m": max_depth, "voxel_m": voxel,
            "frame": frame, "token": token, "max_clients": max_clients, "max_message_mb": max_message_mb,
            "insecure": insecure or None,
        }
        cfg = load_config(flags, config_file=config)
        # The server reports through logging (source failures, a non-loopback bind); show it on stderr.
        # basicConfig leaves an application's (or pytest's) own logging setup alone.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        logging.getLogger("depthcloud.serve.websockets").setLevel(logging.WARNING)  # not every connection

        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                # Both signals stop the server the same way, also when it was started as a background
                # job whose SIGINT the shell set to "ignore" (Python then never raises KeyboardInterrupt).
                for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
                    if sig is not None:
                        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
                            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
            async with CloudServer(cfg) as server, foxglove_bridge(server, cfg.host, foxglove_port if foxglove else None) as bridge:
                http_url = server.url.replace("ws://", "http://", 1)
                console.print(f"serving {cfg.source} on {server.url}/ (compatible) and {server.url}/v1 (binary); "
                              f"{http_url}/health, /metrics, /cloud.ply — Ctrl-C stops", soft_wrap=True)
                console.print(f"viewer: {http_url}/view" + ("?token=…" if cfg.token else ""), soft_wrap=True)
                if bridge is not None:
                    console.print(f"foxglove: ws://{cfg.host}:{bridge.port} (topics /depthcloud/points, "
                                  "/depthcloud/color, /depthcloud/calibration)", soft_wrap=True)
                await server.serve_forever()

        try:
            asyncio.run(run())
        except (KeyboardInterrupt, asyncio.CancelledError):
            # Ctrl-C or SIGTERM is how a server is meant to stop: connections are closed, exit 0.
            err_console.print("stopped")

    @app.command()
    def get(
        url: Annotated[str, typer.Argument(help="Server address, e.g. ws://127.0.0.1:8787")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Cloud FILE to write (.ply .pcd .xyz .csv .npz).")],
        overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
        encoding: Annotated[str, typer.Option(help="Transfer encoding: f32, f16, i16mm or compact (depth image + JPEG).")] = "f32",
        compress: Annotated[str, typer.Option(help="Transfer compression: none, zstd or deflate.")] = "none",
        max_points: Annotated[int | None, typer.Option(help="At most this many points (even subsample).")] = None,
        decimation: Annotated[int | None, typer.Option(help="Decimation magnitude 1..8 (default: the server's).")] = None,
        token: Annotated[str | None, typer.Option(envvar="DEPTHCLOUD_TOKEN", help="Bearer token.")] = None,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 10.0,
    ) -> None:
        """Fetch the server's newest cloud and write it to a file."""
        from depthcloud.cli._common import check_output, console
        from depthcloud.errors import InputError
        from depthcloud.io import CLOUD_EXTENSIONS, write_cloud
        from depthcloud.serve.client import get_cloud

        if output.suffix.lower() not in CLOUD_EXTENSIONS:
            raise InputError(f"unknown point-cloud extension {output.suffix or '(none)'!r}; known: "
                             f"{' '.join(CLOUD_EXTENSIONS)}", path=output)
        path = check_output(output, overwrite=overwrite)
        cloud = get_cloud(url, encoding=encoding, compress=compress, max_points=max_points,
                          decimation=decimation, token=token, timeout_s=timeout)
        written = write_cloud(path, cloud, overwrite=overwrite)
        console.print(f"{len(cloud)} points ({cloud.frame} frame) → {written}", soft_wrap=True)
