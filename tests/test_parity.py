"""Our engines against micro-sam's own classes, on the demo model and real images (both run here).

``engine="micro-sam"`` must reproduce micro-sam pixel for pixel (it is micro-sam behind our image handling,
caching and tiling); ``engine="fast"`` must give the same instances (same count, each IoU >= 0.99; on these test
images pixel-identical) with each object's score equal to micro-sam's predicted IoU for it."""
from __future__ import annotations

import numpy as np
import pytest

import microsam_fiji
from microsam_fiji.engines.state import image_state

from helpers.instance_match import assert_same_instances, assert_same_scores, micro_sam_scores

TILE_SHAPE, HALO = (256, 192), (32, 32)


@pytest.fixture(scope="module")
def micro_sam_apg(demo_model, stardist_image):
    """micro-sam's AutomaticPromptGenerator, initialised by micro-sam itself on stardist img2d."""
    from micro_sam.instance_segmentation import AutomaticPromptGenerator

    gen = AutomaticPromptGenerator(demo_model.predictor, demo_model.decoder)
    gen.initialize(stardist_image)
    return gen


@pytest.fixture(scope="module")
def micro_sam_apg_labels(micro_sam_apg):
    return micro_sam_apg.generate()


@pytest.fixture(scope="module")
def micro_sam_apg_predictions(micro_sam_apg, micro_sam_apg_labels):
    """micro-sam's mask predictions (with ``predicted_iou``) as its ``generate`` makes them, before NMS."""
    from micro_sam import util
    from micro_sam.inference import batched_inference
    from micro_sam.instance_segmentation import _derive_point_prompts

    gen = micro_sam_apg
    prompts = _derive_point_prompts(gen._foreground, gen._center_distances, gen._boundary_distances)
    preds = batched_inference(gen._predictor, image=None, batch_size=32, return_instance_segmentation=False,
                              multimasking=False, **prompts)
    # the same calls as generate(): the same labels, so these predictions are the ones behind them
    np.testing.assert_array_equal(util.apply_nms(preds, min_size=25, nms_thresh=0.9), micro_sam_apg_labels)
    return preds


@pytest.fixture(scope="module")
def tiled_image(stardist_image):
    return stardist_image[:256, :384].copy()


@pytest.fixture(scope="module")
def micro_sam_tiled_labels(demo_model, tiled_image):
    from micro_sam.instance_segmentation import TiledAutomaticPromptGenerator

    gen = TiledAutomaticPromptGenerator(demo_model.predictor, demo_model.decoder)
    gen.initialize(tiled_image, tile_shape=TILE_SHAPE, halo=HALO)
    return gen.generate()


def test_micro_sam_engine_apg_equals_micro_sam(demo_model, stardist_image, micro_sam_apg_labels):
    ours = microsam_fiji.segment(stardist_image, demo_model, mode="apg", engine="micro-sam")
    assert micro_sam_apg_labels.max() > 20  # the demo model finds nuclei here: a meaningful comparison
    np.testing.assert_array_equal(ours, micro_sam_apg_labels)


def test_micro_sam_engine_ais_equals_micro_sam(demo_model, stardist_image, micro_sam_apg):
    from micro_sam.instance_segmentation import InstanceSegmentationWithDecoder

    ais = InstanceSegmentationWithDecoder(demo_model.predictor, demo_model.decoder)
    ais.set_state(micro_sam_apg.get_state())  # decoder maps computed by micro-sam's initialize
    expected = ais.generate()
    ours = microsam_fiji.segment(stardist_image, demo_model, mode="ais", engine="micro-sam")
    assert expected.max() > 20
    np.testing.assert_array_equal(ours, expected)


def test_fast_engine_apg_matches_micro_sam(demo_model, stardist_image, micro_sam_apg_labels,
                                           micro_sam_apg_predictions):
    result = microsam_fiji.segment_with_scores(stardist_image, demo_model, mode="apg", engine="fast")
    assert_same_instances(micro_sam_apg_labels, result.labels)
    np.testing.assert_array_equal(result.labels, micro_sam_apg_labels)  # README: pixel-identical on test images
    assert sorted(result.scores) == list(range(1, int(result.labels.max()) + 1))
    reference_scores = micro_sam_scores(micro_sam_apg_predictions, micro_sam_apg_labels)
    assert_same_scores(micro_sam_apg_labels, reference_scores, result.labels, result.scores, atol=1e-5)


def test_fast_engine_ais_is_micro_sams(demo_model, stardist_image):
    fast = microsam_fiji.segment(stardist_image, demo_model, mode="ais", engine="fast")
    reference = microsam_fiji.segment(stardist_image, demo_model, mode="ais", engine="micro-sam")
    np.testing.assert_array_equal(fast, reference)


def test_micro_sam_engine_tiled_apg_equals_micro_sam(demo_model, tiled_image, micro_sam_tiled_labels):
    ours = microsam_fiji.segment(tiled_image, demo_model, mode="apg", engine="micro-sam", tile_shape=TILE_SHAPE,
                                 halo=HALO)
    state = image_state(demo_model, tiled_image, TILE_SHAPE, HALO)
    assert state.tiled and len(state.embeddings["features"]) == 2  # two tiles really were used
    assert micro_sam_tiled_labels.max() > 10
    np.testing.assert_array_equal(ours, micro_sam_tiled_labels)


def test_fast_engine_tiled_apg_matches_micro_sam(demo_model, tiled_image, micro_sam_tiled_labels):
    fast = microsam_fiji.segment(tiled_image, demo_model, mode="apg", engine="fast", tile_shape=TILE_SHAPE,
                                 halo=HALO)
    assert_same_instances(micro_sam_tiled_labels, fast)
    np.testing.assert_array_equal(fast, micro_sam_tiled_labels)  # README: pixel-identical on test images
