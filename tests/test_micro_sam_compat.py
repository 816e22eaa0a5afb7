"""micro-sam's private names we use (all in microsam_fiji/core/micro_sam_compat.py) still exist and behave."""
from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest

from microsam_fiji.core import micro_sam_compat as compat

MODULE = "src/microsam_fiji/core/micro_sam_compat.py"


def _fail_naming_module(what: str) -> None:
    pytest.fail(f"micro-sam {version('micro_sam')} / torch_em {version('torch_em')} changed {what}: update "
                f"{MODULE} (the only place that uses micro-sam's private names)")


def test_private_names_exist():
    missing = compat.missing_names()
    if missing:
        _fail_naming_module(", ".join(missing))


def test_installed_micro_sam_is_in_tested_range():
    from packaging.specifiers import SpecifierSet

    if version("micro_sam") not in SpecifierSet(compat.TESTED_MICRO_SAM):
        _fail_naming_module(f"version (tested: micro-sam{compat.TESTED_MICRO_SAM})")


def test_private_functions_behave(random_checkpoint):
    import torch
    from micro_sam.util import get_sam_model

    from microsam_fiji.models.checkpoint import read_checkpoint

    state, model_state = read_checkpoint(random_checkpoint)
    assert "decoder_state" in state and any(k.startswith("image_encoder.") for k in model_state)
    # our predictor, handed the state dict, is the one micro-sam's get_sam_model builds from the file
    ours = compat.sam_predictor(model_state, "vit_t", "cpu", "random")
    theirs = get_sam_model(model_type="vit_t", checkpoint_path=random_checkpoint, device="cpu")
    for attribute in ("model_type", "model_name"):
        if getattr(ours, attribute) != getattr(theirs, attribute):
            _fail_naming_module(f"the predictor's attribute {attribute}")
    mine, micro_sams = ours.model.state_dict(), theirs.model.state_dict()
    if mine.keys() != micro_sams.keys() or not all(torch.equal(mine[k], micro_sams[k]) for k in mine):
        _fail_naming_module("get_sam_model (the SAM model built from a checkpoint)")
    try:
        assert compat.validate_model_type(model_state) == "vit_t"
    except (KeyError, AssertionError):
        _fail_naming_module("_validate_model_type")
    image = compat.to_image(np.arange(12, dtype=np.uint16).reshape(3, 4) * 100)
    if image.shape != (3, 4, 3) or image.dtype != np.uint8 or image.min() != 0 or image.max() < 254:
        _fail_naming_module(f"_to_image (gray -> uint8 RGB scaled to 0..255; got {image.shape} {image.dtype})")
    masks = torch.zeros(1, 1, 16, 16)
    masks[..., 4:12, 4:12] = 5.0
    threshold = float(compat.local_otsu_threshold(masks).reshape(()))
    if not 0.0 <= threshold < 5.0:
        _fail_naming_module(f"_local_otsu_threshold (one threshold per mask; got {threshold})")


def test_restored_generator_state_gives_micro_sams_labels(demo_model, small_image):
    """What the embedding cache relies on: a generator put into the state ``initialize`` leaves, from its maps,
    segments like the initialized one (APG and AIS)."""
    from micro_sam import util
    from micro_sam.instance_segmentation import get_instance_segmentation_generator

    plane = small_image[:96, :96]
    embeddings = util.precompute_image_embeddings(demo_model.predictor, plane, ndim=2, verbose=False)
    for mode in ("ais", "apg"):
        initialized = get_instance_segmentation_generator(demo_model.predictor, is_tiled=False,
                                                          decoder=demo_model.decoder, segmentation_mode=mode)
        initialized.initialize(plane, image_embeddings=embeddings)
        expected = initialized.generate()
        maps = compat.decoder_maps(initialized)
        fresh = get_instance_segmentation_generator(demo_model.predictor, is_tiled=False,
                                                    decoder=demo_model.decoder, segmentation_mode=mode)
        util.set_precomputed(demo_model.predictor, embeddings)
        restored = compat.restore_generator_state(fresh, *maps).generate()
        if not np.array_equal(np.asarray(restored), np.asarray(expected)):
            _fail_naming_module(f"the generator state that initialize leaves ({mode.upper()} labels differ)")
        assert np.asarray(expected).max() > 0, "the demo model finds nuclei in the crop"


def test_defaults_read_from_source_are_micro_sams_signature_defaults():
    """core/params reads micro-sam's generate() defaults from its source (no 2-3 s import): the same values as
    the signatures of the installed classes."""
    from micro_sam.instance_segmentation import AutomaticPromptGenerator, InstanceSegmentationWithDecoder

    from microsam_fiji.core.params import _signature_defaults, default_params

    apg, ais = default_params("apg"), default_params("ais")
    assert apg["min_size"] == 25 and apg["nms_threshold"] == 0.9 and "distance_smoothing" in ais
    assert apg == _signature_defaults(AutomaticPromptGenerator.generate)
    assert ais == _signature_defaults(InstanceSegmentationWithDecoder.generate)
