"""Mask NMS and merging into labels with micro-sam's rules (``util.apply_nms``), on crops and box-overlap pairs.

micro-sam compares every mask with every other at full image size; only masks whose boxes overlap can
intersect, so only those pairs are compared here, on their crops. Kept: size filter ``area > min_size``,
scores ``predicted_iou * stability_score`` in float32 ordered by the same ``torch.argsort`` call, box pairs
with a strictly positive overlap of the (max-inclusive) boxes, overlaps in float32 with the same formulas,
suppression where ``overlap > nms_threshold``, painting by micro-sam's own ``mask_data_to_segmentation``."""
from __future__ import annotations

import numpy as np
import torch

from microsam_fiji.engines.fast.mask_set import MaskSet


def overlapping_pairs(boxes: np.ndarray, chunk: int = 2048):
    """Index pairs (i < j) whose boxes overlap with positive width and height, as micro-sam's
    ``_overlap_matrix`` decides (boxes x0, y0, x1, y1)."""
    pairs_i, pairs_j = [], []
    n = len(boxes)
    for start in range(0, n, chunk):
        a = boxes[start:start + chunk]
        w = np.minimum(a[:, None, 2], boxes[None, :, 2]) - np.maximum(a[:, None, 0], boxes[None, :, 0])
        h = np.minimum(a[:, None, 3], boxes[None, :, 3]) - np.maximum(a[:, None, 1], boxes[None, :, 1])
        ii, jj = np.nonzero((w > 0) & (h > 0))
        ii = ii + start
        upper = jj > ii
        pairs_i.append(ii[upper])
        pairs_j.append(jj[upper])
    if not pairs_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(pairs_i), np.concatenate(pairs_j)


def crop_intersection(masks: MaskSet, i: int, j: int) -> int:
    (yi, xi), (yj, xj) = masks.origins[i], masks.origins[j]
    ci, cj = masks.crops[i], masks.crops[j]
    y0, x0 = max(yi, yj), max(xi, xj)
    y1 = min(yi + ci.shape[0], yj + cj.shape[0])
    x1 = min(xi + ci.shape[1], xj + cj.shape[1])
    if y1 <= y0 or x1 <= x0:
        return 0
    a = ci[y0 - yi:y1 - yi, x0 - xi:x1 - xi]
    b = cj[y0 - yj:y1 - yj, x0 - xj:x1 - xj]
    return int(np.count_nonzero(a & b))


def pair_overlaps(masks: MaskSet, ii, jj, intersection_over_min: bool, tiled: bool) -> np.ndarray:
    """float32 overlap per pair, computed as micro-sam's untiled / tiled NMS computes it."""
    areas = np.asarray(masks.areas, dtype=np.float32)
    inter = np.array([crop_intersection(masks, i, j) for i, j in zip(ii, jj)], dtype=np.float32)
    ai, aj = areas[ii], areas[jj]
    if intersection_over_min:
        denominator = np.minimum(ai, aj)
        if not tiled:  # _calculate_iomin_between_pred_masks adds eps in float32
            denominator = denominator + np.float32(1e-6)
    else:
        denominator = ai + aj - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return (inter / denominator).astype(np.float32)


def select(masks: MaskSet, min_size: int, nms_threshold: float, intersection_over_min: bool = False,
           tiled: bool = False) -> list[int]:
    """Indices of the masks NMS keeps, in micro-sam's order (descending score)."""
    candidates = np.arange(len(masks))
    if min_size > 0:
        candidates = candidates[np.asarray(masks.areas, dtype=np.int64) > min_size]
    if candidates.size == 0:
        return []
    sub = MaskSet(*[[getattr(masks, name)[k] for k in candidates]
                    for name in ("crops", "origins", "boxes", "areas", "iou_preds", "stability")])
    scores = torch.tensor(sub.iou_preds, dtype=torch.float32) * torch.tensor(sub.stability, dtype=torch.float32)
    order = torch.argsort(scores, descending=True).numpy()
    ii, jj = overlapping_pairs(np.asarray(sub.boxes, dtype=np.int64))
    overlaps = pair_overlaps(sub, ii, jj, intersection_over_min, tiled)
    # not (overlap <= threshold), compared in float32 like torch does; NaN suppresses as in micro-sam
    suppress = ~(overlaps <= np.float32(nms_threshold))
    ii, jj = ii[suppress], jj[suppress]
    neighbours: dict[int, list[int]] = {}
    for a, b in zip(ii.tolist(), jj.tolist()):
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    removed = np.zeros(len(sub), dtype=bool)
    keep = []
    for k in order.tolist():
        if removed[k]:
            continue
        keep.append(k)
        for other in neighbours.get(k, ()):
            removed[other] = True
    return [int(candidates[k]) for k in keep]


def to_labels(masks: MaskSet, keep: list[int], shape, min_size: int) -> tuple[np.ndarray, dict[int, float]]:
    """Labels as micro-sam's ``mask_data_to_segmentation`` paints the kept masks, plus each label's predicted
    IoU (the label's pixels all come from one mask: painting never overwrites, and relabelling only splits)."""
    from micro_sam.util import mask_data_to_segmentation

    if not keep:
        return np.zeros(shape, dtype=np.uint32), {}
    records = []
    for rank, k in enumerate(keep):
        crop = masks.crops[k]
        y0, x0 = masks.origins[k]
        h, w = crop.shape
        records.append({"segmentation": crop, "area": masks.areas[k], "bbox": [0, 0, w, h],
                        "global_bbox": [x0, y0, w, h], "rank": rank})
    labels = mask_data_to_segmentation(records, shape=tuple(shape), min_object_size=min_size)
    owner = np.zeros(shape, dtype=np.int64)
    for record in sorted(records, key=lambda r: r["area"], reverse=True):  # micro-sam's painting order
        x0, y0, w, h = record["global_bbox"]
        region = owner[y0:y0 + h, x0:x0 + w]
        region[record["segmentation"] & (region == 0)] = record["rank"] + 1
    fg = labels > 0
    ids, first = np.unique(labels[fg], return_index=True)
    owners = owner[fg][first] - 1
    scores = {int(i): float(masks.iou_preds[keep[o]]) for i, o in zip(ids, owners)}
    return np.asarray(labels, dtype=np.uint32), scores
