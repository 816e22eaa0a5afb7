"""Our engines against micro-sam's own classes, on the demo model and real images (both run here).

``engine="micro-sam"`` must reproduce micro-sam pixel for pixel (it is micro-sam behind our image handling,
caching and tiling); ``engine="fast"`` must give the same instances (same count, each IoU >= 0.99)."""
from __future__ import annotations

import numpy as np
import pytest
from instance_match import assert_same_instances

import microsam_fiji
from microsam_fiji.segment import image_state

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


def test_fast_engine_apg_matches_micro_sam(demo_model, stardist_image, micro_sam_apg_labels):
    result = microsam_fiji.run(stardist_image, demo_model, mode="apg", engine="fast")
    assert_same_instances(micro_sam_apg_labels, result.labels)
    assert sorted(result.scores) == list(range(1, int(result.labels.max()) + 1))
    assert all(0.0 < s < 1.5 for s in result.scores.values())  # predicted IoUs


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
