"""Command ``view``: cloud and mesh files shown in the browser viewer that ``serve`` offers at /view."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def can_open_browser() -> bool:
    """False under CI or without a display (a headless box has nobody to look at the page)."""
    import os
    import sys

    if os.environ.get("CI") or os.environ.get("DEPTHCLOUD_NO_BROWSER"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def register(app: typer.Typer) -> None:
    @app.command()
    def view(
        files: Annotated[list[Path], typer.Argument(help="Cloud files (.ply .pcd .xyz .csv .txt .npz, and what "
                                                         "else read_cloud knows) or meshes (PLY with faces).")],
        host: Annotated[str, typer.Option(help="Address to bind (default 127.0.0.1: this machine only).")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one.")] = 8787,
        token: Annotated[str | None, typer.Option(envvar="DEPTHCLOUD_TOKEN",
                                                  help="Require this token (the printed URL carries it).")] = None,
        no_browser: Annotated[bool, typer.Option("--no-browser", help="Only print the URL.")] = False,
    ) -> None:
        """Show point clouds and meshes in the browser: serves them to the viewer page and prints its URL."""
        import asyncio
        import contextlib
        import logging
        import signal
        import webbrowser

        from depthcloud.cli._common import check_input, console, err_console, progress
        from depthcloud.serve.viewfiles import FileViewServer, load_item

        paths = [check_input(f) for f in files]
        items = [load_item(p) for p in progress(paths, total=len(paths), label="reading")]
        for it in items:
            if len(it.cloud) == 0:
                err_console.print(f"warning: {it.name} holds no points", soft_wrap=True)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        logging.getLogger("depthcloud.view.websockets").setLevel(logging.WARNING)

        async def run() -> None:
            task = asyncio.current_task()
            if task is not None and hasattr(signal, "SIGTERM"):
                with contextlib.suppress(NotImplementedError):
                    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
            async with FileViewServer(items, host=host, port=port, token=token) as server:
                total = sum(len(it.cloud) for it in items)
                meshes = sum(it.faces is not None for it in items)
                console.print(f"showing {len(items)} file(s), {total} points"
                              + (f", {meshes} mesh(es)" if meshes else "") + f": {server.url} — Ctrl-C stops",
                              soft_wrap=True)
                if not no_browser and can_open_browser():
                    webbrowser.open(server.url)
                await server.serve_forever()

        try:
            asyncio.run(run())
        except (KeyboardInterrupt, asyncio.CancelledError):
            err_console.print("stopped")
