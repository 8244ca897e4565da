"""docs/export.md works as written: its ```python and ```sh blocks run, in order, in an empty folder
(```bash blocks, the cluster recipe, need other machines and are not run)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from depthcloud.cli import main


def test_every_example_of_the_export_guide_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("laspy")
    pytest.importorskip("foxglove")
    guide = Path(__file__).resolve().parents[1] / "docs" / "export.md"
    blocks = re.findall(r"```(python|sh)\n(.*?)```", guide.read_text(), re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, (kind, code) in enumerate(blocks):
        if kind == "python":
            exec(compile(code, f"export.md block {i}", "exec"), namespace)
            continue
        for line in code.strip().splitlines():
            args = shlex.split(line)
            assert args[0] == "depthcloud"
            assert main(args[1:]) == 0, f"export.md: {line}\n{capsys.readouterr().err}"
    assert os.path.isfile("merged_zup.mcap") and os.path.isfile("py_clouds/manifest.jsonl")
