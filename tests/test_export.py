"""Export for the Model Zoo: offline with the arguments of docs/zoo.md's example, checks before any work, the model card
(citations, config.bioimageio, hashes, covers), weights that need micro-sam flagged, validate on what is no
micro-sam package, and the ImageJ macro that turns the package's maps into instances.

One package is exported (in a subprocess without BIOIMAGEIO_PERFORM_IO_CHECKS, pytorch_state_dict only, a
256x256 test image) and shared by the tests of this module."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from microsam_fiji.cli import main
from microsam_fiji.models.demo import DEMO_CHECKPOINT

DATA = Path(__file__).parent / "data"
CLI = Path(sys.executable).with_name("microsam-fiji")
# the README's export example (Publishing to the Model Zoo), with files of the tests
README_ARGS = ["--apg-param", "center=0.45",
               "--author", "Jane Doe; affiliation=Uni X; github_user=jdoe",
               "--maintainer", "Jane Doe; github_user=jdoe", "--uploader", "jane@uni-x.org; Jane Doe",
               "--version", "1.0.0", "--git-repo", "https://github.com/jdoe/nuclei",
               "--training-data", "some-dataset-id", "--license", "CC-BY-4.0", "--tag", "nuclei"]


def _rdf(path: Path) -> dict:
    import yaml

    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, np.ndarray]:
    """(package, the export's process, the test image)."""
    import tifffile
    from PIL import Image

    tmp = tmp_path_factory.mktemp("export")
    image = tifffile.imread(DATA / "img2d.tif")[:256, :256]
    tifffile.imwrite(tmp / "typical.tif", image)
    tifffile.imwrite(tmp / "typical_labels.tif", tifffile.imread(DATA / "mask2d.tif")[:256, :256].astype("uint16"))
    (tmp / "notes.md").write_text("Trained on the tests' nuclei.\n")
    Image.new("RGB", (64, 32), (0, 90, 200)).save(tmp / "extra_cover.png")
    out = tmp / "my-nuclei.zip"
    env = {k: v for k, v in os.environ.items() if k != "BIOIMAGEIO_PERFORM_IO_CHECKS"}
    done = subprocess.run(
        [str(CLI), "export", "--checkpoint", str(DEMO_CHECKPOINT), "--name", "My nuclei APG", "--out", str(out),
         "--test-image", str(tmp / "typical.tif"), "--test-labels", str(tmp / "typical_labels.tif"), *README_ARGS,
         "--weight-format", "pytorch_state_dict", "--cite", "Doe et al. Nuclei. 2025; doi=10.1234/nuclei.5",
         "--documentation", str(tmp / "notes.md"), "--cover", str(tmp / "extra_cover.png"),
         "--training", "epochs=10; batch_size=2; optimizer=AdamW"],
        capture_output=True, text=True, timeout=900, env=env)
    return out, done, image


# --- 1. offline export with github_user ---------------------------------------------------------------------------

def test_export_with_github_users_works_offline_without_the_io_setting(exported):
    out, done, _ = exported
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    rdf = _rdf(out)
    assert rdf["maintainers"][0]["github_user"] == "jdoe" and rdf["authors"][0]["github_user"] == "jdoe"


def test_the_offline_package_passes_validate_with_its_model_run_and_github_users_unverified(exported, capsys):
    """bioimageio.core's test_model on the pytorch_state_dict weights; without network bioimageio.spec cannot
    ask GitHub about the github_user names: validate tests everything else and says so in one warning."""
    out, _, _ = exported
    assert main(["validate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PASSED" in printed.splitlines()[0], printed
    warnings = [line.strip() for line in printed.splitlines() if line.strip().startswith("[warning]")]
    assert warnings[-1] == "[warning] GitHub users not verified: no network (the Model Zoo checks them on upload)", \
        printed
    assert "Run pytorch_state_dict inference for inputs with batch_size: 1 and size parameter n: 2" in printed
    assert "[FAILED]" not in printed


# --- 2. checks before any work --------------------------------------------------------------------------------

def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_export_refuses_bad_inputs_before_reading_the_checkpoint(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 64, 64), np.uint16), photometric="minisblack")
    tifffile.imwrite(tmp_path / "tiny.tif", np.zeros((20, 20), np.uint16))
    tifffile.imwrite(tmp_path / "img.tif", np.zeros((64, 64), np.uint16))
    tifffile.imwrite(tmp_path / "labels.tif", np.zeros((48, 64), np.uint16))
    (tmp_path / "file").write_text("x")
    missing = str(tmp_path / "missing.pt")  # read last: each error below must come before it
    base = ["export", "--checkpoint", missing, "--name", "valid name"]
    out = ["--out", str(tmp_path / "m.zip")]
    assert "lies under the file" in _refused(base + ["--out", str(tmp_path / "file" / "m.zip")], capsys)
    assert "5 planes" in _refused(base + out + ["--test-image", str(tmp_path / "stack.tif")], capsys)
    assert "at least 32x32" in _refused(base + out + ["--test-image", str(tmp_path / "tiny.tif")], capsys)
    assert "--test-labels" in _refused(base + out + ["--test-image", str(tmp_path / "img.tif"),
                                                     "--test-labels", str(tmp_path / "labels.tif")], capsys)
    assert "at most 1024" in _refused(base + out + ["--description", "x" * 1500], capsys)
    assert "--training-data" in _refused(base + out + ["--training-data", "not a dataset!"], capsys)
    assert "--cite" in _refused(base + out + ["--cite", "no reference"], capsys)
    assert "--cover" in _refused(base + out + ["--cover", str(tmp_path / "img.tif")], capsys)
    assert "checkpoint" in _refused(base + out, capsys)  # all good up to the checkpoint, which is missing
    assert not (tmp_path / "m.zip").exists()


def test_training_data_takes_a_zoo_id_a_doi_or_an_url():
    from microsam_fiji.zoo.metadata import training_data_source, upload_fields

    assert training_data_source("10.5281/zenodo.123") == "https://doi.org/10.5281/zenodo.123"
    assert training_data_source("https://example.org/data") == "https://example.org/data"
    assert training_data_source("some-dataset-id") is None
    assert str(upload_fields(None, None, None, None, "some-dataset-id/1")["training_data"].id) == "some-dataset-id"
    assert "training_data" not in upload_fields(None, None, None, None, "10.5281/zenodo.123")


# --- 3. tiling ---------------------------------------------------------------------------------------------------

def test_input_declaration_tells_consumers_to_pass_the_whole_image(exported):
    # bioimageio.spec 0.5 cannot forbid tiling (bioimageio.core tiles fixed and parameterised sizes alike), and no
    # halo makes tiles agree: the declaration says so instead of promising tiles work
    rdf = _rdf(exported[0])
    assert rdf["inputs"][0]["description"].startswith("Whole image only, no tiles")
    assert not any(a.get("halo") for a in rdf["outputs"][0]["axes"])


# --- 4. weights that need micro-sam ----------------------------------------------------------------------------

def test_state_dict_only_export_is_flagged_in_export_validate_and_documentation(exported):
    from microsam_fiji.zoo.validate import upload_checks

    out, done, _ = exported
    assert "warning: only pytorch_state_dict weights" in done.stdout and "micro-sam" in done.stdout, done.stdout
    flagged = [c for c in upload_checks(out) if "only pytorch_state_dict" in c.name]
    assert flagged and flagged[0].warning and flagged[0].passed
    with zipfile.ZipFile(out) as z:
        doc = z.read(_rdf(out)["documentation"]["source"]).decode()
    assert "`torchscript` and `onnx` are standalone" in doc and "`pytorch_state_dict` needs micro-sam" in doc


# --- 6. model card -------------------------------------------------------------------------------------------

def test_model_card_fields_citations_and_hashes(exported):
    out, _, _ = exported
    rdf = _rdf(out)
    card = rdf["config"]["bioimageio"]
    assert card["reproducibility_tolerance"] and card["task"] == "instance segmentation"
    assert card["architecture_type"].startswith("SAM vit_t") and card["model_parameter_count"] > 5_000_000
    assert "s per image on CPU" in card["inference_time"]
    # the test image is a local file: no Model Zoo dataset for the spec's Evaluation (not the --git-repo URL);
    # the scores are in the documentation's Validation section
    assert card["evaluations"] == []
    import tifffile

    truth = tifffile.imread(DATA / "mask2d.tif")[:256, :256]
    assert card["training"]["training_epochs"] == 10 and card["training"]["optimizer"] == "AdamW"
    dois = {c.get("doi") for c in rdf["cite"]}
    urls = {c.get("url") for c in rdf["cite"]}
    assert {"10.1038/s41592-024-02580-4", "10.48550/arXiv.2304.02643", "10.1234/nuclei.5"} <= dois, dois
    assert "https://arxiv.org/abs/2306.14289" in urls and "https://openreview.net/forum?id=xFO3DFZN45" in urls
    weights = rdf["weights"]["pytorch_state_dict"]
    for entry in (weights["architecture"], rdf["inputs"][0]["test_tensor"],
                  rdf["outputs"][0]["test_tensor"]):
        assert len(entry.get("sha256", "")) == 64, entry
    assert len(rdf["covers"]) == 2 and rdf["covers"][1]["source"] == "extra_cover.png"
    with zipfile.ZipFile(out) as z:
        doc = z.read(rdf["documentation"]["source"]).decode()
    assert "## From the authors\nTrained on the tests' nuclei." in doc and "arXiv:2306.14289" in doc
    validation = " ".join(doc.split("## Validation\n")[1].split("\n## ")[0].split())
    assert f"test image ({len(np.unique(truth[truth > 0]))} objects)" in validation and "(mSA" in validation
    assert "Training data: the Model Zoo dataset `some-dataset-id`" in " ".join(doc.split())


def test_cover_outlines_stay_closed_when_downscaled(tmp_path):
    from PIL import Image
    from scipy import ndimage as ndi

    from microsam_fiji.zoo.card import COVER_PANEL, OUTLINE_COLOR, write_cover

    yy, xx = np.mgrid[:512, :512]
    labels = np.zeros((512, 512), np.int32)
    centers = [(80 + 120 * i, 80 + 120 * j) for i in range(4) for j in range(4)]
    for k, (cy, cx) in enumerate(centers, 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 40 ** 2] = k
    plane = (labels > 0).astype(np.uint16) * 1000 + 100
    cover = np.asarray(Image.open(write_cover(tmp_path / "cover.png", plane, labels)).convert("RGB"))
    outline = np.all(cover[:, COVER_PANEL:] == OUTLINE_COLOR, axis=-1)
    inside = ndi.binary_fill_holes(outline) & ~outline  # only closed outlines enclose pixels
    n_enclosed = ndi.label(inside)[1]
    assert n_enclosed == len(centers), n_enclosed


# --- 5. validate on what is no micro-sam package ----------------------------------------------------------------

def _one_line_refusal(path: Path, capsys, *expected: str) -> None:
    err = _refused(["validate", str(path)], capsys)
    for text in expected:
        assert text in err, err


def test_validate_names_what_is_no_package(tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    with zipfile.ZipFile(tmp_path / "RoiSet.zip", "w") as z:
        z.writestr("0001-0002.roi", b"Iout")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("notes.txt", "hello")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "folder").mkdir()
    _one_line_refusal(tmp_path / "empty.zip", capsys, "empty zip")
    _one_line_refusal(tmp_path / "RoiSet.zip", capsys, "ImageJ ROI set", "microsam-fiji labels")
    _one_line_refusal(tmp_path / "other.zip", capsys, "zip without rdf.yaml")
    _one_line_refusal(tmp_path / "notes.txt", capsys, "not a Model Zoo package")
    _one_line_refusal(tmp_path / "folder", capsys, "has no rdf.yaml")


def test_validate_unparsable_rdf_gives_the_parse_error_not_itself(tmp_path, capsys):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "rdf.yaml").write_text("name: [unclosed\n")
    status = main(["validate", str(tmp_path / "pkg")])
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert status in (1, 2) and "Traceback" not in text
    assert "run 'microsam-fiji validate'" not in text and "microsam-fiji validate" not in text, text


