"""The ``depthcloud`` command: a thin shell over the library.

Each command group lives in its own module and registers itself here. User errors
(:class:`~depthcloud.errors.DepthcloudError`) are caught once, printed as ``Type: message`` on one
line of stderr, and end with exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from depthcloud.errors import DepthcloudError

app = typer.Typer(
    name="depthcloud",
    help="Metric, coloured 3D point clouds from cameras and depth sensors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root() -> None:
    """Metric, coloured 3D point clouds from cameras and depth sensors.

    Add --debug anywhere to see a traceback instead of the one-line error.
    """


def _register() -> None:
    from depthcloud.cli import core

    core.register(app)
    for name in ("calib", "sources", "serve", "amiga", "fuse", "mesh"):
        try:
            module = __import__(f"depthcloud.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"depthcloud.cli.{name}":
                raise
            continue
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 interrupted, 2 user or system error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("DEPTHCLOUD_DEBUG"))
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="depthcloud", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except DepthcloudError as exc:
        if debug:
            raise
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The system refused a file or socket operation (permission, full disk, port in use): the
        # user can act on its one-line message; a traceback would not help them.
        if debug:
            raise
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    return 0


def _entry() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())
