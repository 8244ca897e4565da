"""Core commands: depth, disparity, info, convert."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the depthcloud version."""
        from depthcloud import __version__

        typer.echo(__version__)
