"""Compare two instance label images object by object (shared by the APG parity tests)."""
from __future__ import annotations

import numpy as np


def best_ious(reference: np.ndarray, other: np.ndarray) -> dict[int, float]:
    """For each object of ``reference``, the IoU with its best-overlapping object in ``other`` (0 if none)."""
    ref_ids, ref_sizes = np.unique(reference[reference > 0], return_counts=True)
    oth_ids, oth_sizes = np.unique(other[other > 0], return_counts=True)
    both = (reference > 0) & (other > 0)
    pairs, inter = np.unique(np.stack([reference[both], other[both]]), axis=1, return_counts=True)
    ref_size = dict(zip(ref_ids.tolist(), ref_sizes.tolist()))
    oth_size = dict(zip(oth_ids.tolist(), oth_sizes.tolist()))
    best = {int(i): 0.0 for i in ref_ids}
    for (a, b), n in zip(pairs.T.tolist(), inter.tolist()):
        best[a] = max(best[a], n / (ref_size[a] + oth_size[b] - n))
    return best


def assert_same_instances(reference: np.ndarray, other: np.ndarray, min_iou: float = 0.99) -> None:
    """Same number of objects and every object matched (both ways) with IoU >= ``min_iou``."""
    n_ref = len(np.unique(reference[reference > 0]))
    n_oth = len(np.unique(other[other > 0]))
    assert n_ref == n_oth, f"{n_ref} objects vs {n_oth}"
    for a, b in ((reference, other), (other, reference)):
        worst = min(best_ious(a, b).values(), default=1.0)
        assert worst >= min_iou, f"an object matches its counterpart with IoU {worst:.4f} only"
