"""What a Model Zoo consumer meets in an exported package: the whole-image rule where a consumer reads first, the
deepImageJ macro in ImageJ without a display, the model card (citations, training data, evaluation) and its Python
snippet for instances without micro-sam, the pydantic pin, and one-line messages for URLs and ids that are no local
package. Every test uses the session's demo export (``package_zip``) or none."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from microsam_fiji.cli import main


def _rdf(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def _documentation(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read(_rdf(path)["documentation"]["source"]).decode()


def _micro_sam_ais(maps: np.ndarray, ais: dict) -> np.ndarray:
    """micro-sam's AIS on a package's maps (3, H, W): InstanceSegmentationWithDecoder.generate's steps (the
    foreground smoothed, then torch_em's seeded watershed), the reference for the macro and the snippet."""
    import bioimage_cpp as bic
    from torch_em.util.segmentation import watershed_from_center_and_boundary_distances

    foreground = bic.filters.gaussian_smoothing(maps[0].astype(np.float32), ais["foreground_smoothing"])
    return watershed_from_center_and_boundary_distances(
        maps[1], maps[2], foreground, ais["center_distance_threshold"], ais["boundary_distance_threshold"],
        ais["foreground_threshold"], ais["distance_smoothing"], ais["min_size"])


def _agreement(reference: np.ndarray, labels: np.ndarray) -> tuple[int, int, float]:
    from helpers.instance_match import worst_matches

    ious = [iou for iou, _ in worst_matches(reference, labels)]
    return (len(np.unique(reference[reference > 0])), len(np.unique(labels[labels > 0])), float(np.mean(ious)))


# --- tiling: as hard to do by mistake as bioimageio.spec 0.5 allows ---------------------------------------------

def test_package_tells_every_consumer_to_pass_whole_images(package_zip):
    """The spec cannot say "whole image only": the rule opens the model's and the input's description and the
    documentation, and the spatial axes are declared not concatenable (the spec's "not blockwise"). Sizes stay
    min 32 / step 1 (the only pair every image fits unpadded) and no halo (core pads whole images by it)."""
    from bioimageio.spec import load_model_description

    from microsam_fiji.zoo.tensors import MIN_SIZE

    rdf = _rdf(package_zip)
    assert rdf["description"].startswith("Whole images only, no tiles"), rdf["description"]
    image = rdf["inputs"][0]
    assert image["description"].startswith("Whole image only, no tiles or blocks"), image["description"]
    spatial = [a for a in image["axes"] if a["type"] == "space"]
    assert [(a["id"], a["concatenable"], a["size"]) for a in spatial] == [
        ("y", False, {"min": MIN_SIZE, "step": 1}), ("x", False, {"min": MIN_SIZE, "step": 1})]
    assert not any("halo" in a for a in rdf["outputs"][0]["axes"])
    descr = load_model_description(package_zip, perform_io_checks=False)
    assert [a.concatenable for a in descr.inputs[0].axes if a.type == "space"] == [False, False]
    description = _documentation(package_zip).split("## Description\n")[1].split("\n## ")[0]
    assert "**Whole images only.**" in description and "`blocksize_parameter`" in description


# --- the deepImageJ macro in ImageJ without a display ------------------------------------------------------------

def _run_macro_headless(macro: Path, argument: str) -> subprocess.CompletedProcess:
    import shutil

    from microsam_fiji.imagej.jvm import find_ij_jar

    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    return subprocess.run([shutil.which("java") or "java", "-Djava.awt.headless=true", "-jar", str(find_ij_jar()),
                           "-batch", str(macro), argument], capture_output=True, text=True, timeout=300, env=env)


