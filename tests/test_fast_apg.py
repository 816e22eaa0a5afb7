"""The fast APG engine's stages against micro-sam's, on real nuclei and an oracle-decoder dense case."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from microsam_fiji.core.params import resolve_params
from microsam_fiji.engines.fast import generate, nms
from microsam_fiji.engines.fast.decoder import decode_points, supported
from microsam_fiji.engines.fast.mask_set import MaskSet
from microsam_fiji.engines.fast.prompts import derive_point_prompts
from microsam_fiji.engines.micro_sam import restore_generator

from helpers.instance_match import assert_same_instances, assert_same_scores, micro_sam_scores
from helpers.oracle import oracle_state


@pytest.fixture(scope="module")
def dense_state(demo_model, stardist_image, stardist_mask):
    """stardist img2d with its 125 ground-truth nuclei (ids up to 183) as decoder maps: one prompt per (seeded)
    nucleus."""
    return oracle_state(demo_model, stardist_image, stardist_mask)


@pytest.fixture(scope="module")
def crop_state(demo_model, stardist_image, stardist_mask):
    """The oracle maps of the image's top-left 256 x 256 (~40 nuclei): for the comparisons whose reference,
    micro-sam's own APG, costs seconds per prompt (a mask upscaled to the whole image and post-processed each)."""
    return oracle_state(demo_model, stardist_image[:256, :256].copy(), stardist_mask[:256, :256].copy())


@pytest.fixture(scope="module")
def micro_sam_dense(demo_model, dense_state):
    """micro-sam's APG on the oracle state, split where AutomaticPromptGenerator.generate calls its helpers,
    so the NMS tests can reuse micro-sam's own masks: prompts, batched_inference, apply_nms."""
    from micro_sam import util
    from micro_sam.inference import batched_inference
    from micro_sam.instance_segmentation import _derive_point_prompts

    s = dense_state
    gen = restore_generator(demo_model, "apg", s)  # sets the predictor's embeddings as generate() needs
    prompts = _derive_point_prompts(gen._foreground, gen._center_distances, gen._boundary_distances)
    preds = batched_inference(demo_model.predictor, image=None, batch_size=32, return_instance_segmentation=False,
                              multimasking=False, **prompts)
    labels = util.apply_nms(preds, min_size=25, nms_thresh=0.9)
    return prompts, preds, labels


def _as_mask_set(preds) -> MaskSet:
    masks = MaskSet()
    for p in preds:
        x, y, w, h = (int(v) for v in p["bbox"])
        masks.crops.append(p["segmentation"][y:y + h + 1, x:x + w + 1].numpy())
        masks.origins.append((y, x))
        masks.boxes.append((x, y, x + w, y + h))
        masks.areas.append(int(p["segmentation"].sum()))
        masks.iou_preds.append(p["predicted_iou"])
        masks.stability.append(p["stability_score"])
    return masks


