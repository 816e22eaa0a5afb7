"""Label images that are hard to outline exactly (holes, diagonal touches, several pieces) and random ones, for
the ROI round-trip tests in Python and in ImageJ."""
from __future__ import annotations

import numpy as np


def hard_shapes() -> tuple[np.ndarray, set[int]]:
    """A 40x48 label image of the cases that break naive outlining; returns it and the ids needing composite ROIs
    (holes or several pieces)."""
    lab = np.zeros((40, 48), np.uint32)
    lab[0:6, 0:8] = 1                      # touches the top-left corner, with a hole
    lab[1:5, 2:4] = 0
    lab[6:10, 0:8] = 2                     # touches 1 along a whole edge
    lab[2:12, 10] = 3                      # 1-pixel-wide vertical line
    lab[11, 10:16] = 3                     # ... turning into a 1-pixel-wide horizontal line (L, concave)
    for i in range(6):                     # diagonal staircase: pixels touch only at corners
        lab[1 + i, 18 + i] = 4
    lab[14:22, 0:10] = 5                   # U shape (concave), touching the left border
    lab[14:19, 3:7] = 0
    lab[14:20, 12:20] = 6                  # ring with one hole ...
    lab[16:18, 14:18] = 0
    lab[16:18, 15:17] = 7                  # ... holding another object
    lab[24:30, 0:6] = 8                    # two pieces with one id
    lab[24:27, 8:11] = 8
    lab[33:40, 40:48] = 9                  # bottom-right corner, with two holes, one touching the other diagonally
    lab[35, 42] = 0
    lab[36, 43] = 0
    lab[24:32, 14:22] = 10                 # hole whose pixels touch the outside only diagonally
    lab[25:31, 15:21] = 0
    lab[31, 21] = 0
    lab[30, 20] = 10                       # ... and an island of its own id inside its hole
    lab[27:29, 17:19] = 10
    yy, xx = np.mgrid[0:40, 0:48]
    lab[((yy - 8) ** 2 + (xx - 36) ** 2 < 30) & (lab == 0)] = 11   # digital disk
    lab[(yy >= 30) & (yy < 40) & ((xx + yy) % 2 == 0) & (xx < 10)] = 12   # checkerboard: one object, all diagonal
    lab[(yy >= 30) & (yy < 40) & ((xx + yy) % 2 == 1) & (xx < 10)] = 13   # ... interleaved with another
    lab[0, 47] = 70000                     # single pixel with a 5-digit id at the top-right corner
    composite = {1, 6, 8, 9, 10, 12, 13}  # 12 and 13 enclose pixels of each other
    return lab, composite


def random_labels(seed: int, shape=(48, 40), n_ids=6, fill=0.6) -> np.ndarray:
    """Noise labels: every pixel configuration (diagonals, holes, 1-pixel parts) shows up."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(1, n_ids + 1, size=shape).astype(np.uint32)
    return lab * (rng.random(shape) < fill)


def random_blobs(seed: int, shape=(96, 96), n=25) -> np.ndarray:
    """Smooth random blobs, many with holes, touching each other and the border."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random(shape), 2.0)
    lab = np.zeros(shape, np.uint32)
    seeds = rng.integers(0, shape, size=(n, 2))
    dist = np.full(shape, np.inf)
    yy, xx = np.indices(shape)
    for i, (y, x) in enumerate(seeds, 1):
        d = np.hypot(yy - y, xx - x)
        lab[d < dist] = i
        dist = np.minimum(dist, d)
    lab[field < np.quantile(field, 0.35)] = 0  # punch holes and gaps
    return lab
