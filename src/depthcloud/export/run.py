"""The export: frame sets → the shared cloud chain → one file per frame, a manifest, on one core or many.

Shape of the work:

* :class:`Exporter` checks the output folder, reads an earlier manifest when resuming, and cuts each
  frame set into :class:`Task` ranges. A task carries only the part of its set that it reads (its
  files, its record offsets), the cloud options and the frames to leave alone, so each is pickled
  once, when it is submitted; the pixels are read where the task runs.
* :func:`iter_task` reads a range, runs :class:`depthcloud.pipeline.CloudPipeline` (the chain ``serve``
  runs), encodes the file in memory, hashes it and writes it with a temporary file and a rename:
  an interrupted export never leaves half a file under a final name. A frame that fails becomes an
  error row; the task goes on.
* ``workers=1`` runs the tasks in this process; more workers run them on a local dask.distributed
  cluster of spawned processes, and ``scheduler=ADDRESS`` on an existing cluster. At most two tasks
  per worker are in flight, so memory does not grow with the number of frames.
* The manifest (``manifest.jsonl``: one JSON object per frame) is written by this process as results
  come in, one flushed line at a time; ``resume`` skips frames whose file still has the checksum the
  manifest gives.

Random-access sets are cut into ranges of up to 32 frames; sequential ones (bag, event logs, other
specs) into one range per worker, which each play the source from its start and skip to their range;
with the temporal filter (whose output depends on the frames before) every source is one range.
This module must not import the CLI.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthcloud.errors import DepthcloudError, InputError, OutputExistsError
from depthcloud.export.frames import FrameSet
from depthcloud.frame import Frame
from depthcloud.io._files import write_atomic
from depthcloud.pipeline import CloudOptions, CloudPipeline

__all__ = ["FORMATS", "MANIFEST", "ExportSummary", "Exporter", "Task", "iter_task", "read_manifest", "run_task"]

FORMATS = ("ply", "pcd", "las", "laz", "npz", "xyz", "mcap")
MANIFEST = "manifest.jsonl"
_CHUNK = 32  # frames per task at most (random-access sets): small enough to balance, large to amortise
_TEMP = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")  # what io._files.write_atomic names its temporary files
_MAX_LISTED = 1000  # failures kept for the summary (all are in the manifest)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_FRAME_FILE = re.compile(r"^[0-9]{6,}_-?[0-9]+\.[0-9]{6}\.[a-z]+$")  # what file_name() makes


def _frame_files(out: Path) -> bool:
    """Whether ``out`` (or a subfolder of it, one per source) holds files named like frame files."""
    if not out.is_dir():
        return False
    for folder in [out, *(p for p in out.iterdir() if p.is_dir())]:
        if any(_FRAME_FILE.match(p.name) for p in folder.iterdir()):
            return True
    return False


@dataclass(frozen=True)
class Settings:
    """What every task shares: the output folder, format and cloud options. ``replace``: a task may
    replace a frame file of its own name (True for every export: the Exporter refuses a folder with
    frame files of an earlier export unless resuming or overwriting, and a task run again after its
    worker died must be able to finish what that worker began)."""

    out: str
    fmt: str
    options: CloudOptions
    ascii: bool = False
    replace: bool = False


@dataclass(frozen=True)
class Task:
    """Frames start ≤ index < stop of one set (stop None = to its end), every ``every``-th counted from
    ``origin``, except those in ``skip`` (already done), written under ``subdir``."""

    frames: FrameSet
    subdir: str
    start: int
    stop: int | None
    settings: Settings
    every: int = 1
    origin: int = 0
    skip: frozenset[int] = frozenset()

    def wanted(self, index: int) -> bool:
        return (index - self.origin) % self.every == 0 and index not in self.skip


def _row(task: Task, index: int, **values: Any) -> dict[str, Any]:
    row = {"source": task.frames.name, "frame": index, "seq": None, "stamp": None, "points": None, "file": None,
           "sha256": None, "status": "ok", "error": None}
    row.update(values)
    return row


def _encode(cloud: Any, frame: Frame, settings: Settings) -> bytes:
    if settings.fmt == "mcap":
        from depthcloud.io.mcap import encode_mcap

        return encode_mcap(cloud, color=frame.color, intrinsics=frame.intrinsics)
    from depthcloud.io.clouds import encode_cloud

    return encode_cloud(cloud, "." + settings.fmt, ascii=settings.ascii)


def file_name(index: int, stamp: float, fmt: str) -> str:
    """``000042_1534.123456.ply``: the frame's index, then its stamp in seconds."""
    return f"{index:06d}_{stamp:.6f}.{fmt}"


