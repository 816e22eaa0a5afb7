"""What gave a traceback now gives one line naming the fix: checkpoints that are not micro-sam's,
--device mps without Apple's GPU, an image name starting with '-', and ``rois`` / ``labels`` outputs that
cannot be written or would not fit in memory."""
from __future__ import annotations

import copy
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError

CLI = [sys.executable, "-m", "microsam_fiji.cli"]


@pytest.fixture(scope="module")
def broken_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """The demo checkpoint changed the ways users get it wrong."""
    import torch

    from microsam_fiji.models.demo import DEMO_CHECKPOINT

    folder = tmp_path_factory.mktemp("broken")
    good = torch.load(DEMO_CHECKPOINT, map_location="cpu", weights_only=False)
    paths = {}

    def save(name, state):
        paths[name] = folder / f"{name}.pt"
        torch.save(state, paths[name])

    save("another architecture", {"model_state": torch.nn.Linear(3, 3).state_dict(), "decoder_state": {}})
    save("a plain state dict of another network", {**torch.nn.Conv2d(3, 8, 3).state_dict(),
                                                   "decoder_state": {"w": torch.zeros(2)}})
    wrong = copy.copy(good)
    wrong["decoder_state"] = {"decoder.w": torch.zeros(3)}
    save("a wrong decoder", wrong)
    shaped = copy.deepcopy(good)
    key = next(k for k, v in shaped["model_state"].items() if v.ndim == 4)
    shaped["model_state"][key] = torch.zeros(7, 3)
    save("a wrong-shape tensor", shaped)
    missing = copy.deepcopy(good)
    del missing["model_state"][list(missing["model_state"])[-1]]
    save("a missing key", missing)
    missing_decoder = copy.deepcopy(good)
    del missing_decoder["decoder_state"][list(missing_decoder["decoder_state"])[-1]]
    save("a missing decoder key", missing_decoder)
    shaped_decoder = copy.deepcopy(good)
    key = list(shaped_decoder["decoder_state"])[0]
    shaped_decoder["decoder_state"][key] = torch.zeros(1)
    save("a wrong-shape decoder tensor", shaped_decoder)
    return paths


CASES = ["another architecture", "a plain state dict of another network", "a wrong decoder",
         "a wrong-shape tensor", "a missing key", "a missing decoder key", "a wrong-shape decoder tensor"]


@pytest.mark.parametrize("case", CASES)
def test_a_checkpoint_that_is_not_micro_sams_gives_one_line(case, broken_checkpoints):
    from microsam_fiji.models.load import load_model

    path = broken_checkpoints[case]
    with pytest.raises(UserError) as err:
        load_model(path, device="cpu")
    message = str(err.value)
    assert "\n" not in message and len(message) < 400, message
    assert f"'{path.name}' is not a micro-sam checkpoint with an instance decoder: " in message, message


def test_the_cli_refuses_a_broken_checkpoint_in_one_line(broken_checkpoints, tmp_path):
    image = tmp_path / "x.tif"
    tifffile.imwrite(image, np.full((32, 32), 5, np.uint8))
    proc = subprocess.run(CLI + ["segment", str(image), "--out", str(tmp_path / "out"), "--device", "cpu",
                                 "--model", str(broken_checkpoints["a wrong-shape tensor"])],
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "is not a micro-sam checkpoint with an instance decoder" in lines[0] and "size" in lines[0]


def test_device_mps_without_apple_gpu_is_one_line(tmp_path, capsys):
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    from microsam_fiji.models.load import load_model

    with pytest.raises(UserError, match="mps") as err:
        load_model("demo", device="mps")
    assert "\n" not in str(err.value) and "--device cpu" in str(err.value)
    image = tmp_path / "x.tif"
    tifffile.imwrite(image, np.full((32, 32), 5, np.uint8))
    code = main(["segment", str(image), "--out", str(tmp_path / "out"), "--device", "mps"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "mps" in lines[0] and "Traceback" not in lines[0]
    assert not (tmp_path / "out").exists()


def test_an_image_name_starting_with_a_dash_names_the_fix(tmp_path):
    tifffile.imwrite(tmp_path / "-dash.tif", np.full((32, 32), 5, np.uint8))
    for args in (["segment", "-dash.tif", "--out", "o"], ["segment", "--out", "o", "-dash.tif"]):
        proc = subprocess.run(CLI + args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "(a file name starting with '-': write ./-dash.tif)" in lines[0], lines[0]
    proc = subprocess.run(CLI + ["segment", "./-dash.tif", "--out", "o", "--device", "cpu", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "-dash_labels.tif").is_file()
    # a dash that is no file keeps argparse's plain message
    proc = subprocess.run(CLI + ["segment", "-x", "--out", "o"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "starting with '-'" not in proc.stderr


@pytest.fixture()
def label_image(tmp_path) -> Path:
    labels = np.zeros((20, 30), np.uint16)
    labels[2:8, 3:9] = 1
    labels[10:15, 12:25] = 2
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, labels)
    return path


@pytest.fixture()
def roiset(label_image) -> Path:
    assert main(["rois", str(label_image)]) == 0
    return label_image.with_name("cells_RoiSet.zip")


def cli_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


def test_rois_out_that_cannot_be_written_is_one_line(label_image, tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "mine.txt").write_text("user data")
    assert main(["rois", str(label_image), "--out", str(folder)]) == 2
    line = cli_error(capsys)
    assert str(folder) in line and "folder" in line
    assert [p.name for p in folder.iterdir()] == ["mine.txt"]
    assert main(["rois", str(label_image), "--out", "/proc/microsam-fiji-rois.zip"]) == 2
    assert "/proc" in cli_error(capsys)


def test_labels_out_that_cannot_be_written_is_one_line(roiset, tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    assert main(["labels", str(roiset), "--shape", "20,30", "--out", str(folder)]) == 2
    assert "folder" in cli_error(capsys)
    assert main(["labels", str(roiset), "--shape", "20,30", "--out", "/proc/microsam-fiji-labels.tif"]) == 2
    assert "/proc" in cli_error(capsys)
    assert main(["labels", str(roiset), "--shape", "20,30", "--out", str(tmp_path / "l.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), tifffile.imread(roiset.with_name("cells.tif")))


def _limit_memory():  # the refusal must come before any allocation: 4 GiB of address space is plenty for it
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_a_label_image_too_large_for_memory_is_refused_with_what_it_needs(roiset, tmp_path):
    proc = subprocess.run(CLI + ["labels", str(roiset), "--shape", "100000,100000", "--out", str(tmp_path / "big.tif")],
                          capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "100000 x 100000" in lines[0] and "GiB" in lines[0] and "--shape" in lines[0]
    assert not (tmp_path / "big.tif").exists()
