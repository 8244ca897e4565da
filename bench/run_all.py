"""Run every benchmark in bench/ (files named bench_*.py), one process each, and list the results.

Usage: python bench/run_all.py [NAME ...]   (names without the bench_ prefix select a subset)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        wanted = {a.removeprefix("bench_").removesuffix(".py") for a in argv}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"--- {script.stem}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(script.stem)
    print(f"\nresults in {HERE / 'results'}")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
