"""SAM masks for point prompts, kept as crops: micro-sam's ``batched_inference`` without the full-size copies.

Each batch goes through the same steps as micro-sam (prompt encoder, mask decoder, upscaling to the image,
stability score, threshold and box, as ``_process_masks_for_batch`` computes them), the last ones only in a
window around each mask (``windows``); only the mask's box crop, area, predicted IoU and stability score are
kept, which is all NMS and painting need."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from microsam_fiji.core.progress import report
from microsam_fiji.engines.fast.mask_set import MaskSet
from microsam_fiji.engines.fast.windows import Windows

CPU_BATCH = 128  # prompts per call of a batch-independent decoder on a CPU (see predict_masks)


def _sams_decoder(predictor, points, labels, multimasking: bool, region=None):
    """Low-resolution logits and predicted IoUs from the model's own mask decoder, as SAM's ``predict_torch``
    computes them before its full-size upscaling (for models whose decoder layout ours does not cover)."""
    model = predictor.model
    sparse, dense = model.prompt_encoder(points=(points, labels), boxes=None, masks=None)
    return model.mask_decoder(image_embeddings=predictor.features, image_pe=model.prompt_encoder.get_dense_pe(),
                              sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                              multimask_output=multimasking)


def _otsu_thresholds(low_res: torch.Tensor) -> list[float]:
    """micro-sam's ``mask_threshold="auto"`` per mask (B, 1, H, W). Its vectorised histograms take ~250 MB per
    mask, ~8 GB for a batch of 32: computed one mask at a time here (each mask's threshold is its own)."""
    from microsam_fiji.core.micro_sam_compat import local_otsu_threshold

    return [float(local_otsu_threshold(low_res[k:k + 1]).reshape(())) for k in range(low_res.shape[0])]


@torch.inference_mode()
def predict_masks(predictor, points_xy: np.ndarray, *, batch_size: int, multimasking: bool, mask_threshold,
                  offset=(0, 0), exclusive_crops: bool = False, decoder: Callable | None = None) -> MaskSet:
    """Masks for ``points_xy`` (N, 2; x, y in the predictor's image) on the predictor's current embeddings.

    ``offset`` (y, x) places the predictor's image (a tile) in the full image. ``exclusive_crops`` crops
    without the box's last row and column, as micro-sam's tiled NMS and painting do."""
    from segment_anything.utils.transforms import ResizeLongestSide

    out = MaskSet()
    if len(points_xy) == 0:
        return out
    device = predictor.device
    coords = ResizeLongestSide(1024).apply_coords(np.asarray(points_xy)[:, None, :], predictor.original_size)
    coords = torch.tensor(coords, dtype=torch.float32).to(device)
    labels = torch.ones((len(points_xy), 1), dtype=torch.float32, device=device)
    threshold = predictor.model.mask_threshold if mask_threshold is None else mask_threshold
    decoder_fn: Callable = _sams_decoder if decoder is None else decoder
    windows = Windows.for_predictor(predictor)
    auto = isinstance(threshold, str)  # "auto": micro-sam's local Otsu threshold, from all of each mask's logits
    # our decoder runs one prompt per thread on a CPU, so its results do not depend on the batch: larger
    # batches leave the threads idle less often at a batch's end. SAM's own decoder keeps micro-sam's batches
    # (its rounding depends on the batch size).
    on_cpu = torch.device(device).type == "cpu"
    step = max(batch_size, CPU_BATCH) if on_cpu and decoder_fn is not _sams_decoder else batch_size
    for start in range(0, len(points_xy), step):
        report("masks for the prompts", start, len(points_xy))
        stop = min(start + step, len(points_xy))
        region = None if auto else windows.region
        if decoder_fn is _sams_decoder:  # one call of SAM's batched decoder: nothing to count inside it
            low_res, ious = decoder_fn(predictor, coords[start:stop], labels[start:stop], multimasking, region=region)
        else:
            low_res, ious = decoder_fn(predictor, coords[start:stop], labels[start:stop], multimasking, region=region,
                                    progress=lambda done, start=start: report("masks for the prompts",
                                                                              start + done, len(points_xy)))
        if multimasking:  # micro-sam keeps the mask with the highest predicted IoU
            _, best = ious.max(dim=1)
            rows = torch.arange(len(best), device=best.device)
            low_res, ious = low_res[rows, best][:, None], ious[rows, best][:, None]
        thresholds = _otsu_thresholds(low_res) if auto else float(threshold)
        out.extend(windows.masks(low_res[:, 0], ious[:, 0], thresholds, offset, exclusive_crops))
    report("masks for the prompts", len(points_xy), len(points_xy))
    return out
