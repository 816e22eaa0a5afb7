"""Files a stranger hands a user run no code and are not read beyond what this machine can hold: a checkpoint
with a pickled command, a package whose architecture runs a command, a zip bomb, a TIFF whose header lies, zip
members named outside the package."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError
from microsam_fiji.models.demo import DEMO_CHECKPOINT
from microsam_fiji.models.package_config import WEIGHTS_FILE
from microsam_fiji.zoo.weights import ARCHITECTURE_FILE

from helpers.zips import rdf_with_hash, rewrite_zip, zip_bomb_member

CLI = Path(sys.executable).with_name("microsam-fiji")


class _Command:
    """Unpickling this runs ``touch MARKER`` (what a malicious checkpoint does with ``__reduce__``)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.fixture(scope="module")
def pickled_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """(the demo checkpoint plus an object whose unpickling runs a command, the file that command creates)."""
    import torch

    folder = tmp_path_factory.mktemp("pickled")
    marker = folder / "code-ran"
    state = torch.load(DEMO_CHECKPOINT, map_location="cpu", weights_only=True)
    state["extra"] = _Command(marker)
    torch.save(state, folder / "finetuned.pt")
    return folder / "finetuned.pt", marker


# --- 1. a checkpoint runs no code -----------------------------------------------------------------------------

def test_a_checkpoint_with_a_pickled_command_is_refused_by_load_model(pickled_checkpoint):
    from microsam_fiji.models.load import load_model

    path, marker = pickled_checkpoint
    with pytest.raises(UserError) as err:
        load_model(path, device="cpu")
    assert not marker.exists(), "loading the checkpoint ran its command"
    message = str(err.value)
    assert "\n" not in message and "posix.system" in message and "run code" in message, message
    assert "convert-checkpoint" in message and "--run-its-code" in message, message


def test_cli_segment_export_and_macro_run_no_code_from_a_checkpoint(pickled_checkpoint, tmp_path, stardist_image):
    import tifffile

    path, marker = pickled_checkpoint
    image = tmp_path / "nuclei.tif"
    tifffile.imwrite(image, stardist_image[:64, :64])
    for args in (["segment", str(image), "--out", str(tmp_path / "seg"), "--model", str(path)],
                 ["export", "--checkpoint", str(path), "--name", "nuclei test", "--out", str(tmp_path / "x.zip")],
                 ["macro", str(image), "--options", f"model=[{path}]", "--out", str(tmp_path / "macro")]):
        done = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, (args[0], done.stdout, done.stderr)
        assert not marker.exists(), f"{args[0]} ran the checkpoint's command"
        assert "Traceback" not in done.stderr and "holds Python objects besides weights" in done.stderr, done.stderr


def test_a_trusted_checkpoint_converts_once_then_loads(pickled_checkpoint, tmp_path):
    """The explicit way for a file the user trusts: convert-checkpoint runs its code (and says so), and what it
    writes loads everywhere as weights only."""
    import torch

    from microsam_fiji.models.load import load_model

    path, marker = pickled_checkpoint
    out = tmp_path / "clean.pt"
    with pytest.raises(SystemExit) as exited:  # the flag is required
        main(["convert-checkpoint", str(path), str(out)])
    assert exited.value.code == 2 and not out.exists() and not marker.exists()
    assert main(["convert-checkpoint", str(path), str(out), "--run-its-code"]) == 0
    assert marker.exists(), "the user asked to run the file's code"
    state = torch.load(out, weights_only=True)
    assert set(state) >= {"model_state", "decoder_state"}  # read with weights_only: nothing but values
    assert load_model(out, device="cpu").model_type == "vit_t"


def test_the_demo_and_a_plain_checkpoint_load_as_weights_only(random_checkpoint):
    from microsam_fiji.models.checkpoint import read_state

    for path in (DEMO_CHECKPOINT, random_checkpoint):
        state = read_state(path)
        assert {"model_state", "decoder_state"} <= set(state)


# --- 2. validate runs no code that is not ours ----------------------------------------------------------------

