"""Windowed mask post-processing and the decoder's region against SAM's / micro-sam's full-size computation."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from microsam_fiji.engines.fast.windows import Windows


def _blobs(n: int, seed: int) -> torch.Tensor:
    """Low-resolution logits like SAM's: mostly strongly negative, a few positive blobs (some cut by the border,
    some below the threshold but above threshold - 1, one all negative)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    out = torch.full((n, 256, 256), -12.0)
    for k in range(n - 1):
        cy, cx = (torch.rand(2, generator=g) * 300 - 20).tolist()
        r = float(torch.rand(1, generator=g) * 20 + 2)
        peak = float(torch.rand(1, generator=g) * 12 - 1.5)
        out[k] = torch.maximum(out[k], peak - ((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2 * 4)
    out += torch.randn(out.shape, generator=g) * 0.3
    return out


def _predictor(demo_model, input_size, original_size):
    return SimpleNamespace(model=demo_model.predictor.model, input_size=input_size, original_size=original_size)


def _reference(predictor, low_res, ious, threshold, exclusive):
    """micro-sam's path: SAM's postprocess_masks, _process_masks_for_batch, crops of the box."""
    from micro_sam.inference import _process_masks_for_batch

    full = predictor.model.postprocess_masks(low_res[:, None], predictor.input_size, predictor.original_size)
    data = _process_masks_for_batch(full, ious[:, None], low_res[:, None], False, threshold)
    end = 0 if exclusive else 1
    rows = []
    for k, (x0, y0, x1, y1) in enumerate(data["boxes"].numpy().astype(int)):
        rows.append((data["masks"][k, y0:y1 + end, x0:x1 + end].numpy(), (x0, y0, x1, y1),
                     int(data["masks"][k].sum()), float(data["stability_scores"][k])))
    return rows


@pytest.mark.parametrize("input_size,original_size", [((1024, 1024), (1024, 1024)), ((1024, 1024), (512, 512)),
                                                      ((765, 1024), (520, 696)), ((1024, 683), (300, 200)),
                                                      ((768, 1024), (1500, 2000))])
@pytest.mark.parametrize("threshold,exclusive", [(0.0, False), (0.5, True)])
def test_windows_equal_full_size_post_processing(demo_model, input_size, original_size, threshold, exclusive):
    predictor = _predictor(demo_model, input_size, original_size)
    low_res = _blobs(12, seed=sum(original_size))
    ious = torch.rand(12, generator=torch.Generator().manual_seed(1))
    expected = _reference(predictor, low_res, ious, threshold, exclusive)
    ours = Windows.for_predictor(predictor).masks(low_res, ious, threshold, exclusive_crops=exclusive)
    assert len(ours) == len(expected)
    assert sum(area > 0 for *_, area, _ in expected) >= 4  # the cases hold real masks, not only empty ones
    for k, (crop, box, area, stability) in enumerate(expected):
        # interpolation as one matrix product rounds differently: a pixel may flip only at the threshold itself
        flips = max(1, area // 1000)
        assert ours.boxes[k] == box and abs(ours.areas[k] - area) <= flips
        assert ours.origins[k] == (box[1], box[0])
        assert ours.crops[k].shape == crop.shape
        assert np.count_nonzero(ours.crops[k] != crop) <= flips
        np.testing.assert_allclose(ours.stability[k], stability, rtol=1e-3, equal_nan=True)
    np.testing.assert_allclose(ours.iou_preds, ious.numpy())


def test_windows_place_tiles_with_offset(demo_model):
    predictor = _predictor(demo_model, (1024, 1024), (384, 384))
    low_res = _blobs(3, seed=7)
    plain = Windows.for_predictor(predictor).masks(low_res, torch.ones(3), 0.0)
    moved = Windows.for_predictor(predictor).masks(low_res, torch.ones(3), 0.0, offset=(100, 40))
    for k in range(3):
        if plain.areas[k]:
            x0, y0, x1, y1 = plain.boxes[k]
            assert moved.boxes[k] == (x0 + 40, y0 + 100, x1 + 40, y1 + 100)
            assert moved.origins[k] == (plain.origins[k][0] + 100, plain.origins[k][1] + 40)


def test_all_negative_mask_is_empty_with_nan_stability(demo_model):
    predictor = _predictor(demo_model, (1024, 1024), (1024, 1024))
    masks = Windows.for_predictor(predictor).masks(torch.full((1, 256, 256), -20.0), torch.ones(1), 0.0)
    assert masks.areas == [0] and masks.boxes == [(0, 0, 0, 0)] and masks.crops[0].shape == (1, 1)
    assert np.isnan(masks.stability[0])


def test_region_covers_what_reaches_the_image(demo_model):
    assert Windows.for_predictor(_predictor(demo_model, (1024, 1024), (512, 512))).region == (256, 256)
    rows, cols = Windows.for_predictor(_predictor(demo_model, (765, 1024), (520, 696))).region
    assert 765 / 4 < rows < 765 / 4 + 3 and cols == 256


def test_decoder_region_matches_full_decoder(demo_model, stardist_image):
    from micro_sam import util

    from microsam_fiji.engines.fast.decoder import decode_points

    predictor = demo_model.predictor
    # 300 x 512: SAM pads the resized image's rows to 1024
    embeddings = util.precompute_image_embeddings(predictor, stardist_image[:300], ndim=2, verbose=False)
    util.set_precomputed(predictor, embeddings)
    windows = Windows.for_predictor(predictor)
    rows, cols = windows.region
    assert rows < 256 and cols == 256
    points = torch.tensor([[[100.0, 200.0]], [[900.0, 500.0]], [[20.0, 590.0]]])
    labels = torch.ones(3, 1)
    full, full_iou = decode_points(predictor, points, labels, False)
    part, part_iou = decode_points(predictor, points, labels, False, region=(rows, cols))
    assert torch.equal(full_iou, part_iou)
    assert torch.allclose(part[..., :rows, :cols], full[..., :rows, :cols], atol=1e-4)
    assert torch.isinf(part[..., -(-rows // 4) * 4:, :]).all()


def test_auto_thresholds_equal_micro_sams_local_otsu(demo_model):
    """mask_threshold="auto": micro-sam's per-mask local Otsu threshold, then the same windowed post-processing."""
    from microsam_fiji.engines.fast.masks import _otsu_thresholds

    predictor = _predictor(demo_model, (1024, 1024), (512, 512))
    low_res = _blobs(4, seed=3)
    ious = torch.rand(4, generator=torch.Generator().manual_seed(2))
    # one mask at a time: micro-sam's local Otsu takes ~1 GB per mask
    expected = [row for k in range(4) for row in _reference(predictor, low_res[k:k + 1], ious[k:k + 1], "auto", False)]
    thresholds = _otsu_thresholds(low_res[:, None])
    assert len(set(thresholds)) > 1  # one threshold per mask, not one for the batch
    ours = Windows.for_predictor(predictor).masks(low_res, ious, thresholds)
    assert sum(area > 0 for *_, area, _ in expected) >= 2
    for k, (crop, box, area, stability) in enumerate(expected):
        assert ours.boxes[k] == box and ours.areas[k] == area
        assert np.count_nonzero(ours.crops[k] != crop) <= max(1, area // 1000)
        np.testing.assert_allclose(ours.stability[k], stability, rtol=1e-3, equal_nan=True)
