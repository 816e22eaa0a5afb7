"""Upload-ready Model Zoo packages of every model size: a vit_b-shaped export with all the upload options passes
``microsam-fiji validate`` without a warning and loads back identical; ``validate`` flags what the Model Zoo would
refuse; vit_l / vit_h on weight shapes alone."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from microsam_fiji.cli import main
from microsam_fiji.engines.segment import segment_with_scores
from microsam_fiji.models.load import load_model

from helpers.models import build_random_checkpoint

UPLOAD = dict(authors=["Test Author; affiliation=Test Lab; github_user=testauthor"],
              maintainers=["Test Maintainer; github_user=testmaintainer"], uploader="test@example.org; Test Uploader",
              version="0.1.0", git_repo="https://github.com/example/nuclei-model", training_data="example-dataset")


@pytest.fixture(scope="module")
def vit_b_checkpoint(tmp_path_factory) -> Path:
    return build_random_checkpoint(tmp_path_factory.mktemp("vit_b") / "random_vit_b.pt", "vit_b")


@pytest.fixture(scope="module")
def vit_b_crop(stardist_image, stardist_mask) -> tuple[np.ndarray, np.ndarray]:
    return stardist_image[:64, :96].copy(), stardist_mask[:64, :96].copy()


@pytest.fixture(scope="module")
def vit_b_export(vit_b_checkpoint, vit_b_crop, tmp_path_factory):
    """A random vit_b exported with every upload option and ground truth, pytorch_state_dict only (a vit_b
    forward pass costs seconds on a CPU; the other formats are tested on the demo model)."""
    from microsam_fiji.zoo.export import export_package_report

    image, truth = vit_b_crop
    out = tmp_path_factory.mktemp("vit_b_export") / "random-vit_b.zip"
    return export_package_report(vit_b_checkpoint, out, name="random vit_b shape test", test_image=image,
                                 test_labels=truth, weight_formats=("pytorch_state_dict",), **UPLOAD)


def _rdf(path: Path) -> dict:
    import yaml

    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def _rewrite(src: Path, dst: Path, replace: dict) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, replace.get(item.filename, zin.read(item.filename)),
                          compress_type=zipfile.ZIP_STORED)
    return dst


@pytest.mark.slow
def test_vit_b_export_passes_static_validate_with_every_upload_point(vit_b_export, capsys):
    rdf = _rdf(vit_b_export.path)
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["model_type"] == "vit_b"
    assert "id" not in rdf
    assert rdf["maintainers"][0]["github_user"] == "testmaintainer"
    assert rdf["authors"][0] == {"name": "Test Author", "affiliation": "Test Lab", "github_user": "testauthor"}
    assert rdf["uploader"]["email"] == "test@example.org" and rdf["version"] == "0.1.0"
    assert rdf["training_data"]["id"] == "example-dataset"
    # --static: a vit_b's test_model (a dozen 1024² passes, two minutes here) is what a publisher editing the
    # metadata skips; the model runs of a package are validated on the demo model (test_packaging.py, and
    # test_export.py for pytorch_state_dict with GitHub users offline)
    assert main(["validate", str(vit_b_export.path), "--static"]) == 0
    printed = capsys.readouterr().out
    assert "PASSED" in printed.splitlines()[0]
    warnings = [line.strip() for line in printed.splitlines() if line.strip().startswith("[warning]")]
    # this package has only pytorch_state_dict weights (a vit_b pass is slow on a CPU), which the standalone
    # check names; and the model was not run
    assert len(warnings) == 2 and "only pytorch_state_dict weights" in warnings[0], printed
    assert warnings[1].startswith("[warning] model not run (--static)"), printed
    assert "format validation" in printed and "test_model" in printed, printed
    assert "[FAILED]" not in printed, printed
    for point in ("upload: covers at most 500 KB", "upload: documentation has Description, Intended use, "
                  "Validation, Citation", "upload: no id", "upload: only built-in pre/postprocessing",
                  "upload: input declarations match"):
        assert point in printed, printed
    with zipfile.ZipFile(vit_b_export.path) as z:
        doc = z.read("documentation.md").decode()
    assert "mean segmentation accuracy (mSA" in doc and "objects" in doc
    assert "test_image_LICENSE.txt" not in doc  # the user's own test image: no StarDist licence note


def _same_weights(a, b) -> bool:
    import torch

    sa, sb = a.predictor.model.state_dict(), b.predictor.model.state_dict()
    da, db = a.decoder.state_dict(), b.decoder.state_dict()
    return (sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
            and da.keys() == db.keys() and all(torch.equal(da[k], db[k]) for k in da))


@pytest.mark.slow
def test_vit_b_package_loads_back_identical_and_runs_both_engines(vit_b_export, vit_b_checkpoint, vit_b_crop):
    # torch passes: the backends are tested on their own (test_backends.py); an ONNX export of vit_b's graphs
    # here would only add a minute
    package = load_model(vit_b_export.path, device="cpu", backend="torch")
    assert package.model_type == "vit_b"
    assert _same_weights(package, load_model(vit_b_checkpoint, device="cpu", backend="torch"))
    from microsam_fiji.engines.fast.decoder import supported

    assert supported(package.predictor.model)  # the fast engine's own mask decoder, not SAM's fallback
    image = vit_b_crop[0]
    fast = segment_with_scores(image, package, "apg", engine="fast", tile_threshold=None).labels
    reference = segment_with_scores(image, package, "apg", engine="micro-sam", tile_threshold=None).labels
    np.testing.assert_array_equal(fast, reference)


def test_validate_flags_oversized_cover_missing_section_id_and_user_name_author(vit_b_export, tmp_path):
    import getpass

    import yaml
    from PIL import Image

    from microsam_fiji.zoo.validate import upload_checks

    rdf = _rdf(vit_b_export.path)
    cover_name = rdf["covers"][0]["source"]
    noise = np.random.default_rng(0).integers(0, 256, (600, 1200, 3), dtype=np.uint8)  # 2:1, ~2 MB as PNG
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    with zipfile.ZipFile(vit_b_export.path) as z:
        doc = z.read("documentation.md").decode()
    doc = doc.replace("## Citation", "## References")
    rdf["id"] = "my-own-id"
    rdf["authors"] = [{"name": getpass.getuser()}]
    del rdf["maintainers"]
    for entry in rdf["covers"]:
        entry.pop("sha256", None)
    rdf["documentation"].pop("sha256", None) if isinstance(rdf["documentation"], dict) else None
    flawed = _rewrite(vit_b_export.path, tmp_path / "flawed.zip",
                      {cover_name: buf.getvalue(), "documentation.md": doc.encode(), "rdf.yaml": yaml.safe_dump(rdf)})
    checks = {c.name: c for c in upload_checks(flawed)}
    warned = [name for name, c in checks.items() if c.warning]
    assert any("over the Model Zoo's 500 KB" in n for n in warned), warned
    assert any("lacks the section(s) Citation" in n for n in warned), warned
    assert any("id 'my-own-id' is set" in n for n in warned), warned
    assert any(f"the only author is '{getpass.getuser()}'" in n and "no maintainers" in n for n in warned), warned
    assert all(c.passed for c in checks.values())  # warnings, not failures


def test_export_refuses_malformed_people_options_in_one_line(random_checkpoint, tmp_path, capsys):
    argv = ["export", "--checkpoint", str(random_checkpoint), "--name", "people test", "--out",
            str(tmp_path / "x.zip"), "--maintainer", "Jane; shoe_size=42"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--maintainer 'Jane; shoe_size=42'" in err and "github_user=USER" in err
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("model_type", ["vit_l", "vit_h"])
def test_large_models_map_onto_the_package_architecture_by_shape(model_type):
    """vit_l / vit_h without allocating them (meta tensors): the type is inferred from the weights, the package
    weights fit the packaged architecture key for key and shape for shape, and loading maps them back."""
    import torch
    from micro_sam.util import sam_model_registry

    from microsam_fiji.models.checkpoint import infer_model_type
    from microsam_fiji.models.package import PackageContents, micro_sam_checkpoint
    from microsam_fiji.models.package_config import DECODER_PREFIX, ENCODER_PREFIX, SAM_ATTACHMENT
    from microsam_fiji.zoo.architecture import InstanceMaps
    from microsam_fiji.zoo.description import micro_sam_config
    from microsam_fiji.zoo.export import uses_conv_transpose
    from microsam_fiji.zoo.weights import package_weights as _package_weights

    with torch.device("meta"):
        sam = sam_model_registry[model_type]()
        maps = InstanceMaps(model_type=model_type)
    model_state = sam.state_dict()
    decoder_state = {k[len(DECODER_PREFIX):]: v for k, v in maps.state_dict().items()
                     if not k.startswith(ENCODER_PREFIX)}
    assert infer_model_type(model_state) == model_type
    assert not uses_conv_transpose(decoder_state)
    weights = _package_weights(model_state, decoder_state)
    architecture = maps.state_dict()
    assert weights.keys() == architecture.keys()
    assert all(weights[k].shape == architecture[k].shape for k in weights)
    config = micro_sam_config(model_type, "apg", {}, {})
    contents = PackageContents(descr=None, config=config, weights=weights,
                               sam_parts={k: v for k, v in model_state.items() if not k.startswith("image_encoder.")})
    back = micro_sam_checkpoint(contents)
    assert back["model_state"].keys() == model_state.keys() and back["decoder_state"].keys() == decoder_state.keys()
    assert config["sam_attachment"] == SAM_ATTACHMENT