def iter_task(task: Task) -> Iterator[dict[str, Any]]:
    """Run one task; yields a manifest row per frame it was asked for (ok or error), as each is done.
    A source that cannot be read at all (a file gone since the plan) is one error row for the range."""
    s = task.settings
    pipeline = CloudPipeline(s.options)
    folder = Path(s.out) / task.subdir if task.subdir else Path(s.out)
    last = task.start - 1
    try:
        for index, item in task.frames.read(task.start, task.stop):
            last = index
            wanted = task.wanted(index)
            if not wanted and not pipeline.stateful:
                continue
            if isinstance(item, BaseException):
                if wanted:
                    yield _row(task, index, status="error", error=f"{type(item).__name__}: {item}")
                continue
            try:
                prepared = pipeline.prepare(item)  # stateful filters see every frame, in order
                if not wanted:
                    continue
                cloud = pipeline.cloud(prepared)
                data = _encode(cloud, prepared, s)
                name = file_name(index, float(item.stamp), s.fmt)
                write_atomic(folder / name, data, overwrite=s.replace)
            except Exception as exc:  # a bad frame, or a library failing on one, must not lose the others
                yield _row(task, index, seq=item.seq, stamp=item.stamp, status="error",
                           error=f"{type(exc).__name__}: {exc}")
                continue
            rel = f"{task.subdir}/{name}" if task.subdir else name
            yield _row(task, index, seq=int(item.seq), stamp=float(item.stamp), points=len(cloud), file=rel,
                       sha256=hashlib.sha256(data).hexdigest())
    except DepthcloudError as exc:
        yield _row(task, last + 1, status="error", error=f"{type(exc).__name__}: {exc} (frames from {last + 1}"
                   f"{'' if task.stop is None else f' to {task.stop - 1}'} not exported)")


def run_task(task: Task) -> list[dict[str, Any]]:
    """All rows of one task: what a Dask worker runs. A worker is one of several processes sharing
    the machine's cores, so the compiled kernels run on one thread here (numba's parallel loops
    would otherwise start a thread per core in every worker and oversubscribe the cores)."""
    import cv2

    from depthcloud._jit import HAVE_NUMBA

    if HAVE_NUMBA:
        import numba

        numba.set_num_threads(1)  # for this thread only: the worker's task thread
    cv2.setNumThreads(1)  # OpenCV's own pool (image decoding, stereo) likewise
    keep_heap()
    return list(iter_task(task))


def keep_heap() -> None:
    """Let this process's malloc keep freed frame-sized arrays for the next frame (glibc only).

    A dask nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536``, which also stops glibc from
    adapting its mmap threshold: every array of a frame (megabytes) is then mapped and unmapped
    again, and the page faults doubled the CPU time per frame (bench/bench_export.py). Here arrays
    under 32 MiB come from the heap, and the heap returns memory to the system once 256 MiB are free;
    memory still does not grow with the number of frames.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library: leave it be
        return
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)


# -- the manifest -----------------------------------------------------------------------------------------


def read_manifest(folder: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The newest row per (source, frame) of a folder's manifest; a cut last line is ignored."""
    path = Path(folder) / MANIFEST
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.is_file():
        return rows
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
                rows[(str(row["source"]), int(row["frame"]))] = row
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a killed export
    return rows


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def done_frames(folder: str | Path) -> dict[str, set[int]]:
    """Per source, the frames whose output file exists with the checksum its manifest row gives."""
    done: dict[str, set[int]] = {}
    for (source, frame), row in read_manifest(folder).items():
        whole = row.get("status") == "ok" and row.get("file") and row.get("sha256")
        if whole and _sha256(Path(folder) / row["file"]) == row["sha256"]:
            done.setdefault(source, set()).add(frame)
    return done


# -- the export ----------------------------------------------------------------------------------------------


@dataclass
class ExportSummary:
    """What an export did. ``failures``: (source, frame, error), the first 1000; ``failed`` counts all."""

    written: int = 0
    failed: int = 0
    resumed: int = 0
    empty: int = 0
    points: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, int, str]] = field(default_factory=list)
    manifest: Path | None = None
    recordings: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0