def _tampered_architecture(package_zip: Path, dst: Path, marker: Path) -> Path:
    import hashlib

    with zipfile.ZipFile(package_zip) as z:
        source = z.read(ARCHITECTURE_FILE)
    tampered = f"import os\nos.system('touch {marker}')\n".encode() + source
    rdf = rdf_with_hash(package_zip, hashlib.sha256(source).hexdigest(), hashlib.sha256(tampered).hexdigest())
    return rewrite_zip(package_zip, dst, replace={ARCHITECTURE_FILE: tampered, "rdf.yaml": rdf})


def test_validate_does_not_run_a_tampered_architecture(package_zip, tmp_path, capsys):
    marker = tmp_path / "architecture-ran"
    tampered = _tampered_architecture(package_zip, tmp_path / "tampered.zip", marker)
    status = main(["validate", str(tampered), "--weight-format", "pytorch_state_dict"])
    printed = capsys.readouterr()
    assert not marker.exists(), "validate ran the package's Python"
    assert status == 1 and "FAILED" in printed.out.splitlines()[0], printed.out
    assert "pytorch_state_dict weights not tested" in printed.out and "--run-package-code" in printed.out
    # what would run is said before anything runs
    assert "validate: micro-sam parts" in printed.err


def test_validate_names_what_it_runs_and_trusts_our_own_architecture(package_zip):
    from microsam_fiji.models.package import read_description
    from microsam_fiji.zoo.validate import code_to_run

    code = code_to_run(read_description(package_zip))
    assert code["pytorch_state_dict"][0] and "micro-sam-fiji writes" in code["pytorch_state_dict"][1]
    assert code["onnx"][0] and code["torchscript"][0]


def test_a_library_architecture_outside_micro_sam_is_not_called(package_zip, tmp_path):
    """``import_from: os, callable: system`` would make bioimageio.core call os.system with the kwargs."""
    from bioimageio.spec.model.v0_5 import ArchitectureFromLibraryDescr

    from microsam_fiji.models.package import read_description
    from microsam_fiji.zoo.validate import code_to_run

    descr = read_description(package_zip)
    weights = descr.weights.pytorch_state_dict
    evil = ArchitectureFromLibraryDescr(callable="system", import_from="os", kwargs={"command": "true"})
    changed = descr.model_copy(update={"weights": descr.weights.model_copy(
        update={"pytorch_state_dict": weights.model_copy(update={"architecture": evil})})})
    known, what = code_to_run(changed)["pytorch_state_dict"]
    assert not known and "os.system" in what
    micro_sam = ArchitectureFromLibraryDescr(callable="PredictorAdaptor",
                                             import_from="micro_sam.bioimageio.predictor_adaptor")
    changed = descr.model_copy(update={"weights": descr.weights.model_copy(
        update={"pytorch_state_dict": weights.model_copy(update={"architecture": micro_sam})})})
    assert code_to_run(changed)["pytorch_state_dict"][0]


# --- 3. bombs: declared sizes checked before reading -------------------------------------------------------------

@pytest.fixture
def small_memory(monkeypatch):
    """This machine as one with 128 MiB free: a member or image claiming more is refused before it is read."""
    from microsam_fiji.core import machine

    monkeypatch.setattr(machine, "available_memory", lambda: 128 << 20)
    return 128 << 20


def _bomb_package(package_zip: Path, dst: Path, size: int) -> Path:
    """The package with its weights member replaced by ``size`` zero bytes (deflated to well under 1 MB) and
    the rdf.yaml's sha256 updated to match."""
    import yaml

    with zipfile.ZipFile(package_zip) as zin, zipfile.ZipFile(dst, "w") as zout:
        rdf = yaml.safe_load(zin.read("rdf.yaml"))
        old = rdf["weights"]["pytorch_state_dict"]["sha256"]
        new = zip_bomb_member(zout, WEIGHTS_FILE, size)
        for item in zin.infolist():
            if item.filename not in (WEIGHTS_FILE, "rdf.yaml"):
                zout.writestr(item.filename, zin.read(item.filename), compress_type=zipfile.ZIP_STORED)
        zout.writestr("rdf.yaml", zin.read("rdf.yaml").decode().replace(old, new))
    return dst