def test_damaged_member_is_reported_as_damaged(exported, tmp_path, capsys):
    from microsam_fiji.core.errors import UserError
    from microsam_fiji.models.package import read_package

    src = exported[0]
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(damaged, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item.filename), compress_type=zipfile.ZIP_STORED)
    with zipfile.ZipFile(damaged) as z:
        info = z.getinfo("sam_prompt_encoder_mask_decoder.pt")
        name_len, extra_len = len(info.filename.encode()), len(info.extra)
    data = bytearray(damaged.read_bytes())
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0xFF  # one byte of its data
    damaged.write_bytes(bytes(data))
    _one_line_refusal(damaged, capsys, "damaged", "sam_prompt_encoder_mask_decoder.pt")
    with pytest.raises(UserError, match="is damaged"):
        read_package(damaged)


def _foreign_package(folder: Path) -> Path:
    """A valid bioimageio model (a tiny TorchScript network) that is no micro-sam package."""
    import torch
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as spec

    class Double(torch.nn.Module):
        def forward(self, x):
            return x * 2.0

    torch.jit.script(Double()).save(str(folder / "double.pt"))
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    np.save(folder / "in.npy", x)
    np.save(folder / "out.npy", x * 2)
    (folder / "README.md").write_text("# Doubles\nA tiny test model.\n")
    axes_in = [spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier("c")]),
               spec.SpaceInputAxis(id=spec.AxisId("y"), size=16), spec.SpaceInputAxis(id=spec.AxisId("x"), size=16)]
    axes_out = [spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier("c")]),
                spec.SpaceOutputAxis(id=spec.AxisId("y"), size=16), spec.SpaceOutputAxis(id=spec.AxisId("x"), size=16)]
    descr = spec.ModelDescr(
        name="tiny doubling model", description="doubles its input", authors=[spec.Author(name="Test")],
        cite=[spec.CiteEntry(text="none", doi=spec.Doi("10.1234/x"))], license=spec.LicenseId("MIT"),
        documentation=spec.FileDescr(source=folder / "README.md"),
        inputs=[spec.InputTensorDescr(id=spec.TensorId("x"), axes=axes_in,
                                      test_tensor=spec.FileDescr(source=folder / "in.npy"))],
        outputs=[spec.OutputTensorDescr(id=spec.TensorId("y"), axes=axes_out,
                                        test_tensor=spec.FileDescr(source=folder / "out.npy"))],
        weights=spec.WeightsDescr(torchscript=spec.TorchscriptWeightsDescr(
            source=folder / "double.pt", pytorch_version=spec.Version(torch.__version__.split("+")[0]))))
    return save_bioimageio_package(descr, output_path=folder / "foreign.zip")


