"""The layering of docs/architecture.md holds: every import inside the package points downhill.

Each module belongs to one layer; a module may import its own layer and those below, never above —
imports inside functions count too, since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "depthcloud"

# Lowest first; a module's layer is the first rule its dotted name (relative to depthcloud) matches.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("values", ("errors", "_validate", "_jit", "camera", "frame", "cloud")),
    ("maths", ("geometry", "filters", "viz", "plausibility")),
    ("files", ("io",)),
    ("workflows", ("calibrate", "stereo", "pipeline", "surface", "mono")),
    ("live", ("sources", "amiga", "serve", "export")),
    ("shell", ("cli", "__main__")),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    head = module.split(".")[0]
    for name, prefixes in LAYERS:
        if head in prefixes:
            return name
    return None


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if parts:  # the package's own __init__ is the public API: it re-exports every layer
            out.append((".".join(parts), path))
    return out


def imported(path: Path, module: str) -> set[str]:
    """depthcloud modules imported anywhere in ``path`` (relative to the package)."""
    found: set[str] = set()
    pkg = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.removeprefix("depthcloud.") for a in node.names if a.name.startswith("depthcloud.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("depthcloud."):
                base = node.module.removeprefix("depthcloud.")
            elif node.module == "depthcloud":
                base = ""
            else:
                continue
            found |= {base or a.name for a in node.names}
    return {m for m in found if m}


def test_every_module_has_a_layer():
    assert [m for m, _ in modules() if layer_of(m) is None] == []


@pytest.mark.parametrize("module,path", modules(), ids=[m for m, _ in modules()])
def test_imports_point_downhill(module, path):
    mine = RANK[layer_of(module)]  # type: ignore[index]
    uphill = sorted(m for m in imported(path, module) if layer_of(m) is not None and RANK[layer_of(m)] > mine)  # type: ignore[index]
    assert uphill == [], f"{module} ({layer_of(module)}) imports {uphill} from a higher layer"