def test_a_zip_bomb_package_is_refused_before_its_member_is_read(package_zip, tmp_path, small_memory):
    from microsam_fiji.models.load import load_model
    from microsam_fiji.zoo.validate import validate_package

    bomb = _bomb_package(package_zip, tmp_path / "bomb.zip", 512 << 20)
    with zipfile.ZipFile(bomb) as z:
        packed = z.getinfo(WEIGHTS_FILE).compress_size
    assert packed < 1 << 20  # under 1 MiB in the zip, 512 MiB expanded
    for attempt in (lambda: load_model(bomb, device="cpu"), lambda: validate_package(bomb, static=True)):
        tracemalloc.start()
        try:
            with pytest.raises(UserError) as err:
                attempt()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        message = str(err.value)
        assert f"member '{WEIGHTS_FILE}'" in message and "expands to 512 MiB" in message, message
        assert "\n" not in message and peak < 64 << 20, (message, peak)


def _lying_tiff(path: Path, height: int = 200000, width: int = 200000) -> Path:
    """A 4x4 uint16 TIFF whose ImageWidth / ImageLength tags claim ``height`` x ``width`` (about 140 bytes)."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((4, 4), np.uint16))
    data = bytearray(buffer.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tags = {t.name: t for t in tif.pages[0].tags.values()}
        for name, value in (("ImageWidth", width), ("ImageLength", height), ("RowsPerStrip", height)):
            tag = tags[name]
            assert tag.dtype == 4, "a LONG tag holds the value in place"
            data[tag.valueoffset:tag.valueoffset + 4] = value.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def test_a_tiff_whose_header_lies_is_refused_in_one_line(tmp_path, capsys):
    """rois, labels --like, prompt and export --test-image read images the same way: each says what the file
    claims instead of numpy's allocation traceback."""
    from roifile import ImagejRoi

    lying = _lying_tiff(tmp_path / "lying.tif")
    assert lying.stat().st_size < 300
    roiset = tmp_path / "one_RoiSet.zip"
    from microsam_fiji.rois.roiset import write_rois

    write_rois(roiset, [ImagejRoi.frompoints([[1, 1], [3, 1], [3, 3]], name="a")])
    for args in (["rois", str(lying)], ["labels", str(roiset), "--like", str(lying)],
                 ["prompt", str(lying), "--prompts", str(roiset), "--out", str(tmp_path / "p")],
                 ["export", "--checkpoint", str(DEMO_CHECKPOINT), "--name", "nuclei test", "--out",
                  str(tmp_path / "x.zip"), "--test-image", str(lying)]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "declares a 200000×200000 uint16 image of 74.5 GiB" in err, err
        assert "tile" not in err, err  # tiles cannot help with what cannot be read


def test_a_roiset_zip_bomb_is_refused(tmp_path, small_memory):
    from microsam_fiji.rois.roiset import read_roiset

    bomb = tmp_path / "bomb_RoiSet.zip"
    with zipfile.ZipFile(bomb, "w") as zout:
        zip_bomb_member(zout, "cell-0001.roi", 256 << 20)
    with pytest.raises(UserError, match="its ROIs expand to 256 MiB"):
        read_roiset(bomb)


# --- 4. member names outside the package -------------------------------------------------------------------------

def test_validate_flags_member_names_outside_the_package(package_zip, tmp_path, capsys):
    slipped = rewrite_zip(package_zip, tmp_path / "slip.zip")
    with zipfile.ZipFile(slipped, "a") as z:
        z.writestr("../outside.txt", b"x")
        z.writestr("/etc/absolute.txt", b"x")
    assert main(["validate", str(slipped), "--static"]) == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed.splitlines()[0], printed
    line = next(line for line in printed.splitlines() if "member names" in line)
    assert "[FAILED]" in line and "'../outside.txt'" in line and "'/etc/absolute.txt'" in line, line
    assert not (tmp_path.parent / "outside.txt").exists()
