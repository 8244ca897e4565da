"""Export every frame of any source as a cloud file, with the filters of ``serve``, on one core or a cluster.

* ``frames.py``: :func:`open_frames` turns a source argument (a folder, ``FILE.bag``, ``FILE.dcrec``,
  ``FILE.bin``, ``synthetic:…``, any open_source spec) into a :class:`FrameSet` that tasks read by range.
* ``run.py``: :class:`Exporter` plans tasks, runs them here or on dask.distributed, writes one file per
  frame and ``manifest.jsonl``, resumes.

``depthcloud export`` (cli/export.py) is a thin shell over these. docs/export.md is the guide.
"""

from depthcloud.export.frames import FrameSet, open_frames
from depthcloud.export.run import FORMATS, MANIFEST, Exporter, ExportSummary, read_manifest

__all__ = ["FORMATS", "MANIFEST", "ExportSummary", "Exporter", "FrameSet", "open_frames", "read_manifest"]
