"""Compare two instance label images object by object (shared by the APG parity tests)."""
from __future__ import annotations

import numpy as np


def _overlaps(reference: np.ndarray, other: np.ndarray, pixels: bool = False):
    """(id in reference, id in other, IoU) for every pair of overlapping objects; with ``pixels``, also the
    number of pixels that belong to one of the two only."""
    ref_ids, ref_sizes = np.unique(reference[reference > 0], return_counts=True)
    oth_ids, oth_sizes = np.unique(other[other > 0], return_counts=True)
    both = (reference > 0) & (other > 0)
    pairs, inter = np.unique(np.stack([reference[both], other[both]]), axis=1, return_counts=True)
    ref_size = dict(zip(ref_ids.tolist(), ref_sizes.tolist()))
    oth_size = dict(zip(oth_ids.tolist(), oth_sizes.tolist()))
    for (a, b), n in zip(pairs.T.tolist(), inter.tolist()):
        union = ref_size[a] + oth_size[b] - n
        yield (a, b, n / union, union - n) if pixels else (a, b, n / union)


def worst_matches(reference: np.ndarray, other: np.ndarray) -> list[tuple[float, int]]:
    """(IoU, differing pixels) of each object of ``reference`` with its best match in ``other`` ((0.0, its size)
    when it has none), worst IoU first."""
    ids, sizes = np.unique(reference[reference > 0], return_counts=True)
    best = {int(i): (0.0, int(n)) for i, n in zip(ids, sizes)}
    for a, _, iou, differing in _overlaps(reference, other, pixels=True):
        best[a] = max(best[a], (iou, -differing))
    return sorted((iou, abs(differing)) for iou, differing in best.values())


def best_ious(reference: np.ndarray, other: np.ndarray) -> dict[int, float]:
    """For each object of ``reference``, the IoU with its best-overlapping object in ``other`` (0 if none)."""
    best = {int(i): 0.0 for i in np.unique(reference[reference > 0])}
    for a, _, iou in _overlaps(reference, other):
        best[a] = max(best[a], iou)
    return best


def assert_same_instances(reference: np.ndarray, other: np.ndarray, min_iou: float = 0.99) -> None:
    """Same number of objects, at least one, and every object matched (both ways) with IoU >= ``min_iou``.

    Two empty label images are not "the same instances": a comparison that finds nothing shows nothing."""
    n_ref = len(np.unique(reference[reference > 0]))
    n_oth = len(np.unique(other[other > 0]))
    assert n_ref == n_oth, f"{n_ref} objects vs {n_oth}"
    assert n_ref > 0, "no objects on either side: nothing was compared"
    for a, b in ((reference, other), (other, reference)):
        worst = min(best_ious(a, b).values(), default=1.0)
        assert worst >= min_iou, f"an object matches its counterpart with IoU {worst:.4f} only"


def best_matches(reference: np.ndarray, other: np.ndarray) -> dict[int, int]:
    """For each object of ``reference`` that overlaps one in ``other``, the id of the best-overlapping one."""
    best: dict[int, tuple[float, int]] = {}
    for a, b, iou in _overlaps(reference, other):
        if iou > best.get(a, (0.0, 0))[0]:
            best[a] = (iou, b)
    return {a: b for a, (_, b) in best.items()}


def micro_sam_scores(predictions: list[dict], labels: np.ndarray, min_size: int = 25,
                     nms_threshold: float = 0.9) -> dict[int, float]:
    """Per label id of micro-sam's ``util.apply_nms(predictions, min_size, nms_threshold)`` (``labels``), the
    ``predicted_iou`` of the prediction its pixels were painted from.

    Which masks micro-sam keeps comes from its own NMS function; painting them as ``apply_nms`` does (largest
    first, never over painted pixels) must give ``labels`` back, which checks the reconstruction."""
    import torch
    from micro_sam import util

    areas = [int(p["segmentation"].sum()) for p in predictions]
    big = [i for i, area in enumerate(areas) if area > min_size]
    scores = (torch.tensor([predictions[i]["predicted_iou"] for i in big])
              * torch.tensor([predictions[i]["stability_score"] for i in big]))
    boxes = util._xywh_to_xyxy(torch.tensor(np.array([predictions[i]["bbox"] for i in big])))
    masks = torch.stack([predictions[i]["segmentation"] for i in big])
    keep = [big[int(k)] for k in util._batched_mask_nms(masks, boxes, scores, nms_threshold, False)]
    kept = [{"segmentation": predictions[i]["segmentation"], "area": areas[i]} for i in keep]
    assert np.array_equal(util.mask_data_to_segmentation(kept, shape=labels.shape, min_object_size=min_size),
                          labels), "micro-sam's kept masks do not paint these labels"
    owner = np.zeros(labels.shape, dtype=np.int64)
    for i in sorted(keep, key=lambda i: areas[i], reverse=True):  # apply_nms's painting order (a stable sort)
        owner[predictions[i]["segmentation"].numpy() & (owner == 0)] = i + 1
    out = {}
    for label in np.unique(labels[labels > 0]).tolist():
        owners = np.unique(owner[labels == label])
        assert len(owners) == 1 and owners[0] > 0, f"label {label} painted from masks {owners - 1}"
        out[label] = float(predictions[int(owners[0]) - 1]["predicted_iou"])
    return out


def assert_same_scores(reference: np.ndarray, reference_scores: dict[int, float], other: np.ndarray,
                       other_scores: dict[int, float], atol: float) -> None:
    """Every object of ``other`` has a score, and it equals its matched ``reference`` object's within ``atol``."""
    assert sorted(other_scores) == [int(i) for i in np.unique(other[other > 0])], "an object without a score"
    matches = best_matches(other, reference)
    assert matches, "no objects to compare"
    worst = max(abs(other_scores[o] - reference_scores[r]) for o, r in matches.items())
    assert worst <= atol, f"a predicted IoU differs from micro-sam's by {worst:.2e} (> {atol:.0e})"
