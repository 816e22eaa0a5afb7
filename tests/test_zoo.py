"""Models as users have them: packages written by micro-sam's own exporter, Model Zoo ids and URLs (refused
offline with one line), and ``microsam-fiji models``."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError
from microsam_fiji.engines.segment import segment_with_scores
from microsam_fiji.models.demo import DEMO_CHECKPOINT
from microsam_fiji.models.load import load_model
from microsam_fiji.models.zoo_id import zoo_reference


@pytest.fixture(scope="session")
def micro_sam_crop(small_image) -> np.ndarray:
    return small_image[:128, :128].copy()


@pytest.fixture(scope="session")
def micro_sam_export(tmp_path_factory, micro_sam_crop) -> Path:
    """The demo checkpoint exported by micro-sam's own exporter (as the Model Zoo's micro-sam models are): it
    runs micro-sam's AIS on the test image through bioimageio.core and checks it (about a minute on a CPU)."""
    from micro_sam.bioimageio import export_sam_model
    from PIL import Image

    from microsam_fiji.core.micro_sam_compat import to_image

    folder = tmp_path_factory.mktemp("micro_sam_export")
    # our cover: micro-sam draws its own with matplotlib's default backend, Qt under Xvfb, which aborts here
    cover = folder / "cover.png"
    Image.fromarray(np.concatenate([to_image(micro_sam_crop)] * 2, axis=1)).save(cover)
    out = folder / "demo-by-micro-sam.zip"
    export_sam_model(micro_sam_crop, None, "vit_t", "demo exported by micro-sam", out,
                     checkpoint_path=str(DEMO_CHECKPOINT), covers=[str(cover)])
    return out


@pytest.fixture(scope="session")
def micro_sam_model(micro_sam_export):
    return load_model(micro_sam_export, device="cpu")


def _rdf(path: Path) -> dict:
    import yaml

    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def test_micro_sam_export_has_the_layout_we_read(micro_sam_export):
    rdf = _rdf(micro_sam_export)
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "PredictorAdaptor"
    assert [a["source"] for a in rdf["attachments"]] == ["vit_t_decoder.pt"]


@pytest.mark.parametrize("mode", ["apg", "ais"])
def test_micro_sam_export_segments_like_its_source_checkpoint(micro_sam_model, demo_model, micro_sam_crop, mode):
    assert micro_sam_model.model_type == "vit_t"
    assert micro_sam_model.params == {} and micro_sam_model.default_mode == "apg"  # micro-sam's defaults
    labels = segment_with_scores(micro_sam_crop, micro_sam_model, mode).labels
    expected = segment_with_scores(micro_sam_crop, demo_model, mode).labels
    assert labels.max() > 0
    np.testing.assert_array_equal(labels, expected)


@pytest.fixture(scope="module")
def fresh_demo():
    """The demo checkpoint loaded anew: the session's demo model has run, and micro-sam's decoder (left in
    training mode) updates its BatchNorm statistics on every run."""
    return load_model(DEMO_CHECKPOINT, device="cpu")


def _same_weights(a, b) -> bool:
    import torch

    sa, sb = a.predictor.model.state_dict(), b.predictor.model.state_dict()
    da, db = a.decoder.state_dict(), b.decoder.state_dict()
    return (sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)
            and da.keys() == db.keys() and all(torch.equal(da[k].cpu(), db[k].cpu()) for k in da))


def test_micro_sam_export_unpacked_folder_and_rdf_yaml(micro_sam_export, fresh_demo, tmp_path):
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(micro_sam_export) as z:
        z.extractall(folder)
    assert _same_weights(load_model(folder, device="cpu"), fresh_demo)
    assert _same_weights(load_model(folder / "rdf.yaml", device="cpu"), fresh_demo)


def test_micro_sam_export_with_the_decoder_only_as_attachment(micro_sam_export, fresh_demo, tmp_path):
    """Earlier micro-sam exports (the Model Zoo's 1.x versions) hold the SAM state as weights and the decoder
    as the ``*_decoder.pt`` attachment only."""
    import torch

    with zipfile.ZipFile(micro_sam_export) as z:
        state = torch.load(io.BytesIO(z.read("vit_t.pt")), weights_only=True)
    buf = io.BytesIO()
    torch.save(state["model_state"], buf)
    older = _rewrite(micro_sam_export, tmp_path / "older.zip", replace={"vit_t.pt": buf.getvalue()})
    assert _same_weights(load_model(older, device="cpu"), fresh_demo)


