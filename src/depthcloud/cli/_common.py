"""Helpers every CLI command shares: output-path safety, the console, progress, path checks.

Commands are thin: they parse options, call the library and print where results went.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from depthcloud.errors import InputError, OutputExistsError

T = TypeVar("T")

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def check_output(path: Path | str, *, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless ``overwrite``; make the parent folder."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError("exists; pass --overwrite to replace it", path=p)
    if p.exists() and p.is_dir():
        raise InputError("is a folder, expected a file path", path=p)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def check_input(path: Path | str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=p)
    if p.is_dir():
        raise InputError("is a folder, expected a file", path=p)
    return p


def progress(items: Iterable[T], *, total: int, label: str) -> Iterator[T]:
    """Yield ``items`` with a progress bar when there is more than one."""
    if total <= 1:
        yield from items
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=False,
    ) as bar:
        task = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(task)