def test_imagej_macro_gives_labels_without_a_display(package_zip, tmp_path):
    """``java -jar ij.jar -batch`` headless (ImageJ 1.53t's open() and run() need a display): labels as micro-sam's
    AIS finds them in the same maps; a bad argument is one line, no Java trace."""
    import tifffile

    from microsam_fiji.zoo.postprocessing import MACRO_FILE

    from helpers.imagej import require_imagej

    require_imagej(display=False)
    rdf = _rdf(package_zip)
    maps_name = rdf["outputs"][0]["sample_tensor"]["source"]
    with zipfile.ZipFile(package_zip) as z:
        z.extract(MACRO_FILE, tmp_path)
        z.extract(maps_name, tmp_path)
    macro, labels_path = tmp_path / MACRO_FILE, tmp_path / "labels.tif"
    done = _run_macro_headless(macro, f"{tmp_path / maps_name} {labels_path}")
    printed = done.stdout + done.stderr
    assert "Exception" not in printed and labels_path.exists(), printed[-3000:]
    maps = tifffile.imread(tmp_path / maps_name)
    reference = _micro_sam_ais(maps, rdf["config"]["micro_sam"]["ais"])
    n_ref, n_ij, mean_iou = _agreement(reference, tifffile.imread(labels_path).astype(np.int64))
    print(f"headless ImageJ macro: {n_ij} objects, micro-sam AIS on the same maps: {n_ref}; mean IoU {mean_iou:.4f}")
    assert n_ref > 3 and n_ij == n_ref and mean_iou >= 0.98

    missing = tmp_path / "missing.tif"
    done = _run_macro_headless(macro, f"{missing} {tmp_path / 'other.tif'}")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines == [f"micro-sam maps: '{missing}' not found: pass the maps TIFF's path (no spaces)"], lines
    assert not (tmp_path / "other.tif").exists()


# --- the model card ------------------------------------------------------------------------------------------------

def test_citations_are_citations(package_zip):
    from microsam_fiji.zoo.card import APG_PAPER_URL

    cite = {c["text"]: c.get("url") or c.get("doi") for c in _rdf(package_zip)["cite"]}
    apg = [text for text, ref in cite.items() if ref == APG_PAPER_URL]
    assert apg == ["Archit et al. Revisiting foundation models for cell instance segmentation. MIDL (2026)"], cite
    assert not any("as micro-sam cites it" in text for text in cite)
    assert "For APG: Archit et al. Revisiting foundation models" in _documentation(package_zip)


@pytest.mark.parametrize("given, shown", [
    ("some-dataset-id", "Training data: the Model Zoo dataset `some-dataset-id` "
                        "(https://bioimage.io/#/?id=some-dataset-id)."),
    ("10.5281/zenodo.123", "Training data: https://doi.org/10.5281/zenodo.123."),
    (None, "Training data: not stated by the exporter (ask the authors)."),
])
def test_documentation_names_the_training_data_not_the_option(given, shown):
    from microsam_fiji.core.params import default_params
    from microsam_fiji.zoo.documentation import documentation

    text = documentation(name="Nuclei model", model_type="vit_t", mode="apg", apg=default_params("apg"),
                         ais=default_params("ais"), origin="my.tif", shape=(64, 64), n_objects=3, diffs={},
                         skipped={}, training_data=given)
    description = text.split("## Description\n")[1].split("\n## ")[0]
    assert shown in " ".join(description.split()), description
    assert "Model Zoo dataset id, DOI or URL" not in text


def test_evaluation_only_with_a_model_zoo_dataset():
    """The spec's Evaluation names a Model Zoo dataset and its source: a local test image (or the built-in crop)
    has neither, so the card carries none (the scores are in the documentation's Validation section)."""
    from microsam_fiji.zoo.card import bioimageio_config

    scores = {"msa": 0.5, "sa50": 0.8, "sa75": 0.4, "n_predicted": 30, "n_true": 32}
    assert bioimageio_config(model_type="vit_t", scores=scores).evaluations == []
    found = bioimageio_config(model_type="vit_t", scores=scores,
                              evaluation_dataset=("nuclei-test-set", "https://example.org/nuclei")).evaluations
    assert str(found[0].dataset_id) == "nuclei-test-set" and str(found[0].dataset_source).startswith("https://example")


