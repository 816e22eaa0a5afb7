"""Model loading: checkpoints (type inferred or given), registry names (network refused here), bad sources."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from microsam_fiji.core.errors import UserError
from microsam_fiji.models.checkpoint import infer_model_type
from microsam_fiji.models.demo import DEMO_CHECKPOINT
from microsam_fiji.models.load import load_model


def test_checkpoint_model_type_is_inferred_from_weights(random_checkpoint):
    model = load_model(random_checkpoint, device="cpu")
    assert model.model_type == "vit_t"
    assert model.source == str(random_checkpoint)
    # the decoder really carries the checkpoint's weights, not a fresh initialisation
    saved = torch.load(random_checkpoint, map_location="cpu")["decoder_state"]
    name = next(k for k in saved if k.endswith("weight"))
    loaded = dict(model.torch_decoder().named_parameters())  # the torch module the onnx graph was made from
    assert torch.equal(loaded[name].detach().cpu(), saved[name])


def test_explicit_model_type_matching_the_weights_is_accepted(random_checkpoint):
    assert load_model(random_checkpoint, model_type="vit_t", device="cpu").model_type == "vit_t"


def test_explicit_model_type_contradicting_the_weights_is_refused(random_checkpoint):
    with pytest.raises(UserError, match="does not match the checkpoint, whose weights are vit_t"):
        load_model(random_checkpoint, model_type="vit_b", device="cpu")


def test_infer_model_type_from_sam_vit_shapes():
    for dim, name in ((768, "vit_b"), (1024, "vit_l"), (1280, "vit_h")):
        state = {"image_encoder.patch_embed.proj.weight": torch.zeros(dim, 3, 16, 16)}
        assert infer_model_type(state) == name


def test_checkpoint_without_decoder_is_refused_for_apg(random_checkpoint, tmp_path):
    state = torch.load(random_checkpoint, map_location="cpu")
    path = tmp_path / "sam_only.pt"
    torch.save({"model_state": state["model_state"]}, path)
    with pytest.raises(UserError, match="no instance decoder"):
        load_model(path, device="cpu")


def test_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_model(path, device="cpu")


def test_missing_file_names_the_path():
    with pytest.raises(UserError, match="model file 'nowhere/model.pt' not found"):
        load_model("nowhere/model.pt")


def test_unknown_model_type_option():
    with pytest.raises(UserError, match="unknown model type 'vit_x'"):
        load_model("demo", model_type="vit_x")


def test_registry_name_without_network_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROSAM_CACHEDIR", str(tmp_path))  # nothing cached: micro-sam must download
    with pytest.raises(UserError) as err:
        load_model("vit_t_lm", device="cpu")
    assert str(err.value).startswith("no network:")
    assert "pass a local checkpoint or package" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_registry_name_lists_models_with_a_decoder():
    with pytest.raises(UserError, match="unknown model 'vit_q'.*vit_b_lm"):
        load_model("vit_q")


def test_registry_list_is_micro_sams_and_read_once_per_micro_sam_version(tmp_path, monkeypatch):
    """The list install-fiji writes for the dialog: micro-sam's registry as micro-sam gives it, kept in the cache
    folder so that a later process lists it without importing micro_sam.util (torch: ~10 s here); a damaged copy
    is read from micro-sam again."""
    import json
    import subprocess
    import sys
    from importlib.metadata import version

    from micro_sam.util import get_model_names, models

    from microsam_fiji.models.registry import registry_entries, registry_names

    monkeypatch.setenv("MICROSAM_FIJI_CACHE", str(tmp_path))
    kept = tmp_path / f"micro-sam-{version('micro_sam')}-registry.json"
    assert registry_names() == sorted(get_model_names()) and len(registry_names()) > 10
    assert kept.is_file()
    registry = models().registry
    assert {e.name: e.has_decoder for e in registry_entries()} == {
        n: f"{n}_decoder" in registry for n in registry if not n.endswith("_decoder")}
    probe = ("import sys; from microsam_fiji.installer.install import apg_model_names; "
             "print(','.join(apg_model_names())); print(sorted(m for m in sys.modules if m in ('torch', 'micro_sam')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MICROSAM_FIJI_CACHE": str(tmp_path)})
    names, imported = done.stdout.splitlines()
    assert names.split(",")[0] == "demo" and "vit_b_lm" in names.split(",") and "vit_b" not in names.split(",")
    assert imported == "[]", done.stderr
    for damaged in ([{"name": 1}], [{"name": "x\npython=/tmp/evil", "zoo_id": None, "has_decoder": True}]):
        kept.write_text(json.dumps(damaged))  # not a list this package wrote: asked of micro-sam again
        assert registry_names() == sorted(get_model_names())
        assert json.loads(kept.read_text())[0]["name"] == registry_entries()[0].name


def test_demo_model_is_shipped_inside_the_package(demo_model):
    assert DEMO_CHECKPOINT.is_file() and DEMO_CHECKPOINT.stat().st_size > 1_000_000
    assert demo_model.model_type == "vit_t"
    assert demo_model.source == "demo"
    assert all(p.dtype == torch.float32 for p in demo_model.decoder.parameters())
    assert np.isfinite(next(demo_model.predictor.model.parameters()).detach().numpy()).all()