def test_foreign_valid_zoo_model_is_reported_as_such(tmp_path, capsys):
    from microsam_fiji.zoo.validate import FOREIGN

    package = _foreign_package(tmp_path)
    assert main(["validate", str(package)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"foreign.zip: {FOREIGN}", first


# --- 7. the ImageJ macro -----------------------------------------------------------------------------------------

def test_imagej_macro_turns_the_maps_into_micro_sam_ais_instances(exported, demo_model, tmp_path):
    """The macro the package carries, in ImageJ 1.x, on the package's own sample output maps, against
    micro-sam's AIS on the test image (the same maps: the sample output is micro-sam's decoder output)."""
    import tifffile

    from microsam_fiji.engines.segment import segment_with_scores
    from microsam_fiji.zoo.postprocessing import MACRO_FILE

    from helpers.imagej import require_imagej, xvfb_run
    from helpers.instance_match import worst_matches

    require_imagej(display=False)
    out, _, image = exported
    rdf = _rdf(out)
    postprocess = rdf["config"]["deepimagej"]["prediction"]["postprocess"][0]
    assert postprocess == {"spec": "ij.IJ::runMacroFile", "kwargs": MACRO_FILE}
    assert any(a["source"] == MACRO_FILE and len(a["sha256"]) == 64 for a in rdf["attachments"])
    with zipfile.ZipFile(out) as z:
        z.extract(MACRO_FILE, tmp_path)
        z.extract(rdf["outputs"][0]["sample_tensor"]["source"], tmp_path)
    maps = tmp_path / rdf["outputs"][0]["sample_tensor"]["source"]
    driver = tmp_path / "driver.ijm"
    driver.write_text(f'runMacro("{tmp_path / MACRO_FILE}", "{maps} {tmp_path / "labels.tif"}");\n')
    done = subprocess.run([*xvfb_run(screen=False), str(CLI), "fiji", "--macro", str(driver), "--batch"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and (tmp_path / "labels.tif").exists(), done.stdout[-2000:] + done.stderr[-2000:]
    labels = tifffile.imread(tmp_path / "labels.tif").astype(np.int64)
    reference = segment_with_scores(image, demo_model, "ais").labels
    n_ij, n_ref = len(np.unique(labels[labels > 0])), len(np.unique(reference[reference > 0]))
    ious = np.array([iou for iou, _ in worst_matches(reference, labels)])
    print(f"ImageJ macro: {n_ij} objects, micro-sam AIS: {n_ref}; mean best IoU {ious.mean():.3f}")
    assert n_ref > 3 and abs(n_ij - n_ref) <= max(2, 0.1 * n_ref), (n_ij, n_ref)
    assert ious.mean() >= 0.9, ious
