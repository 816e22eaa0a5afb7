"""Point prompts from the instance decoder's maps, as micro-sam's ``_derive_point_prompts`` makes them.

The connected components and the boundary distance transform are computed with the same library calls
(elf's blockwise ``label`` and ``distance_transform``), so ids and distances are identical; only the per-object
argmax, a Python loop over ``regionprops`` in micro-sam, is vectorised here with the same tie-breaking."""
from __future__ import annotations

import numpy as np

BLOCK_SHAPE = (512, 512)
DISTANCE_HALO = (16, 16)


def seed_components(foreground, center_distances, boundary_distances, foreground_threshold=0.5,
                    center_distance_threshold=0.5, boundary_distance_threshold=0.5) -> np.ndarray:
    import elf.parallel as parallel_impl

    seeds = np.logical_and(center_distances < center_distance_threshold,
                           boundary_distances < boundary_distance_threshold)
    seeds[foreground < foreground_threshold] = 0
    cc = np.zeros(seeds.shape, dtype="uint32")
    return parallel_impl.label(seeds, out=cc, block_shape=BLOCK_SHAPE)


def boundary_distances_of(cc: np.ndarray) -> np.ndarray:
    import elf.parallel as parallel_impl
    from skimage.segmentation import find_boundaries

    inside = find_boundaries(cc, mode="outer") == 0
    inside[0, :] = inside[-1, :] = False  # keep prompts off the image border
    inside[:, 0] = inside[:, -1] = False
    return parallel_impl.distance_transform(inside, halo=DISTANCE_HALO, block_shape=BLOCK_SHAPE)


def component_centers(cc: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(N, 2) y, x per component id in increasing id order: the first pixel (C order) of the distance maximum.

    This is ``np.argmax`` over the component's bounding-box crop with outside pixels set to 0: where the
    maximum is positive it lies inside the component and the crop's C order is the image's raster order;
    where every distance is 0 the argmax is the crop's first pixel, the bounding box's top-left corner."""
    flat = cc.ravel()
    pix = np.flatnonzero(flat)
    if pix.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    ids = flat[pix]
    order = np.argsort(ids, kind="stable")  # stable: raster order within each component
    pix, ids = pix[order], ids[order]
    values = distances.ravel()[pix]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    sizes = np.diff(np.r_[starts, ids.size])
    group = np.repeat(np.arange(starts.size), sizes)
    vmax = np.maximum.reduceat(values, starts)
    hits = np.flatnonzero(values == vmax[group])
    _, first = np.unique(group[hits], return_index=True)
    best = pix[hits[first]]
    ys, xs = np.unravel_index(best, cc.shape)
    flat_zero = vmax <= 0
    if flat_zero.any():
        rows, cols = np.unravel_index(pix, cc.shape)
        ys = np.where(flat_zero, rows[starts], ys)
        xs = np.where(flat_zero, np.minimum.reduceat(cols, starts), xs)
    return np.stack([ys, xs], axis=1).astype(np.int64)


def derive_point_prompts(foreground, center_distances, boundary_distances, foreground_threshold=0.5,
                         center_distance_threshold=0.5, boundary_distance_threshold=0.5) -> np.ndarray:
    """(N, 2) y, x prompt positions, in micro-sam's order."""
    cc = seed_components(foreground, center_distances, boundary_distances, foreground_threshold,
                         center_distance_threshold, boundary_distance_threshold)
    if not cc.any():
        return np.zeros((0, 2), dtype=np.int64)
    return component_centers(cc, boundary_distances_of(cc))
