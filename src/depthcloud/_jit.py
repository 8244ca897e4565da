"""One switch for the compiled kernels of every module.

numba is a core dependency. ``DEPTHCLOUD_NO_NUMBA=1`` in the environment, or an LLVM that cannot
load, makes every module take its numpy path instead; the tests check both paths give the same
results. Modules import ``HAVE_NUMBA`` from here and ``numba`` itself only when it is true.
"""

from __future__ import annotations

import os

try:
    if os.environ.get("DEPTHCLOUD_NO_NUMBA"):
        raise ImportError("disabled by DEPTHCLOUD_NO_NUMBA")
    import numba  # noqa: F401  (imported to learn whether it loads)

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised by the DEPTHCLOUD_NO_NUMBA tests
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA"]
