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
    assert "nuclei.tif: " in captured.out and "segmenting" in captured.err  # a line per image, a progress bar


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
                   "--device", "--engine", "--no-rois"):
        assert option in proc.stdout