def test_prompts_equal_micro_sams_on_oracle_maps(dense_state, micro_sam_dense):
    prompts = micro_sam_dense[0]
    ours = derive_point_prompts(dense_state.foreground, dense_state.center_distances, dense_state.boundary_distances)
    assert len(ours) > 100
    np.testing.assert_array_equal(ours[:, ::-1], prompts["points"][:, 0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prompts_equal_micro_sams_on_smooth_random_maps(seed):
    """Odd shapes, plateaus and components touching the border: same prompts, same order."""
    from micro_sam.instance_segmentation import _derive_point_prompts
    from scipy import ndimage

    rng = np.random.default_rng(seed)

    def smooth(sigma):
        m = ndimage.gaussian_filter(rng.random((300, 257)), sigma)
        return ((m - m.min()) / (m.max() - m.min())).astype(np.float32)

    fg, dist = smooth(3), smooth(2)
    dist = np.round(dist * 8) / 8  # plateaus: many equal distances, so tie-breaking matters
    expected = _derive_point_prompts(fg, dist, dist, 0.3, 0.6, 0.6)
    ours = derive_point_prompts(fg, dist, dist, 0.3, 0.6, 0.6)
    assert len(ours) > 10
    np.testing.assert_array_equal(ours[:, ::-1], expected["points"][:, 0])


@pytest.mark.parametrize("nms_threshold,intersection_over_min", [(0.9, False), (0.5, False), (0.5, True)])
def test_nms_equals_micro_sams_on_its_masks(micro_sam_dense, nms_threshold, intersection_over_min):
    from micro_sam import util

    _, preds, default_labels = micro_sam_dense
    if (nms_threshold, intersection_over_min) == (0.9, False):
        expected = default_labels
    else:
        expected = util.apply_nms(preds, min_size=25, nms_thresh=nms_threshold,
                                  intersection_over_min=intersection_over_min)
    masks = _as_mask_set(preds)
    keep = nms.select(masks, 25, nms_threshold, intersection_over_min)
    labels, scores = nms.to_labels(masks, keep, expected.shape, 25)
    assert expected.max() > 100
    np.testing.assert_array_equal(labels, expected)
    assert sorted(scores) == list(range(1, int(labels.max()) + 1))


def test_fast_engine_matches_micro_sam_on_dense_oracle(demo_model, dense_state, micro_sam_dense):
    labels, scores = generate(demo_model, "apg", dense_state, resolve_params("apg"))
    _, preds, expected = micro_sam_dense
    assert_same_instances(expected, labels)
    np.testing.assert_array_equal(labels, expected)  # README: pixel-identical on the test images
    assert_same_scores(expected, micro_sam_scores(preds, expected), labels, scores, atol=1e-5)


@pytest.mark.parametrize("multimasking", [False, True])
def test_decoder_equals_sams_up_to_rounding(demo_model, dense_state, multimasking):
    from micro_sam import util

    predictor = demo_model.predictor
    model = predictor.model
    assert supported(model)
    util.set_precomputed(predictor, dense_state.embeddings)
    rng = np.random.default_rng(0)
    points = torch.tensor(rng.uniform(0, 1024, (5, 1, 2)), dtype=torch.float32)
    labels = torch.ones(5, 1)
    with torch.inference_mode():
        sparse, dense = model.prompt_encoder(points=(points, labels), boxes=None, masks=None)
        expected, expected_iou = model.mask_decoder(
            image_embeddings=predictor.features, image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimasking)
        ours, ours_iou = decode_points(predictor, points, labels, multimasking)
    assert ours.shape == expected.shape and ours_iou.shape == expected_iou.shape
    # README: logits within 5e-6 of the largest one's magnitude (measured: 8.5e-7, 6.2e-7 with multimasking;
    # ~1e-5 absolute), predicted IoUs within 1e-5 (measured: 1.2e-7)
    assert float((ours - expected).abs().max()) < 5e-6 * float(expected.abs().max())
    assert float((ours_iou - expected_iou).abs().max()) < 1e-5


def test_decoders_of_another_layout_go_to_sams_own(demo_model):
    """Our decoder assumes SAM's two-layer two-way transformer: a deeper one is left to SAM's own decoder."""
    import copy

    from microsam_fiji.engines.fast.engine import default_decoder

    assert default_decoder(demo_model) is decode_points
    deeper = copy.deepcopy(demo_model.predictor.model)
    deeper.mask_decoder.transformer.layers.append(copy.deepcopy(deeper.mask_decoder.transformer.layers[1]))
    assert not supported(deeper)


def test_no_prompts_gives_empty_labels(demo_model, dense_state):
    from dataclasses import replace

    empty = replace(dense_state, foreground=np.zeros_like(dense_state.foreground))
    labels, scores = generate(demo_model, "apg", empty, resolve_params("apg"))
    assert labels.shape == dense_state.foreground.shape and labels.max() == 0 and scores == {}


def test_fast_engine_with_sams_own_decoder_matches_micro_sam(demo_model, dense_state, micro_sam_dense):
    """The fallback for mask decoders ours does not cover: SAM's own decoder, the same windowed post-processing."""
    labels, _ = generate(demo_model, "apg", dense_state, resolve_params("apg"), decoder=None)
    assert_same_instances(micro_sam_dense[2], labels)


def test_decoder_in_the_gpu_layout_equals_the_cpu_layout(demo_model, dense_state, monkeypatch):
    """A GPU runs the whole batch and all image tokens at once (one block: the online softmax reduces to a plain
    one); the same code path, run here on the CPU."""
    from micro_sam import util

    from microsam_fiji.engines.fast import decoder

    predictor = demo_model.predictor
    util.set_precomputed(predictor, dense_state.embeddings)
    points = torch.tensor([[[120.0, 300.0]], [[600.0, 80.0]], [[1000.0, 1000.0]]])
    labels = torch.ones(3, 1)
    cpu_masks, cpu_ious = decode_points(predictor, points, labels, True)
    monkeypatch.setattr(decoder, "CHUNK", 3)
    monkeypatch.setattr(decoder, "_block_rows", lambda device, side: (side, side))
    gpu_masks, gpu_ious = decode_points(predictor, points, labels, True)
    assert torch.allclose(gpu_masks, cpu_masks, atol=1e-4) and torch.allclose(gpu_ious, cpu_ious, atol=1e-6)


@pytest.mark.parametrize("overrides", [{"mask_threshold": 0.5}, {"multimasking": True}])
def test_fast_engine_matches_micro_sam_with_other_options(demo_model, crop_state, overrides):
    """The windowed post-processing with a threshold other than SAM's 0 (windows and stability bounds move), and
    with the best of three masks per prompt. ("auto", micro-sam's local Otsu, takes minutes and gigabytes per
    batch in micro-sam 1.8.14: compared on a few masks in test_fast_windows.)"""
    params = resolve_params("apg", overrides)
    expected = restore_generator(demo_model, "apg", crop_state).generate(**params)
    labels, _ = generate(demo_model, "apg", crop_state, params)
    assert expected.max() > 25
    assert_same_instances(expected, labels)


def test_decoder_image_cache_follows_the_predictors_image(demo_model, dense_state, stardist_image):
    """What the decoder keeps per image is recomputed when the predictor moves to another image (or its
    embedding is changed in place): masks always come from the current embedding."""
    from micro_sam import util

    predictor = demo_model.predictor
    model = predictor.model
    points = torch.tensor([[[200.0, 300.0]], [[700.0, 650.0]]])
    labels = torch.ones(2, 1)

    def sams_own():
        sparse, dense = model.prompt_encoder(points=(points, labels), boxes=None, masks=None)
        return model.mask_decoder(image_embeddings=predictor.features, image_pe=model.prompt_encoder.get_dense_pe(),
                                  sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                  multimask_output=False)[0]

    with torch.inference_mode():
        util.set_precomputed(predictor, dense_state.embeddings)
        first, _ = decode_points(predictor, points, labels, False)
        other = util.precompute_image_embeddings(predictor, stardist_image[::-1].copy(), ndim=2, verbose=False)
        util.set_precomputed(predictor, other)
        second, _ = decode_points(predictor, points, labels, False)
        assert float((second - first).abs().max()) > 1.0  # a different image gives different masks
        assert torch.allclose(second, sams_own(), atol=1e-3)
        predictor.features.mul_(0.5)  # the same tensor, changed in place
        third, _ = decode_points(predictor, points, labels, False)
        assert torch.allclose(third, sams_own(), atol=1e-3) and not torch.allclose(third, second, atol=1e-3)
        predictor.features = predictor.features.clone()  # an inference tensor: no version counter
        assert predictor.features.is_inference()
        decode_points(predictor, points, labels, False)
        predictor.features.mul_(2.0)
        fourth, _ = decode_points(predictor, points, labels, False)
        assert torch.allclose(fourth, second, atol=1e-3)


def test_mask_progress_moves_within_a_batch_and_esc_stops_it(demo_model, dense_state):
    """The masks' fraction moves prompt by prompt (a CPU batch of 128 prompts takes seconds), never goes back,
    and a cancel raised at an intermediate report stops the batch: the chunks not started are dropped."""
    import time

    from microsam_fiji.core.progress import Cancelled, reporting

    params = resolve_params("apg", {})
    calls: list = []
    with reporting(lambda stage, current, total: calls.append((stage, current, total))):
        generate(demo_model, "apg", dense_state, params)
    masks = [(c, t) for s, c, t in calls if s == "masks for the prompts"]
    total = masks[-1][1]
    assert total >= 100 and masks[-1][0] == total, masks[-3:]
    inside = [c for c, _ in masks if 0 < c < total]
    assert len(inside) >= 5, f"the fraction jumped: {masks}"
    assert [c for c, _ in masks] == sorted(c for c, _ in masks), "the fraction went back"

    def cancel(stage, current, total):
        if stage == "masks for the prompts" and current and current < total:
            raise Cancelled()

    start = time.perf_counter()
    with pytest.raises(Cancelled), reporting(cancel):
        generate(demo_model, "apg", dense_state, params)
    cancelled = time.perf_counter() - start
    start = time.perf_counter()
    generate(demo_model, "apg", dense_state, params)
    assert cancelled < 0.5 * (time.perf_counter() - start), "the batch ran to its end after the cancel"
