"""SAM masks for point prompts, kept as crops: micro-sam's ``batched_inference`` without the full-size copies.

Each batch goes through the same steps as micro-sam (prompt encoder, mask decoder, upscaling to the image,
``_process_masks_for_batch`` for stability score, threshold and box); then only the mask's box crop, area,
predicted IoU and stability score are kept, which is all NMS and painting need."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .windows import Windows


@dataclass
class MaskSet:
    """Masks in image coordinates. ``boxes``: micro-sam's NMS boxes (x0, y0, x1, y1, max inclusive);
    ``crops[k]`` sits at ``origins[k]`` (y, x) and holds what micro-sam compares and paints of mask k."""

    crops: list = field(default_factory=list)
    origins: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    areas: list = field(default_factory=list)
    iou_preds: list = field(default_factory=list)
    stability: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.crops)

    def extend(self, other: "MaskSet") -> None:
        for name in ("crops", "origins", "boxes", "areas", "iou_preds", "stability"):
            getattr(self, name).extend(getattr(other, name))


def _predict_batch(predictor, points, labels, multimasking: bool, decoder: Callable | None):
    if decoder is None:
        return predictor.predict_torch(point_coords=points, point_labels=labels, boxes=None, mask_input=None,
                                       multimask_output=multimasking, return_logits=True)
    low_res, ious = decoder(predictor, points, labels, multimasking)
    return upscale(predictor, low_res), ious, low_res


def upscale(predictor, low_res: torch.Tensor) -> torch.Tensor:
    """SAM's ``postprocess_masks``, skipping its second resize where that is the identity (image side 1024):
    bilinear interpolation to the same size returns its input unchanged."""
    import torch.nn.functional as F

    model = predictor.model
    size = model.image_encoder.img_size
    masks = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
    h, w = predictor.input_size
    masks = masks[..., :h, :w]
    if tuple(masks.shape[-2:]) == tuple(predictor.original_size):
        return masks
    return F.interpolate(masks, tuple(predictor.original_size), mode="bilinear", align_corners=False)


def _otsu_thresholds(low_res: torch.Tensor) -> list[float]:
    """micro-sam's ``mask_threshold="auto"`` per mask (B, 1, H, W). Its vectorised histograms take ~250 MB per
    mask, ~8 GB for a batch of 32: computed one mask at a time here (each mask's threshold is its own)."""
    from micro_sam.inference import _local_otsu_threshold

    return [float(_local_otsu_threshold(low_res[k:k + 1]).reshape(())) for k in range(low_res.shape[0])]


@torch.inference_mode()
def predict_masks(predictor, points_xy: np.ndarray, *, batch_size: int, multimasking: bool, mask_threshold,
                  offset=(0, 0), exclusive_crops: bool = False, decoder: Callable | None = None) -> MaskSet:
    """Masks for ``points_xy`` (N, 2; x, y in the predictor's image) on the predictor's current embeddings.

    ``offset`` (y, x) places the predictor's image (a tile) in the full image. ``exclusive_crops`` crops
    without the box's last row and column, as micro-sam's tiled NMS and painting do."""
    from micro_sam.inference import _process_masks_for_batch
    from segment_anything.utils.transforms import ResizeLongestSide

    out = MaskSet()
    if len(points_xy) == 0:
        return out
    device = predictor.device
    coords = ResizeLongestSide(1024).apply_coords(np.asarray(points_xy)[:, None, :], predictor.original_size)
    coords = torch.tensor(coords, dtype=torch.float32).to(device)
    labels = torch.ones((len(points_xy), 1), dtype=torch.float32, device=device)
    threshold = predictor.model.mask_threshold if mask_threshold is None else mask_threshold
    if decoder is not None:
        windows = Windows.for_predictor(predictor)
        auto = isinstance(threshold, str)  # "auto": micro-sam's local Otsu threshold, from all of each mask's logits
        for start in range(0, len(points_xy), batch_size):
            stop = min(start + batch_size, len(points_xy))
            low_res, ious = decoder(predictor, coords[start:stop], labels[start:stop], multimasking,
                                    region=None if auto else windows.region)
            if multimasking:  # micro-sam keeps the mask with the highest predicted IoU
                _, best = ious.max(dim=1)
                rows = torch.arange(len(best), device=best.device)
                low_res, ious = low_res[rows, best][:, None], ious[rows, best][:, None]
            thresholds = _otsu_thresholds(low_res) if auto else float(threshold)
            out.extend(windows.masks(low_res[:, 0], ious[:, 0], thresholds, offset, exclusive_crops))
        return out
    oy, ox = int(offset[0]), int(offset[1])
    for start in range(0, len(points_xy), batch_size):
        stop = min(start + batch_size, len(points_xy))
        masks, ious, logits = _predict_batch(predictor, coords[start:stop], labels[start:stop], multimasking,
                                             decoder)
        if multimasking:  # micro-sam keeps the mask with the highest predicted IoU
            _, best = ious.max(axis=1)
            rows = torch.arange(len(best), device=best.device)
            masks, ious, logits = masks[rows, best][:, None], ious[rows, best][:, None], logits[rows, best][:, None]
        data = _process_masks_for_batch(masks, ious, logits, False, threshold)
        full = data["masks"]
        areas = full.sum(dim=(1, 2)).cpu().numpy()
        boxes = data["boxes"].cpu().numpy().astype(np.int64)
        end = 0 if exclusive_crops else 1
        for k in range(len(boxes)):
            x0, y0, x1, y1 = boxes[k]
            out.crops.append(full[k, y0:y1 + end, x0:x1 + end].cpu().numpy())
            out.origins.append((y0 + oy, x0 + ox))
            out.boxes.append((x0 + ox, y0 + oy, x1 + ox, y1 + oy))
            out.areas.append(int(areas[k]))
        out.iou_preds.extend(data["iou_preds"].cpu().numpy().astype(np.float32).tolist())
        out.stability.extend(data["stability_scores"].cpu().numpy().astype(np.float32).tolist())
    return out