def test_python_snippet_segments_the_test_output_without_micro_sam(package_zip, tmp_path):
    """The documentation's snippet, run as a user would (in the unpacked package, numpy / scipy / scikit-image
    only), against micro-sam's AIS on the same maps."""
    rdf = _rdf(package_zip)
    code = re.findall(r"```python\n(.*?)```", _documentation(package_zip), flags=re.S)
    assert len(code) == 1, "one Python snippet"
    maps_name = rdf["outputs"][0]["test_tensor"]["source"]
    with zipfile.ZipFile(package_zip) as z:
        z.extract(maps_name, tmp_path)
    check = ("\nimport sys\nnp.save('labels.npy', labels)\n"
             "assert not [m for m in sys.modules if m.split('.')[0] in ('micro_sam', 'microsam_fiji', 'torch_em', "
             "'torch', 'bioimage_cpp', 'vigra')], 'imports micro-sam or its libraries'\n")
    done = subprocess.run([sys.executable, "-c", code[0] + check], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    labels = np.load(tmp_path / "labels.npy")
    assert done.stdout.strip() == f"{labels.max()} objects"
    reference = _micro_sam_ais(np.load(tmp_path / maps_name)[0], rdf["config"]["micro_sam"]["ais"])
    n_ref, n_snippet, mean_iou = _agreement(reference, labels)
    assert n_ref > 3 and n_snippet == n_ref and mean_iou >= 0.99, (n_ref, n_snippet, mean_iou)


# --- the pydantic pin ------------------------------------------------------------------------------------------------

def test_documentation_and_validate_name_the_pydantic_pin(package_zip, monkeypatch):
    """pydantic 2.14 (what a fresh 'pip install bioimageio.core' brings) makes bioimageio.spec 0.5.12 reject every
    model: the documentation names the pin, validate says it first (before its stages run) and keeps a warning."""
    import importlib.metadata

    from microsam_fiji.zoo.validate import validate_package

    assert "pip install \"bioimageio.core>=0.11,<0.12\" \"pydantic<2.14\"" in _documentation(package_zip)
    lines: list[str] = []
    result = validate_package(package_zip, static=True, progress=lines.append)
    assert not any("pydantic" in line for line in lines) and lines[0].startswith("micro-sam parts"), lines
    assert result.passed and not any("pydantic" in c.name for c in result.checks)
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "2.14.1" if name == "pydantic" else real_version(name))
    lines.clear()
    result = validate_package(package_zip, static=True, progress=lines.append)
    assert lines[0] == (f"pydantic 2.14.1 is installed, with which bioimageio.spec {real_version('bioimageio.spec')} "
                        "rejects model descriptions (an upstream issue): pip install 'pydantic<2.14'"), lines
    assert result.checks[0].name == lines[0] and result.checks[0].warning
    assert result.passed  # the installed pydantic is 2.13: the checks themselves pass


# --- one line for what is no local package ---------------------------------------------------------------------------

def test_package_with_weights_only_by_url_names_the_url_offline(package_zip, tmp_path, capsys):
    """A package may name its weights by URL: without network (a host that never resolves) the error names the URL
    in one line, with no download progress bar broken off."""
    import tifffile

    url = "https://models.invalid/nuclei/weights_pytorch_state_dict.pt"
    rdf = _rdf(package_zip)
    rdf["weights"]["pytorch_state_dict"]["source"] = url
    folder = tmp_path / "urlpkg"
    folder.mkdir()
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
    tifffile.imwrite(tmp_path / "image.tif", np.zeros((64, 64), np.uint8))
    assert main(["segment", str(tmp_path / "image.tif"), "--model", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"microsam-fiji: error: no network: cannot download the weights file of 'urlpkg' from {url}; pass a "
                   "local checkpoint or package instead (in a macro: model=[/path/to/model]; on the command line: "
                   "--model PATH; in Python: load_model(path))\n"), err
    assert main(["validate", str(folder), "--static"]) == 1
    captured = capsys.readouterr()
    assert f"error: no network: cannot download the weights file of 'urlpkg' from {url}" in captured.out
    assert "Downloading" not in captured.err and "B/s" not in captured.err, captured.err


@pytest.mark.parametrize("given, shown", [
    ("some-model-id", "'some-model-id' is not a file here but reads as a Model Zoo id: validate checks a local "
                      "package; download it first ('bioimageio package some-model-id model.zip', with network), "
                      "then 'microsam-fiji validate model.zip'"),
    ("https://bioimage.io/#/?id=affable-shark", "'https://bioimage.io/#/?id=affable-shark' is not a file here but "
     "reads as a Model Zoo URL: validate checks a local package; download it first ('bioimageio package "
     "affable-shark model.zip', with network), then 'microsam-fiji validate model.zip'"),
    ("https://example.org/models/rdf.yaml", "'https://example.org/models/rdf.yaml' is not a file here but reads as "
     "a Model Zoo URL: validate checks a local package; download it first ('bioimageio package "
     "https://example.org/models/rdf.yaml model.zip', with network), then 'microsam-fiji validate model.zip'"),
    ("missing/model.zip", "package 'missing/model.zip' not found: check the path (a zip, its unpacked folder or "
                          "its rdf.yaml)"),
])
def test_validate_names_an_id_or_url_as_given(given, shown, capsys):
    assert main(["validate", given]) == 2
    assert capsys.readouterr().err == f"microsam-fiji: error: {shown}\n"
