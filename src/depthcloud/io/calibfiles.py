"""Calibration files (kept name): everything lives in :mod:`depthcloud.io.calib`, one module per format.

``from depthcloud.io.calibfiles import load_calibration`` and the other public names keep working.
"""

from depthcloud.io.calib import *  # noqa: F403 (the same public names, one list of them)
from depthcloud.io.calib import __all__  # noqa: F401
