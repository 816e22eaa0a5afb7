"""Issue 21.3: no hang on more workers than the machine holds, on tiles too small for the encoder, or on a
scheduler file that does not exist."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import tifffile

from microsam_fiji import segment
from microsam_fiji.batch.api import segment_many
from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError


@pytest.fixture()
def no_work(monkeypatch):
    """Fails the test if the model is loaded or an image read: bad options must be refused first."""
    import microsam_fiji.core.tiff_io
    import microsam_fiji.models.load

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(microsam_fiji.models.load, "load_model", refuse)
    monkeypatch.setattr(microsam_fiji.core.tiff_io, "read_image", refuse)


def flat_image(tmp_path, name="flat.tif"):
    path = tmp_path / name
    tifffile.imwrite(path, np.full((40, 48), 5, np.uint8))
    return path


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


def test_the_worker_count_is_capped_by_cores_and_memory():
    from microsam_fiji.batch.workers import worker_limit
    from microsam_fiji.core.machine import available_memory, cpu_cores

    cores, memory = cpu_cores(), available_memory()
    assert 1 <= cores <= (os.cpu_count() or 1) and memory > 0
    n, reason = worker_limit(100, None)
    assert 1 <= n <= min(cores, 100) and "--workers 100" in reason and "core" in reason and f"{n} worker" in reason
    assert "\n" not in reason
    assert worker_limit(1, None) == (1, "")
    # a model of 2.5 GB per worker: at most what the free memory holds
    n_big, reason = worker_limit(100, "vit_h")
    assert n_big <= max(1, memory // (2 * 2_500_000_000))


def test_workers_beyond_the_machine_say_so_before_any_work(tmp_path, demo_model):
    image = flat_image(tmp_path)
    segment_many(image, tmp_path / "out", demo_model)  # up to date below: no cluster is started
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = segment_many(image, tmp_path / "out", "demo", device="cpu", workers=100)
    assert [r.status for r in summary.rows] == ["skipped"]
    lines = [str(w.message) for w in caught if "--workers 100" in str(w.message)]
    assert len(lines) == 1 and "core" in lines[0] and "\n" not in lines[0], [str(w.message) for w in caught]


def test_a_local_cluster_gets_at_most_one_worker_per_core(tmp_path):
    from microsam_fiji.core.machine import cpu_cores

    wanted = cpu_cores() + 1
    images = [flat_image(tmp_path, f"f{i}.tif") for i in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = segment_many(images, tmp_path / "out", "demo", device="cpu", rois=False, workers=wanted)
    assert [r.status for r in summary.rows] == ["done", "done"]
    assert 1 <= len(summary.model_loads) <= cpu_cores()  # one entry per worker started
    assert any(f"--workers {wanted}" in str(w.message) for w in caught)


@pytest.mark.parametrize("option,message", [
    (["--tile-shape", "1,1", "--halo", "0,0"], "at least 64 pixels"),
    (["--tile-shape", "63,512"], "at least 64 pixels"),
    (["--scheduler", "/nonexistent.json"], "scheduler file '/nonexistent.json' does not exist"),
    (["--scheduler", "nowhere/sched.json"], "does not exist"),
])
def test_options_that_would_hang_are_refused_before_any_work(option, message, tmp_path, no_work, capsys):
    code = main(["segment", str(flat_image(tmp_path)), "--out", str(tmp_path / "out"), *option])
    line = one_error_line(capsys)
    assert code == 2 and message in line, line
    assert not (tmp_path / "out" / "summary.csv").exists()


def test_tiny_tiles_are_refused_by_the_python_api(demo_model):
    image = np.full((40, 48), 3, np.uint8)  # constant: nothing would stop a run that was not checked
    with pytest.raises(UserError, match="at least 64 pixels") as err:
        segment(image, demo_model, tile_shape=(1, 1), halo=(0, 0))
    assert "\n" not in str(err.value)
    assert segment(image, demo_model, tile_shape=(64, 64), halo=(0, 0)).shape == (40, 48)


def test_a_scheduler_address_where_no_dask_answers_is_one_line_not_a_hang(tmp_path, monkeypatch, capsys):
    """Something listens on the port but never speaks Dask (a web server waiting for its request): the connect
    succeeds and Dask's handshake would wait forever (600 s seen); a deadline ends it with one line."""
    import socket
    import threading
    import time

    from microsam_fiji.batch import dask_runner

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted: list = []
    threading.Thread(target=lambda: [accepted.append(server.accept()) for _ in range(4)], daemon=True).start()
    monkeypatch.setattr(dask_runner, "CONNECT_S", 3.0)
    start = time.monotonic()
    code = main(["segment", str(flat_image(tmp_path)), "--out", str(tmp_path / "out"),
                 "--scheduler", f"tcp://127.0.0.1:{server.getsockname()[1]}"])
    line = one_error_line(capsys)
    assert code == 2 and "no Dask scheduler answered" in line and "within 3 s" in line, line
    assert time.monotonic() - start < 30
    server.close()
