"""Batches on Dask: a local cluster (``--workers 2``) and a real ``dask scheduler`` + 2 ``dask worker`` processes
on 127.0.0.1 give the labels of the in-process run; a worker killed mid-batch loses no image and duplicates none.
Small on purpose: one 96x96 crop per image, a constant image (no model run), the demo model."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from microsam_fiji import segment
from microsam_fiji.batch.api import segment_many
from microsam_fiji.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
DASK = Path(sys.executable).parent / "dask"


@pytest.fixture(scope="module")
def crops(stardist_image) -> dict[str, np.ndarray]:
    return {"a": stardist_image[:96, :96].copy()}


def write_images(folder: Path, crops: dict[str, np.ndarray], names=("a",)) -> Path:
    folder.mkdir()
    for name in names:
        tifffile.imwrite(folder / f"{name}.tif", crops[name])
    tifffile.imwrite(folder / "flat.tif", np.full((48, 48), 4, np.uint8))
    return folder


def assert_same_as_in_process(out: Path, crops, names, demo_model) -> None:
    for name in names:
        np.testing.assert_array_equal(tifffile.imread(out / f"{name}_labels.tif"), segment(crops[name], demo_model))
    assert not tifffile.imread(out / "flat_labels.tif").any()
    # every image once: its outputs and one summary row, no temporary file left by an interrupted write
    expected = {f"{n}{suffix}" for n in (*names, "flat") for suffix in ("_labels.tif", "_objects.csv",
                                                                        ".microsam.json")}
    assert {p.name for p in out.iterdir()} == expected | {"summary.csv"}
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(Path(r["image"]).stem for r in rows) == sorted((*names, "flat"))
    assert {r["status"] for r in rows} == {"done"}


def test_a_workers_warnings_reach_the_user_as_in_a_local_run(tmp_path):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((48, 48, 2), 9, np.uint8), mode="LA").save(folder / "gray_alpha.png")  # no model run
    with pytest.warns(UserWarning, match="gray with an alpha channel") as local:
        segment_many(folder, tmp_path / "local", "demo", device="cpu", rois=False)
    with pytest.warns(UserWarning, match="gray with an alpha channel") as dask:
        summary = segment_many(folder, tmp_path / "dask", "demo", device="cpu", rois=False, workers=1)
    assert [r.status for r in summary.rows] == ["done"]
    said = {str(w.message) for w in dask if "alpha" in str(w.message)}
    assert said and said == {str(w.message) for w in local if "alpha" in str(w.message)}


def test_local_cluster_of_two_workers_loads_the_model_once_each(tmp_path, crops, demo_model):
    images = write_images(tmp_path / "in", crops, names=("a",))
    summary = segment_many(images, tmp_path / "out", "demo", device="cpu", rois=False, workers=2)
    assert [r.status for r in summary.rows] == ["done", "done"]
    assert len(summary.model_loads) == 2 and set(summary.model_loads.values()) == {1}
    assert_same_as_in_process(tmp_path / "out", crops, ("a",), demo_model)


@pytest.fixture()
def dask_cluster(tmp_path):
    """``dask scheduler`` and two single-threaded ``dask worker`` processes (no nanny: a killed one stays dead)."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "dask.log", "w")
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)], stdout=log, stderr=log, env=env,
                              start_new_session=True)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline and procs[0].poll() is None, "the dask scheduler did not start"
            time.sleep(0.2)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(DASK), "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--host", "127.0.0.1"], stdout=log, stderr=log, env=env, start_new_session=True))
        yield scheduler_file
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def test_external_scheduler_survives_a_killed_worker(dask_cluster, tmp_path, crops, demo_model):
    from distributed import Client

    images = write_images(tmp_path / "in", crops, names=("a",))
    out = tmp_path / "out"
    with Client(scheduler_file=str(dask_cluster), timeout="30s") as client:
        client.wait_for_workers(2, timeout=120)
        pids = client.run(os.getpid)
        result = {}
        batch = threading.Thread(target=lambda: result.update(code=main(
            ["segment", str(images), "--out", str(out), "--scheduler", str(dask_cluster), "--device", "cpu",
             "--no-rois", "--quiet"])))
        batch.start()
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and batch.is_alive():
            for address, keys in client.processing().items():
                # task 0 is the crop (sorted names: a, flat): kill the worker busy with it
                if any(str(k).startswith("microsam-segment-") and str(k).endswith("-0") for k in keys):
                    victim = address
                    break
            time.sleep(0.1)
        assert victim is not None, "no worker ever ran an image"
        time.sleep(1.0)  # inside the image: loading the model or segmenting
        os.kill(pids[victim], signal.SIGKILL)
        batch.join(timeout=360)
        assert not batch.is_alive(), "the batch did not finish after a worker was killed"
        assert len(client.scheduler_info()["workers"]) == 1
    assert result["code"] == 0
    assert_same_as_in_process(out, crops, ("a",), demo_model)