def _rewrite(src: Path, dst: Path, drop=(), replace=None) -> Path:
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename not in drop:
                zout.writestr(item.filename, replace.get(item.filename, zin.read(item.filename)),
                              compress_type=zipfile.ZIP_STORED)
    return dst


def test_micro_sam_export_without_decoder_is_refused_in_one_line(micro_sam_export, tmp_path, capsys):
    """A micro-sam package of SAM alone (prompt-based only): weights without ``decoder_state``, no decoder
    attachment, as micro-sam's exporter writes for a checkpoint without a decoder."""
    import torch
    import yaml

    with zipfile.ZipFile(micro_sam_export) as z:
        state = torch.load(io.BytesIO(z.read("vit_t.pt")), weights_only=True)
    buf = io.BytesIO()
    torch.save(state["model_state"], buf)
    rdf = _rdf(micro_sam_export)
    del rdf["attachments"]
    sam_only = _rewrite(micro_sam_export, tmp_path / "sam-only.zip", drop={"vit_t_decoder.pt"},
                        replace={"vit_t.pt": buf.getvalue(), "rdf.yaml": yaml.safe_dump(rdf)})
    with pytest.raises(UserError) as err:
        load_model(sam_only, device="cpu")
    message = str(err.value)
    assert "without an instance decoder: APG and AIS need one" in message
    assert "vit_b_lm (diplomatic-bug)" in message and "\n" not in message
    assert main(["segment", str(DEMO_CHECKPOINT.parent / "nuclei-256.tif"), "--model", str(sam_only),
                 "--out", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr().err.strip()
    assert printed.count("\n") == 0 and "instance decoder" in printed


@pytest.mark.parametrize("source, resolved", [
    ("diplomatic-bug", "diplomatic-bug"),
    ("faithful-chicken/1.1", "faithful-chicken/1.1"),
    ("https://bioimage.io/#/?id=diplomatic-bug", "diplomatic-bug"),
    ("https://bioimage.io/#/artifacts/affable-shark", "affable-shark"),
    ("https://example.org/models/my-model/rdf.yaml", "https://example.org/models/my-model/rdf.yaml"),
    ("vit_b_lm", None), ("model.pt", None), ("some/folder", None),
])
def test_zoo_references_are_told_apart_from_names_and_paths(source, resolved):
    assert zoo_reference(source) == resolved


@pytest.mark.parametrize("source", ["diplomatic-bug", "https://bioimage.io/#/?id=faithful-chicken",
                                    "https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io/"
                                    "diplomatic-bug/1.2/files/rdf.yaml"])
def test_zoo_id_or_url_without_network_is_refused_in_one_line(source, capsys, tmp_path):
    """No network here: bioimageio.spec's own loading fails, and the user gets the registry names' message."""
    with pytest.raises(UserError) as err:
        load_model(source, device="cpu")
    message = str(err.value)
    assert message == (f"no network: cannot download Model Zoo model '{source}'; pass a local checkpoint or "
                       "package instead (in a macro: model=[/path/to/model]; on the command line: --model PATH; in "
                       "Python: load_model(path))")
    assert main(["segment", str(DEMO_CHECKPOINT.parent / "nuclei-256.tif"), "--model", source,
                 "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"microsam-fiji: error: {message}"


def test_models_command_lists_registry_zoo_ids_cache_and_demo(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    for name in ("vit_t_lm", "vit_t_lm_decoder", "my_finetuned.pt"):
        (cache / "models" / name).write_bytes(b"x")
    monkeypatch.setenv("MICROSAM_CACHEDIR", str(cache))
    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "bundled" in rows["demo"]
    assert "diplomatic-bug" in rows["vit_b_lm"] and "download on first use" in rows["vit_b_lm"]
    assert "faithful-chicken" in rows["vit_t_lm"] and str(cache / "models") in rows["vit_t_lm"]
    assert "no (prompts only)" in rows["vit_b"]
    assert "in micro-sam's cache" in rows["my_finetuned.pt"]
    assert not any(name.endswith("_decoder") for name in rows)