class Exporter:
    """An export of frame sets into ``out`` (see the module docstring); :attr:`total` is the number
    of frames it expects to handle (an estimate for sequential sources), :meth:`run` does it.

    fmt: one of ``FORMATS``; options: the cloud chain; frames: (start, stop) of the index range
    (stop None = to the end); every: keep every n-th frame of it; workers: processes (1 = here, no Dask);
    scheduler: address of a running dask.distributed scheduler (instead of workers); resume: skip frames
    already exported (manifest + checksum); overwrite: start over, replacing files.
    """

    def __init__(
        self,
        sets: Iterable[FrameSet],
        out: str | Path,
        *,
        fmt: str = "ply",
        options: CloudOptions | None = None,
        frames: tuple[int, int | None] = (0, None),
        every: int = 1,
        workers: int = 1,
        scheduler: str | None = None,
        resume: bool = False,
        overwrite: bool = False,
        ascii: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self.sets = list(sets)
        if not self.sets:
            raise InputError("export: expected at least one source")
        if fmt not in FORMATS:
            raise InputError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        self.options = options or CloudOptions()
        start, stop = frames
        if start < 0 or (stop is not None and stop <= start):
            raise InputError(f"frames: expected 0 <= A < B, got {start}:{'' if stop is None else stop}")
        if every < 1:
            raise InputError(f"every: expected an integer >= 1, got {every}")
        if workers < 1:
            raise InputError(f"workers: expected an integer >= 1, got {workers}")
        if resume and overwrite:
            raise InputError("--resume keeps what an earlier export wrote and --overwrite replaces it: give one")
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise InputError(f"sources: two have the same name ({', '.join(sorted({n for n in names if names.count(n) > 1}))}); "
                             "their files would collide")
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise InputError("exists and is not a folder; -o names the folder for the frames", path=self.out)
        if not (resume or overwrite) and ((self.out / MANIFEST).exists() or _frame_files(self.out)):
            raise OutputExistsError(f"holds an earlier export ({MANIFEST} or frame files); pass --resume to finish "
                                    "it or --overwrite to start over", path=self.out)
        self.fmt, self.start, self.stop, self.every = fmt, start, stop, every
        self.workers, self.scheduler, self.timeout_s = workers, scheduler, timeout_s
        self.resume, self.overwrite, self.ascii = resume, overwrite, ascii
        self.done = done_frames(self.out) if resume else {}
        self.total = sum(self._selected(s) for s in self.sets)

    def _end(self, fs: FrameSet) -> int | None:
        n = fs.count
        if self.stop is not None:
            return self.stop if n is None or not fs.exact else min(self.stop, n)
        return n

    def _selected(self, fs: FrameSet) -> int:
        """Frames of ``fs`` this export will write (estimate for sequential sets; 0 if unknown)."""
        end = self._end(fs)
        if end is None or end <= self.start:
            return 0
        picked = range(self.start, end, self.every)
        return len(picked) - len(self.done.get(fs.name, set()).intersection(picked))

    def tasks(self, workers: int) -> Iterator[Task]:
        settings = Settings(str(self.out), self.fmt, self.options, self.ascii, replace=True)
        for fs in self.sets:
            subdir = fs.name if len(self.sets) > 1 else ""
            done = self.done.get(fs.name, set())
            end = self._end(fs)
            bounds: list[tuple[int, int | None]]
            if self.options.temporal:
                bounds = [(self.start, self.stop)]
            elif fs.seekable and end is not None:
                n = max(0, end - self.start)
                size = max(1, min(_CHUNK, math.ceil(n / max(1, 4 * workers))))
                size = max(size, self.every)  # whole strides per task
                bounds = [(a, min(a + size, end)) for a in range(self.start, end, size)]
            elif workers > 1 and end is not None and end - self.start >= 2 * workers:
                cuts = [self.start + round(k * (end - self.start) / workers) for k in range(workers + 1)]
                bounds = list(itertools.pairwise(cuts))
                bounds[-1] = (bounds[-1][0], self.stop)  # the estimate may be short: the last range runs on
            else:
                bounds = [(self.start, self.stop)]
            for a, b in bounds:
                skip = frozenset(i for i in done if i >= a and (b is None or i < b))
                yield Task(fs.part(a, b), subdir, a, b, settings, self.every, self.start, skip)

    def _clean(self) -> None:
        """Remove temporary files a killed export left behind (never a file under a final name)."""
        if not self.out.is_dir():
            return
        folders = [self.out, *(p for p in self.out.iterdir() if p.is_dir())]
        for folder in folders:
            for p in folder.iterdir():
                if _TEMP.match(p.name) and p.is_file():
                    p.unlink(missing_ok=True)

    def run(self, on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> ExportSummary:
        """Export; ``on_rows`` hears of each batch of finished rows (progress). Ctrl-C stops it; what
        was written stays in the manifest, and ``resume`` goes on from there."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._clean()
        summary = ExportSummary(resumed=sum(len(v) for v in self.done.values()), manifest=self.out / MANIFEST)
        t0 = time.monotonic()
        mode = "w" if self.overwrite else "a"
        with open(self.out / MANIFEST, mode, encoding="utf-8") as manifest:
            if self.scheduler is not None or self.workers > 1:
                batches = _dask_rows(self, self.scheduler, self.workers, self.timeout_s)
            else:
                keep_heap()
                batches = ([row] for task in self.tasks(1) for row in iter_task(task))
            for rows in batches:
                for row in rows:
                    manifest.write(json.dumps(row) + "\n")
                    if row["status"] == "ok":
                        summary.written += 1
                        summary.points += int(row["points"])
                        summary.empty += row["points"] == 0
                    else:
                        summary.failed += 1
                        if len(summary.failures) < _MAX_LISTED:
                            summary.failures.append((row["source"], int(row["frame"]), str(row["error"])))
                manifest.flush()
                if on_rows is not None:
                    on_rows(rows)
        self._clean()  # what a worker killed mid-write left (its task ran again elsewhere)
        if self.fmt == "mcap":
            summary.recordings = self._join_recordings()
        summary.seconds = time.monotonic() - t0
        return summary

    def _join_recordings(self) -> list[Path]:
        """MCAP exports: per source, one recording of all its frames in order (``SOURCE.mcap`` beside
        the frame files), so it plays in Foxglove as one file."""
        from depthcloud.io.mcap import join_mcap

        rows = read_manifest(self.out)
        made = []
        for fs in self.sets:
            files = [self.out / row["file"] for (source, _), row in sorted(rows.items())
                     if source == fs.name and row.get("status") == "ok" and row.get("file")]
            if files:
                made.append(join_mcap(files, self.out / f"{fs.name}.mcap", overwrite=True)[0])
        return made


def _client(scheduler: str | None, workers: int, timeout_s: float) -> tuple[Any, Any]:
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        from depthcloud.errors import MissingDependencyError

        raise MissingDependencyError.for_extra("dask.distributed", "export") from exc
    if scheduler is not None:
        try:
            return Client(scheduler, timeout=f"{timeout_s}s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {scheduler}: no Dask scheduler answered within {timeout_s:g} s "
                             f"({type(exc).__name__}); start one with `dask scheduler` and workers with "
                             "`dask worker ADDRESS`, or check the address") from None
    # Spawned, not forked: a worker must not inherit this process's threads (numba, librealsense, rich).
    # No statistical profiler (a dashboard feature, here only a cost on every task thread).
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                          "distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=40)
    return Client(cluster), cluster


def _dask_rows(exporter: Exporter, scheduler: str | None, workers: int, timeout_s: float) -> Iterator[list[dict[str, Any]]]:
    from distributed import as_completed

    client, cluster = _client(scheduler, workers, timeout_s)
    try:
        threads = max(1, sum(client.nthreads().values())) if scheduler is not None else workers
        tasks = exporter.tasks(threads)
        pending: dict[Any, Task] = {}
        queue = as_completed()

        def submit() -> bool:
            task = next(tasks, None)
            if task is None:
                return False
            fut = client.submit(run_task, task, pure=False)
            pending[fut] = task
            queue.add(fut)
            return True

        for _ in range(2 * threads):
            if not submit():
                break
        for fut in queue:
            task = pending.pop(fut)
            try:
                rows = fut.result()
            except Exception as exc:  # a worker died (KilledWorker) or the task itself raised
                rows = [_row(task, task.start, status="error",
                             error=f"{type(exc).__name__}: frames {task.start}..{'' if task.stop is None else task.stop - 1} "
                                   f"were not exported ({exc})")]
            fut.release()
            yield rows
            submit()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def default_workers() -> int:
    """One worker per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
