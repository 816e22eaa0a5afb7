"""``microsam-fiji segment`` end to end on the stardist image, and its argument errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from microsam_fiji import segment
from microsam_fiji.cli import main

CLI = [sys.executable, "-m", "microsam_fiji.cli"]


@pytest.fixture(scope="module")
def calibrated_image(tmp_path_factory, small_image) -> Path:
    path = tmp_path_factory.mktemp("in") / "nuclei.tif"
    tifffile.imwrite(path, small_image, imagej=True, resolution=(1 / 0.65, 1 / 0.65), metadata={"unit": "micron"})
    return path


def test_segment_writes_calibrated_labels_with_the_right_ids(calibrated_image, tmp_path, demo_model, small_image,
                                                             capsys):
    out = tmp_path / "out"
    assert main(["segment", str(calibrated_image), "--out", str(out), "--model", "demo", "--device", "cpu",
                 "--no-rois"]) == 0
    with tifffile.TiffFile(out / "nuclei_labels.tif") as tif:
        labels = tif.asarray()
        assert tif.imagej_metadata["unit"] == "micron"
        num, den = tif.pages.first.tags["XResolution"].value
        assert den / num == pytest.approx(0.65)
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels, segment(small_image, demo_model))
    captured = capsys.readouterr()
    # not a terminal (Fiji's exec(), CI): a plain line per image instead of a progress bar
    assert captured.out.startswith("[1/1] nuclei.tif: ") and "segmenting" not in captured.err


def test_segment_a_folder_with_parameters(calibrated_image, tmp_path):
    out = tmp_path / "out"
    code = main(["segment", str(calibrated_image.parent), "--out", str(out), "--param", "min_size=400",
                 "--param", "foreground=0.6", "--quiet", "--no-rois", "--device", "cpu"])
    assert code == 0
    labels = tifffile.imread(out / "nuclei_labels.tif")
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes[sizes > 0].min() > 400


@pytest.mark.parametrize("args,message", [
    (["segment", "missing.tif", "--out", "o"], "image 'missing.tif' not found"),
    (["segment", "{img}", "--out", "o", "--param", "center"], "not of the form name=value"),
    (["segment", "{img}", "--out", "o", "--mode", "apg", "--param", "centre=0.3"], "unknown apg parameter 'centre'"),
    (["segment", "{img}", "--out", "o", "--model", "vit_q"], "unknown model 'vit_q'"),
    (["segment", "{img}", "--out", "o", "--tile-shape", "big"], "not a pair of whole numbers"),
    (["segment", "{img}", "--out", "o", "--mode", "amg"], "invalid choice: 'amg'"),
    (["segment", "{img}"], "the following arguments are required: --out"),
])
def test_bad_arguments_give_one_line_and_nonzero_exit(args, message, calibrated_image, tmp_path):
    args = [a.replace("{img}", str(calibrated_image)) for a in args]
    proc = subprocess.run(CLI + args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Downloading")]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0] and "Traceback" not in proc.stderr


def test_help_lists_every_command_and_option():
    proc = subprocess.run(CLI + ["segment", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for option in ("--model", "--model-type", "--mode", "--param", "--out", "--tile-shape", "--halo", "--axes",
                   "--device", "--engine", "--no-rois", "--overwrite", "--workers", "--scheduler", "--quiet"):
        assert option in proc.stdout


@pytest.fixture()
def no_work(monkeypatch):
    """Fails the test if the model is loaded or an image read: bad options and outputs must be refused first."""
    import microsam_fiji.core.tiff_io
    import microsam_fiji.models.load

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the options and --out were checked")

    monkeypatch.setattr(microsam_fiji.models.load, "load_model", refuse)
    monkeypatch.setattr(microsam_fiji.core.tiff_io, "read_image", refuse)


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("where", ["under a file", "in /proc", "an existing folder refusing files (/proc)",
                                   "labels exist as a folder"])
def test_unwritable_out_is_refused_before_any_work(where, calibrated_image, tmp_path, no_work, capsys):
    out = tmp_path / "out"
    keep = None
    if where == "under a file":
        (tmp_path / "plain").write_text("x")
        out = tmp_path / "plain" / "out"
    elif where == "in /proc":
        out = Path("/proc/microsam-fiji-out")
    elif where.startswith("an existing folder"):  # as a read-only mount: the folder is there, no file can be made
        out = Path("/proc")
    else:
        (out / "nuclei_labels.tif").mkdir(parents=True)
        keep = out / "nuclei_labels.tif" / "mine.txt"
        keep.write_text("user data")
    code = main(["segment", str(calibrated_image), "--out", str(out), "--device", "cpu"])
    line = one_error_line(capsys)
    assert code == 2
    assert "--out" in line and ("plain" in line if where == "under a file" else str(out) in line)
    if keep is not None:
        assert keep.read_text() == "user data" and not (out / "summary.csv").exists()


@pytest.mark.parametrize("option,message", [
    (["--engine", "bogus"], "unknown engine 'bogus'"),
    (["--tile-threshold", "0"], "--tile-threshold 0"),
    (["--axes", "QYX"], "--axes 'QYX'"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--workers", "0"], "--workers 0"),
    (["--param", "center=2"], "between 0 and 1"),
])
def test_options_are_checked_before_the_model_is_loaded(option, message, tmp_path, no_work, capsys):
    image = tmp_path / "flat.tif"
    tifffile.imwrite(image, np.full((32, 32), 5, np.uint8))  # constant: once nothing was checked, exit 0
    code = main(["segment", str(image), "--out", str(tmp_path / "out"), *option])
    assert code == 2 and message in one_error_line(capsys)


def test_axes_option_reaches_segment_and_ambiguous_axes_say_so(tmp_path, capsys):
    image = tmp_path / "plain4d.tif"
    # a plain multi-page TIFF, no ImageJ metadata: which axis is time, which depth?
    tifffile.imwrite(image, np.zeros((2, 3, 32, 40), np.uint8), photometric="minisblack")
    out = tmp_path / "out"
    code = main(["segment", str(image), "--out", str(out), "--device", "cpu", "--quiet"])
    line = one_error_line(capsys)
    assert code == 1 and "ambiguous" in line and "--axes" in line and "ZZYX" not in line
    assert main(["segment", str(image), "--out", str(out), "--device", "cpu", "--quiet", "--axes", "tzyx"]) == 0
    with tifffile.TiffFile(out / "plain4d_labels.tif") as tif:
        assert tif.series[0].axes == "TZYX" and tif.series[0].shape == (2, 3, 32, 40)
