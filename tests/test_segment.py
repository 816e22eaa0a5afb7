"""APG/AIS runs on the demo model: embedding cache, pixel types, RGB, stacks, constant images, parameters."""
from __future__ import annotations

import numpy as np
import pytest

from microsam_fiji import segment
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.params import default_params, resolve_params
from microsam_fiji.engines.segment import DEFAULT_HALO, DEFAULT_TILE_SHAPE, segment_with_scores, tiling


@pytest.fixture(scope="module")
def tiny_u8(stardist_image) -> np.ndarray:
    """A 128x128 uint8 crop with a handful of nuclei (few prompts: cheap runs)."""
    crop = stardist_image[96:224, 96:224].astype(np.float32)
    return np.round(255 * (crop - crop.min()) / (crop.max() - crop.min())).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_labels(demo_model, tiny_u8):
    return segment(tiny_u8, demo_model)


class EncoderCounter:
    def __init__(self, model):
        self.calls = 0
        self._handles = [
            model.predictor.model.image_encoder.register_forward_hook(self._encoder),
            model.decoder.register_forward_hook(self._decoder),
        ]
        self.decoder_calls = 0

    def _encoder(self, *_):
        self.calls += 1

    def _decoder(self, *_):
        self.decoder_calls += 1

    def close(self):
        for h in self._handles:
            h.remove()


def test_apg_finds_nuclei_in_a_real_image(demo_model, small_image, stardist_mask):
    labels = segment(small_image, demo_model)
    assert labels.dtype == np.uint32 and labels.shape == small_image.shape
    ids = np.unique(labels)[1:]
    assert len(ids) >= 10  # the demo model is weak, but it does find the bright nuclei
    # found objects lie on real nuclei: most labelled pixels are ground-truth foreground
    truth = stardist_mask[:256, :256] > 0
    assert (truth[labels > 0]).mean() > 0.8
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes[sizes > 0].min() > resolve_params("apg")["min_size"]


def test_second_run_with_other_thresholds_skips_encoder_and_decoder(demo_model, small_image):
    segment(small_image, demo_model)  # make sure this image is cached
    counter = EncoderCounter(demo_model)
    try:
        loose = segment(small_image, demo_model, center=0.6, boundary=0.6, min_size=10)
        strict = segment(small_image, demo_model, foreground=0.8, min_size=200)
    finally:
        counter.close()
    assert counter.calls == 0 and counter.decoder_calls == 0
    assert len(np.unique(strict)) < len(np.unique(loose))  # the thresholds did take effect


def test_new_image_runs_the_encoder_exactly_once(demo_model, tiny_u8):
    image = np.flipud(tiny_u8).copy()
    counter = EncoderCounter(demo_model)
    misses = demo_model.cache.misses
    try:
        segment(image, demo_model)
        segment(image, demo_model, mode="ais")
        segment(image, demo_model, nms=0.5)
    finally:
        counter.close()
    assert counter.calls == 1 and counter.decoder_calls == 1
    assert demo_model.cache.misses == misses + 1


@pytest.mark.parametrize("cast", [np.uint16, np.float32], ids=["16-bit", "32-bit"])
def test_pixel_types_give_the_same_objects_as_8_bit(demo_model, tiny_u8, tiny_labels, cast):
    # micro-sam normalises each image by its min/max, so an exact cast must not change the result
    np.testing.assert_array_equal(segment(tiny_u8.astype(cast), demo_model), tiny_labels)


def test_rgb_of_a_gray_image_gives_the_same_objects(demo_model, tiny_u8, tiny_labels):
    rgb = np.repeat(tiny_u8[..., None], 3, axis=-1)
    np.testing.assert_array_equal(segment(rgb, demo_model), tiny_labels)


def test_stack_is_segmented_per_slice_with_unique_ids(demo_model, tiny_u8, tiny_labels):
    flat = np.zeros_like(tiny_u8)
    stack = np.stack([tiny_u8, flat, tiny_u8])
    labels = segment(stack, demo_model, axes="ZYX")
    n = int(tiny_labels.max())
    assert labels.shape == stack.shape and n > 0
    np.testing.assert_array_equal(labels[0], tiny_labels)
    assert labels[1].max() == 0  # a constant slice has no objects
    np.testing.assert_array_equal(labels[2], np.where(tiny_labels > 0, tiny_labels + n, 0))
    assert not set(np.unique(labels[0])[1:]) & set(np.unique(labels[2])[1:])


def test_constant_image_gives_empty_labels_without_the_model(demo_model):
    counter = EncoderCounter(demo_model)
    try:
        labels = segment(np.full((64, 80), 7, np.uint16), demo_model)
    finally:
        counter.close()
    assert labels.shape == (64, 80) and labels.max() == 0 and counter.calls == 0


def test_ais_mode_gives_instances(demo_model, small_image):
    result = segment_with_scores(small_image, demo_model, mode="ais")
    assert result.mode == "ais" and result.labels.max() > 5
    assert result.params == default_params("ais")


def test_parameter_errors_are_one_line(demo_model, tiny_u8):
    with pytest.raises(UserError, match="unknown apg parameter 'centre'.*center_distance_threshold"):
        segment(tiny_u8, demo_model, centre=0.4)
    with pytest.raises(UserError, match="out of range"):
        segment(tiny_u8, demo_model, foreground=1.5)
    with pytest.raises(UserError, match="unknown mode 'amg'"):
        segment(tiny_u8, demo_model, mode="amg")


def test_defaults_are_micro_sams():
    apg = resolve_params("apg")
    assert (apg["foreground_threshold"], apg["center_distance_threshold"], apg["boundary_distance_threshold"],
            apg["min_size"], apg["nms_threshold"]) == (0.5, 0.5, 0.5, 25, 0.9)
    assert resolve_params("apg", {"min_size": "30", "nms": "0.8", "multimasking": "true"}) | {} == {
        **apg, "min_size": 30, "nms_threshold": 0.8, "multimasking": True}
    with pytest.raises(UserError, match="must be a whole number"):
        resolve_params("apg", {"min_size": "2.5"})
    assert [resolve_params("apg", {"mask_threshold": v})["mask_threshold"] for v in ("0.3", "AUTO", "none")] == [
        0.3, "auto", None]
    with pytest.raises(UserError, match="mask_threshold='otsu' is not a number: use a number, auto or none"):
        resolve_params("apg", {"mask_threshold": "otsu"})


def test_large_images_are_tiled_by_default_and_small_ones_not():
    assert tiling((1024, 1024), None, None, 1024) == (None, None)
    assert tiling((1025, 600), None, None, 1024) == (DEFAULT_TILE_SHAPE, DEFAULT_HALO)
    assert tiling((2000, 2000), None, None, None) == (None, None)  # tiling switched off
    assert tiling((300, 300), (128, 96), (16, 8), 1024) == ((128, 96), (16, 8))
    with pytest.raises(UserError, match="tile shape"):
        tiling((300, 300), (0, 96), None, 1024)
