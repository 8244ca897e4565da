"""The ``depthcloud`` command: a thin shell over the library.

Each command group lives in its own module and registers itself here. User errors
(:class:`~depthcloud.errors.DepthcloudError`) are caught once, printed as ``Type: message`` on one
line of stderr, and end with exit code 2; ``--debug`` shows the traceback instead. The grammar every
command speaks is written down in docs/cli.md (a test keeps the two in step).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

# Libraries log on their own (gRPC's C core, OpenCV's WARN lines) unless told not to before they load;
# the CLI speaks one line per error, so they are told here. A user's own setting wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import typer
import typer.core

from depthcloud.errors import DepthcloudError

_display_type = typer.core.TyperOption.display_type_rich


def _no_bool_placeholder(self: typer.core.TyperOption, ctx: Any) -> str | None:
    # A plain flag takes no value, so the help shows none (typer would print "<bool>").
    return None if self.is_flag else _display_type(self, ctx)


typer.core.TyperOption.display_type_rich = _no_bool_placeholder  # type: ignore[method-assign]

app = typer.Typer(
    name="depthcloud",
    help="Metric, coloured 3D point clouds from cameras and depth sensors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        from depthcloud import __version__

        typer.echo(f"depthcloud {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback behind an error (anywhere on the line; "
                                                        "or DEPTHCLOUD_DEBUG=1).")] = False,
) -> None:
    """Metric, coloured 3D point clouds from cameras and depth sensors.

    Errors print one line `Type: message` on stderr and exit 2; see docs/cli.md for the grammar.
    """


def _register() -> None:
    from depthcloud.cli import core

    core.register(app)
    for name in ("calib", "sources", "serve", "view", "amiga", "mono", "export", "mesh", "fuse"):
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
        _quiet_opencv()
        code = app(args=args, prog_name="depthcloud", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return 1
    except typer.TyperException as exc:  # click's usage errors (typer's vendored click): one line, exit 2
        return _usage_error(exc)
    except BrokenPipeError:
        # The reader went away (`depthcloud info x | head -1`): what it wanted it has; stop quietly.
        _silence_stdout()
        return 0
    except DepthcloudError as exc:
        if debug:
            raise
        print(f"{type(exc).__name__}: {_cli_names(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The system refused a file or socket operation (permission, full disk, port in use): the
        # user can act on its one-line message; a traceback would not help them.
        if debug:
            raise
        print(f"Error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 1
    return 0


# Library errors name the Python argument ("depth_scale: expected ..."); on the command line the user
# typed the option, so the message names that instead.
_OPTION_OF = {
    "depth_scale": "--depth-scale", "preset": "--preset", "board": "--board", "square_size_m": "--square-m",
    "alpha": "--alpha", "min_depth_m": "--min-depth", "max_depth_m": "--max-depth", "voxel_m": "--voxel",
    "decimation": "--decimation", "max_points": "--max-points", "every_n": "--every-n",
}


def _cli_names(message: str) -> str:
    name, sep, rest = message.partition(":")
    return f"{_OPTION_OF[name]}{sep}{rest}" if sep and name in _OPTION_OF else message


def _usage_error(exc: Exception) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `depthcloud` or a group alone
        print(ctx.get_help())
        return 2
    fmt = getattr(exc, "format_message", None)
    message = " ".join((fmt() if fmt else str(exc)).split())
    message = message[:1].lower() + message[1:].rstrip(".")
    where = f"; see: {ctx.command_path} --help" if ctx is not None else ""
    print(f"UsageError: {message}{where}", file=sys.stderr)
    return int(getattr(exc, "exit_code", 2) or 2)


def _quiet_opencv() -> None:
    """OpenCV imported before main() ran (tests, embedding) has read OPENCV_LOG_LEVEL already."""
    cv2 = sys.modules.get("cv2")
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)


def os_error_message(exc: OSError) -> str:
    """``path: reason`` for an OSError, without Python's ``[Errno N]`` prefix."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return ": ".join([*names, reason[:1].lower() + reason[1:]]) if names else reason


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's own flush at exit does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured in tests)
        pass


def _entry() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())
