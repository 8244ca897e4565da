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
