"""Frames on Dask: a local cluster (--workers 2) and an existing one (--scheduler ADDRESS) write the
very bytes one in-process worker writes; an unreachable scheduler is one clean line."""

from __future__ import annotations

import pytest

from _export_helpers import depth_folder, outputs, run

distributed = pytest.importorskip("distributed")

N, CORRUPT = 40, (7,)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return depth_folder(tmp_path_factory.mktemp("src"), N, corrupt=CORRUPT)


@pytest.fixture(scope="module")
def cluster():
    import dask

    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None, silence_logs=40)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def reference(frames, tmp_path_factory):
    from depthcloud.cli import main

    folder, camera = frames
    out = tmp_path_factory.mktemp("ref") / "out"
    code = main(["export", str(folder), "--camera", str(camera), "-o", str(out), "--workers", "1",
                 "--format", "laz", "--voxel", "0.05", "--frame", "zup"])
    assert code == 1  # the corrupt frame
    files = outputs(out, ".laz")
    assert len(files) == N - len(CORRUPT)
    return files


def test_two_local_workers_write_the_same_bytes(frames, reference, tmp_path, capsys):
    folder, camera = frames
    code, stdout, err = run(capsys, "export", folder, "--camera", camera, "-o", tmp_path / "o", "--workers", "2",
                            "--format", "laz", "--voxel", "0.05", "--frame", "zup")
    assert code == 1 and "frames frame 7: FormatError" in err
    assert "2 worker processes" in stdout
    assert outputs(tmp_path / "o", ".laz") == reference


def test_an_existing_cluster_by_address_writes_the_same_bytes(frames, reference, cluster, tmp_path, capsys):
    folder, camera = frames
    code, stdout, err = run(capsys, "export", folder, "--camera", camera, "-o", tmp_path / "o", "--scheduler",
                            cluster.scheduler_address, "--format", "laz", "--voxel", "0.05", "--frame", "zup")
    assert code == 1 and "frames frame 7: FormatError" in err
    assert cluster.scheduler_address in stdout
    assert outputs(tmp_path / "o", ".laz") == reference
    # and resuming there writes nothing new
    code, stdout, _ = run(capsys, "export", folder, "--camera", camera, "-o", tmp_path / "o", "--scheduler",
                          cluster.scheduler_address, "--format", "laz", "--voxel", "0.05", "--frame", "zup", "--resume")
    assert f"{N - len(CORRUPT)} frame(s) were already done" in stdout and "0 frame(s) →" in stdout


def test_an_unreachable_scheduler_is_one_line_with_its_timeout(frames, tmp_path, capsys):
    folder, camera = frames
    code, _, err = run(capsys, "export", folder, "--camera", camera, "-o", tmp_path / "o", "--scheduler",
                       "tcp://127.0.0.1:9", "--timeout", "1")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(
        "InputError: --scheduler tcp://127.0.0.1:9: no Dask scheduler answered within 1 s")
    assert "Traceback" not in err


def test_a_killed_worker_loses_no_frame_and_leaves_no_partial_file(cluster, tmp_path):
    import os
    import signal
    import threading
    import time

    from _export_helpers import leftovers
    from depthcloud.cli import main
    from depthcloud.io import read_cloud
    from depthcloud.sources.synthetic import default_intrinsics

    n = 40
    folder, camera = depth_folder(tmp_path / "src", n, intr=default_intrinsics(320, 240))
    out = tmp_path / "o"
    with distributed.Client(cluster) as client:
        victim = next(iter(client.run(os.getpid).values()))
    killed = threading.Event()

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(list(out.glob("*.ply"))) >= 4:
                os.kill(victim, signal.SIGKILL)  # its nanny starts a new worker; its task runs again
                killed.set()
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    code = main(["export", str(folder), "--camera", str(camera), "-o", str(out), "--scheduler",
                 cluster.scheduler_address, "--ascii"])
    killer.join(5)
    written = sorted(out.glob("*.ply"))
    if not killed.is_set() or len(written) < 4:
        pytest.skip("the export ended before a worker could be killed")
    assert code == 0
    assert len(written) == n and leftovers(out) == []
    for p in written:
        assert len(read_cloud(p)) > 0  # whole files only
