"""Core commands: depth, disparity, info, convert."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
