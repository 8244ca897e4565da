"""`python bench/stereo_accuracy.py` — the name issue 3 gives the stereo accuracy benchmark.

The benchmark itself is bench/bench_stereo_accuracy.py (the bench_ prefix is how `make bench` finds it).
"""

import sys

from bench_stereo_accuracy import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
