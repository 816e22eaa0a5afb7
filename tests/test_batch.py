"""``segment_many`` / ``microsam-fiji segment`` on a folder: bad files reported and skipped, outputs identical to
single-image runs and never colliding, resume by stamp, a parameter change re-runs, summary.csv."""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from microsam_fiji import segment
from microsam_fiji.batch.api import segment_many
from microsam_fiji.batch.plan import output_names
from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError


@pytest.fixture(scope="module")
def crops(stardist_image) -> dict[str, np.ndarray]:
    """Two 96x96 crops with a few nuclei each: the image encoder still runs at 1024 px, the prompts are few."""
    return {"a": stardist_image[:96, :96].copy(), "b": stardist_image[96:192, :96].copy()}


@pytest.fixture()
def folder(tmp_path, crops) -> Path:
    """Good images (a TIFF and a PNG with the same stem, a z stack) beside a corrupt TIFF and a text file."""
    from skimage.io import imsave

    d = tmp_path / "plate"
    d.mkdir()
    tifffile.imwrite(d / "a1.tif", crops["a"], imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"unit": "micron"})
    imsave(d / "a1.png", crops["a"], check_contrast=False)
    tifffile.imwrite(d / "stack.tif", np.stack([crops["b"], crops["a"]]), imagej=True, metadata={"axes": "ZYX"})
    whole = (Path(__file__).parent / "data" / "img2d.tif").read_bytes()
    (d / "corrupt.tif").write_bytes(whole[: len(whole) // 3])  # header fine, pixel data cut short
    (d / "notes.tif").write_text("not an image\n")
    return d


def read_summary(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "objects", "seconds", "engine", "model", "status", "error", "labels", "rois"]
    return {Path(r["image"]).name: r for r in rows}


def snapshot(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "summary.csv"}


def test_folder_with_bad_files_resume_and_parameter_change(folder, tmp_path, demo_model, crops):
    out = tmp_path / "out"
    summary = segment_many(folder, out, demo_model)

    rows = read_summary(out / "summary.csv")
    assert summary.path == out / "summary.csv" and len(summary.rows) == len(rows) == 5
    assert {n: r["status"] for n, r in rows.items()} == {
        "a1.png": "done", "a1.tif": "done", "stack.tif": "done", "corrupt.tif": "error", "notes.tif": "error"}
    for name in ("corrupt.tif", "notes.tif"):
        error = rows[name]["error"]
        assert name in error and "not a readable TIFF" in error and "\n" not in error and "Traceback" not in error
        assert rows[name]["labels"] == "" and not list(out.glob(f"{Path(name).stem}_*"))

    # same stem, two files: two outputs, both equal to the single-image run
    expected_a = segment(crops["a"], demo_model)
    for name in ("a1_tif", "a1_png"):
        np.testing.assert_array_equal(tifffile.imread(out / f"{name}_labels.tif"), expected_a)
        assert (out / f"{name}_RoiSet.zip").is_file() and (out / f"{name}.microsam.json").is_file()
    assert rows["a1.tif"]["objects"] == str(len(np.unique(expected_a)) - 1)
    assert rows["a1.tif"]["engine"] == "fast" and rows["a1.tif"]["model"] == "demo"
    with tifffile.TiffFile(out / "a1_tif_labels.tif") as tif:  # calibration copied from the input
        num, den = tif.pages.first.tags["XResolution"].value
        assert den / num == pytest.approx(0.5) and tif.imagej_metadata["unit"] == "micron"
    stack = tifffile.imread(out / "stack_labels.tif")
    expected_b = segment(crops["b"], demo_model)
    assert stack.shape == (2, 96, 96)
    np.testing.assert_array_equal(stack[0], expected_b)
    np.testing.assert_array_equal(stack[1], np.where(expected_a > 0, expected_a + expected_b.max(), 0))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    # a rerun writes nothing new: every good image is skipped by its stamp
    before = snapshot(out)
    again = segment_many(folder, out, demo_model)
    assert [r.status for r in again.rows] == [r.status.replace("done", "skipped") for r in summary.rows]
    assert [r.objects for r in again.rows] == [r.objects for r in summary.rows]
    assert snapshot(out) == before

    # a changed parameter re-runs them (the embeddings are cached: only APG runs again)
    changed = segment_many(folder, out, demo_model, params={"min_size": 200})
    assert [r.status for r in changed.rows] == [r.status for r in summary.rows]
    bigger = segment(crops["a"], demo_model, min_size=200)
    assert bigger.max() < expected_a.max()
    np.testing.assert_array_equal(tifffile.imread(out / "a1_tif_labels.tif"), bigger)
    # and the input changing re-runs that image alone
    os.utime(folder / "a1.png", ns=(1, 1))
    touched = segment_many(folder, out, demo_model, params={"min_size": "200"})
    assert {Path(r.image).name: r.status for r in touched.rows if r.status != "error"} == {
        "a1.png": "done", "a1.tif": "skipped", "stack.tif": "skipped"}


def test_cli_batch_goes_on_after_bad_files_and_exits_nonzero(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "b_notes.tif").write_text("text")
    tifffile.imwrite(d / "a_flat.tif", np.full((40, 50), 9, np.uint16))  # constant: 0 objects, no model run
    tifffile.imwrite(d / "c_flat.tif", np.full((40, 50), 3, np.uint8))
    out = tmp_path / "out"
    code = main(["segment", str(d), "--out", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and "1 of 3 images failed" in err[0] and "summary.csv" in err[0]
    # not a terminal: one plain line per image, with the count and an ETA, no progress-bar redraws
    lines = captured.out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("[1/3") and "eta" in lines[0] and "\r" not in captured.out
    assert "b_notes.tif: error:" in lines[1] and "c_flat.tif: 0 objects" in lines[2]
    assert (out / "c_flat_labels.tif").is_file() and tifffile.imread(out / "c_flat_labels.tif").shape == (40, 50)
    assert read_summary(out / "summary.csv")["c_flat.tif"]["status"] == "done"


def test_tiled_image_and_out_inside_the_input_folder(tmp_path, demo_model, crops):
    tifffile.imwrite(tmp_path / "big.tif", crops["a"])
    # tile_threshold below the image size: the tiled path (one tile here, to keep the test small)
    first = segment_many(tmp_path, tmp_path, demo_model, tile_threshold=64, rois=False)
    assert [(Path(r.image).name, r.status) for r in first.rows] == [("big.tif", "done")]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "big_labels.tif"),
                                  segment(crops["a"], demo_model, tile_threshold=64))
    # the labels now beside the image are not taken for an input; the tiling is part of the stamp
    again = segment_many(tmp_path, tmp_path, demo_model, rois=False, tile_threshold=64)
    assert [(Path(r.image).name, r.status) for r in again.rows] == [("big.tif", "skipped")]
    untiled = segment_many(tmp_path, tmp_path, demo_model, rois=False)
    assert [r.status for r in untiled.rows] == ["done"]


def test_glob_patterns_and_output_names_never_collide(tmp_path):
    (tmp_path / "p1").mkdir()
    (tmp_path / "p2").mkdir()
    paths = [tmp_path / "p1" / "a1.tif", tmp_path / "p1" / "a1.png", tmp_path / "p2" / "a1.tif",
             tmp_path / "p1" / "a1_png.tif", tmp_path / "p1" / "b.tif"]
    names = output_names(paths)
    assert len({n.lower() for n in names}) == len(names)
    assert names[4] == "b" and names[1] != "a1_png" and names[0] == "p1_a1_tif" and names[2] == "p2_a1_tif"
    assert output_names(paths) == names  # stable across runs: what resume relies on

    from microsam_fiji.batch.plan import expand_images

    for p in paths:
        p.write_bytes(b"")
    found = expand_images([str(tmp_path / "p*" / "a1.tif"), tmp_path / "p1"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "p1/a1.tif", "p2/a1.tif", "p1/a1.png", "p1/a1_png.tif", "p1/b.tif"]


def test_progress_bar_with_eta_on_a_terminal(tmp_path):
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    for i in range(3):
        tifffile.imwrite(tmp_path / f"flat{i}.tif", np.full((32, 32), i + 1, np.uint8))  # no model runs
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "microsam_fiji.cli", "segment", str(tmp_path), "--out",
                             str(tmp_path / "out"), "--device", "cpu", "--no-rois"],
                            stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the program ended and closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=300) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "segmenting: 100%" in text and "3/3" in text and "<00:00" in text  # tqdm: count, elapsed<ETA
    assert "flat2.tif: 0 objects" in text and "[1/3" not in text  # per-image lines above the bar, no plain lines


# --- capacity: workers, tiles, schedulers ----------------------------------------------------------------------------
# No hang on more workers than the machine holds, on tiles too small for the encoder, or on a
# scheduler file that does not exist.

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
