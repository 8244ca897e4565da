"""Shared benchmark plumbing: timing, machine description, isolated peer runs, result files.

Every benchmark script is runnable alone (``python bench/NAME.py``) and writes
``bench/results/NAME.json`` and ``NAME.md``. Peers with their own thread pools (torch, Open3D,
OpenCV) are measured each in its own process via :func:`run_isolated`, because on 2 cores their
pools fight each other and ours.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def versions(*packages: str) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu_target() -> dict[str, Any]:
    """The CPU as numba compiles for it: LLVM's name for it, its SIMD features, and the target in use
    (``NUMBA_CPU_NAME=generic`` is the portable one every x86-64 runs)."""
    try:
        import numba
        from llvmlite import binding

        feats = binding.get_host_cpu_features()
        simd = sorted(f for f, on in feats.items() if on and f.startswith(("sse", "avx", "fma", "bmi")))
        return {"llvm_cpu": binding.get_host_cpu_name(), "cpu_features": " ".join(simd),
                "numba_target": getattr(numba.config, "CPU_NAME", None) or "host"}
    except Exception as exc:  # numba missing or an llvmlite without the queries
        return {"llvm_cpu": f"unknown ({exc})"}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        **_cpu_target(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def timeit(fn: Callable[[], Any], *, warmup: int = 2, min_time_s: float = 1.0, max_runs: int = 200) -> dict[str, float]:
    """Median, p10 and p90 wall time of ``fn`` in milliseconds over repeated runs."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time_s and len(times) < max_runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    arr = np.asarray(times)
    return {
        "median_ms": float(np.median(arr)),
        "p10_ms": float(np.percentile(arr, 10)),
        "p90_ms": float(np.percentile(arr, 90)),
        "runs": len(times),
    }


def run_isolated(script: Path | str, args: Sequence[str], *, timeout_s: float = 600, env: dict[str, str] | None = None) -> Any:
    """Run ``python script *args`` in a fresh process; it must print one JSON document last on stdout."""
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {"error": "no output"}


def write_results(name: str, data: dict[str, Any], table_md: str) -> Path:
    """Write bench/results/NAME.json (data + machine) and NAME.md (a human table); print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    m = doc["machine"]
    header = (f"# {name}\n\n{doc['when']} · {m['cpu']} (LLVM: {m.get('llvm_cpu')}; numba target {m.get('numba_target')}) · "
              f"{m['cores']} cores · Python {m['python']}\n\nSIMD: {m.get('cpu_features', '?')}\n\n")
    (RESULTS / f"{name}.md").write_text(header + table_md.rstrip() + "\n")
    print(header + table_md)
    return path


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(x: Any) -> str:
        if isinstance(x, float):
            return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
        return str(x)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
