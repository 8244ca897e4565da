"""Helpers every CLI command shares: output-path safety, the console, progress, path checks, and the
one ``--camera`` option (any calibration file, auto-detected) with its old spellings as hidden aliases.

Commands are thin: they parse options, call the library and print where results went.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from depthcloud.errors import FormatError, InputError, OutputExistsError

T = TypeVar("T")



class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich would exit 1 here; the reader going away (`| head`) is not an error: depthcloud.cli.main
        # ends quietly with 0 when it sees this.
        raise BrokenPipeError("the reader of stdout went away")


console = _Console(stderr=False, highlight=False, soft_wrap=True)
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


# -- one --camera for every calibration input ----------------------------------------------------------

CAMERA_HELP = ("Calibration file, any format (auto-detected): depthcloud camera/rig YAML, OpenCV YAML/XML, ROS "
               "camera_info, Middlebury calib.txt, depthai/OAK JSON, Open3D JSON, COLMAP cameras.txt (FILE#ID picks a camera).")
CameraOpt = Annotated[Path, typer.Option("--camera", help=CAMERA_HELP, show_default=False)]
# The spellings commands used before `--camera`; they still work for a release, with a note on stderr.
OLD_CAMERA_NAMES = ("-i", "--intrinsics", "--calib", "--rig", "--middlebury", "--calibration")


def rewrite_camera_aliases(args: list[str], known: set[str]) -> list[str]:
    """``args`` with the old calibration spellings replaced by ``--camera`` (a command's own options in
    ``known`` are left alone); prints one deprecation note per old spelling used."""
    out: list[str] = []
    for i, a in enumerate(args):
        if a == "--":
            return out + args[i:]
        name, eq, value = a.partition("=") if a.startswith("--") else (a, "", "")
        if name in OLD_CAMERA_NAMES and name not in known:
            err_console.print(f"note: {name} is deprecated; use --camera (same meaning)", markup=False, highlight=False)
            a = "--camera" + (eq + value if eq else "")
        out.append(a)
    return out


class CameraCommand(typer.core.TyperCommand):
    """A command with a ``--camera`` option that also answers to the old spellings (hidden)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        known = {o for p in self.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
        return super().parse_args(ctx, rewrite_camera_aliases(list(args), known))


_CAMERA_ID = re.compile(r"^(.*)#(\d+)$")


def load_camera_file(path: Path, *, image_size: tuple[int, int] | None = None, rectified: bool = False) -> Any:
    """The calibration behind ``--camera``: Intrinsics or StereoRig. ``FILE#ID`` picks a COLMAP camera."""
    from depthcloud.io.calibfiles import load_calibration

    camera_id = None
    m = _CAMERA_ID.match(str(path))
    if m and not path.exists():
        path, camera_id = Path(m.group(1)), int(m.group(2))
    return load_calibration(check_input(path), image_size=image_size, camera_id=camera_id, rectified=rectified)


def single_camera(path: Path, *, image_size: tuple[int, int] | None = None) -> Any:
    """``--camera`` as one camera: a camera file, or the left camera of a rig."""
    from depthcloud.camera import StereoRig

    cal = load_camera_file(path, image_size=image_size)
    return cal.left if isinstance(cal, StereoRig) else cal


def check_frame(frame: str) -> str:
    """``--frame``: one of the named frames of depthcloud.cloud.FRAMES."""
    from depthcloud.cloud import FRAMES

    if frame not in FRAMES:
        raise InputError(f"--frame: expected one of {', '.join(FRAMES)}, got {frame!r}")
    return frame


# -- outputs whose kind the extension says ----------------------------------------------------------------


def check_suffix(path: Path, allowed: Iterable[str], what: str, *, option: str = "-o") -> Path:
    """Refuse an output whose extension does not say ``what`` it is (e.g. ``record -o a.ply``)."""
    exts = tuple(allowed)
    if path.suffix.lower() not in exts:
        raise InputError(f"{option}: {what} files end in {' '.join(exts)}, got {path.suffix or 'no extension'!r}",
                         path=path)
    return path


def output_kind(path: Path, cloud_exts: Iterable[str], *, many: bool) -> str:
    """Whether a cloud ``-o`` is a "file" or a "folder": a file when it has a cloud extension and one output is
    made; a folder when it is an existing folder or has no suffix. Anything else (``x.las``) is an
    error rather than a folder named like a file."""
    exts = tuple(cloud_exts)
    suffix = path.suffix.lower()
    if path.is_dir():
        return "folder"
    if suffix in exts:
        if many:
            raise InputError(f"-o {path}: several inputs need a folder, not a file name")
        return "file"
    if suffix:
        raise FormatError(f"-o: unknown point-cloud extension {suffix!r}; known: {' '.join(exts)} "
                          "(or a folder)", path=path)
    return "folder"
