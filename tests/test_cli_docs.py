"""docs/cli.md and the program agree: the commands, the common options and what they mean, the -o rule;
and every help text is readable (no `<bool>` placeholders, -o says FILE or FOLDER, --debug and
--version in the root help)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from depthcloud.cli import app, main

DOC = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")


def _commands() -> dict[str, Any]:
    def walk(cmd: Any, path: list[str]) -> Any:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), cmd

    return dict(walk(typer.main.get_command(app), []))


COMMANDS = _commands()


def _section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _table_rows(text: str) -> list[list[str]]:
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("|---")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in rows[1:]]


def _help(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


def test_every_command_is_documented_and_every_documented_command_exists() -> None:
    documented = {row[0].strip("`") for row in _table_rows(_section("Commands"))}
    assert documented == set(COMMANDS)


def _option(cmd: Any, name: str) -> Any:
    for p in cmd.params:
        if name in p.opts and not getattr(p, "hidden", False):
            return p
    return None


ROWS = _table_rows(_section("One name per concept").split("\n### ", 1)[0])


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_common_options_exist_with_their_meaning_on_every_listed_command(row: list[str]) -> None:
    option, _meaning, says, where = row
    names = [n for n in re.findall(r"--?[a-z][a-z-]*", option.split(" ")[0].strip("`"))]
    for command in [w.strip() for w in where.split(",")]:
        assert command in COMMANDS, f"docs/cli.md lists {command!r} for {option}"
        for name in names:
            param = _option(COMMANDS[command], name)
            assert param is not None, f"{command} has no {name}"
            assert says.lower() in (param.help or "").lower() or (
                name in ("-o", "--output") and "FOLDER" in (param.help or "")), f"{command} {name}: {param.help!r}"


def test_every_output_option_says_file_or_folder() -> None:
    for name, cmd in COMMANDS.items():
        param = _option(cmd, "-o") or _option(cmd, "--output")
        if param is not None:
            assert "FILE" in (param.help or "") or "FOLDER" in (param.help or ""), name


def test_no_bool_placeholders_in_any_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Regression (issue 14): typer showed `<bool>` after every flag."""
    for name in ["", *COMMANDS]:
        text = _help(name.split(), capsys)
        assert "<bool>" not in text, name


def test_root_help_shows_debug_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help([], capsys)
    assert "--debug" in text and "--version" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from depthcloud import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"depthcloud {__version__}"


def test_old_calibration_spellings_are_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("depth", "disparity", "stereo", "undistort", "amiga emulate"):
        text = _help(name.split(), capsys)
        assert "--camera" in text
        for old in ("--intrinsics", "--calib ", "--rig", "--middlebury", "--calibration"):
            assert old not in text, (name, old)
