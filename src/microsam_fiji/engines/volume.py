"""3D objects from z-stacks: micro-sam's ``automatic_3d_segmentation`` with our engine as the 2D segmenter.

micro-sam segments every plane of a volume in 2D, offsets each plane's ids by the ids before it (so that they are
unique across the stack) and merges the planes' objects across z with ``merge_instance_segmentation_3d`` (a
multicut on their overlaps, ``beta=0.5``, background edges repulsive; ``gap_closing`` and ``min_z_extent`` as
micro-sam means them). Here the planes come from :func:`~microsam_fiji.engines.segment.segment_plane` (our engine,
the embedding cache, tiling as in 2D), offset the same way, and the merge is micro-sam's own function, called as
``automatic_3d_segmentation`` calls it. The merged ids are then made sequential (1..n: the object count is the
highest id; micro-sam leaves the multicut's ids). A TZYX stack is a volume per time point, ids unique across time.

Scores: a 3D object's score is the mean of APG's scores (predicted IoU) of the 2D objects it was merged from.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.images import Planes
from microsam_fiji.core.progress import report

SlicesFn = Callable[[np.ndarray, int], tuple[np.ndarray, dict[int, float]]]

MERGE_BETA = 0.5  # what automatic_3d_segmentation passes to merge_instance_segmentation_3d


def check_merge_options(volume: bool, gap_closing: int | None, min_z_extent: int | None) -> None:
    """Refuse, in one line, merge options without ``volume`` or that are no slice counts.

    Args:
        volume: whether 3D objects are asked for.
        gap_closing, min_z_extent: micro-sam's merge options (None: micro-sam's default, off).

    Raises:
        UserError: naming the fix."""
    for name, value in (("gap_closing", gap_closing), ("min_z_extent", min_z_extent)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise UserError(f"{name}={value!r}: give a number of slices (0 or more)")
        if value and not volume:
            raise UserError(f"{name} merges objects across z: it needs 3D segmentation (volume=True, --3d, '3d')")


def check_volume(planes: Planes) -> None:
    """A stack that has z slices to merge, or one line saying why not (a 2D image; a time series without z).

    Raises:
        UserError: naming the fix."""
    sizes = dict(zip(planes.stack_axes, planes.stack_shape))
    n_z, n_t = sizes.get("Z", 1), sizes.get("T", 1)
    if n_z > 1:
        return
    if n_t > 1:
        raise UserError(
            f"3D objects need z slices, and this stack has {n_t} time frames{' of one slice' if 'Z' in sizes else ''}"
            ": objects are not tracked across time here (micro-sam's tracking needs a Trackastra model that is "
            "downloaded from the network, as micro_sam.annotator_tracking does); segment the frames in 2D (leave out "
            "volume=True / --3d), or give the axes as ZYX if the frames are z slices")
    raise UserError("3D objects need a z-stack, and this image is one plane: segment it in 2D (leave out "
                    "volume=True / --3d)")


def merge_slices(slice_segmentation: np.ndarray, gap_closing: int | None = None,
                 min_z_extent: int | None = None) -> np.ndarray:
    """micro-sam's ``merge_instance_segmentation_3d`` as ``automatic_3d_segmentation`` calls it.

    Args:
        slice_segmentation: (Z, Y, X) per-plane labels, ids offset plane by plane (unique across z).
        gap_closing, min_z_extent: micro-sam's options (None or 0: off).

    Returns:
        The merged (Z, Y, X) labels, as micro-sam returns them (ids not sequential)."""
    from micro_sam.multi_dimensional_segmentation import merge_instance_segmentation_3d

    return merge_instance_segmentation_3d(slice_segmentation, beta=MERGE_BETA, with_background=True,
                                          gap_closing=gap_closing, min_z_extent=min_z_extent, verbose=False)


def scores_3d(slice_segmentation: np.ndarray, slice_scores: dict[int, float], merged: np.ndarray
              ) -> dict[int, float]:
    """Each merged object's score: the mean of the scores of the 2D objects it holds (a 2D object belongs to the
    merged object that holds most of its pixels; gap closing may have grown or renumbered it).

    Args:
        slice_segmentation: the per-plane labels the merge started from.
        slice_scores: their scores by id (empty for AIS: no scores).
        merged: the merged labels.

    Returns:
        Score by merged id, for the merged objects that hold a scored 2D object."""
    if not slice_scores:
        return {}
    both = (slice_segmentation > 0) & (merged > 0)
    pairs, counts = np.unique(np.stack([slice_segmentation[both], merged[both]]), axis=1, return_counts=True)
    owner: dict[int, tuple[int, int]] = {}
    for (piece, obj), n in zip(pairs.T.tolist(), counts.tolist()):
        if n > owner.get(piece, (0, 0))[0]:
            owner[piece] = (n, obj)
    pieces: dict[int, list[float]] = defaultdict(list)
    for piece, (_, obj) in owner.items():
        if piece in slice_scores:
            pieces[obj].append(slice_scores[piece])
    return {obj: float(np.mean(values)) for obj, values in pieces.items()}


def segment_volumes(planes: Planes, segment_slices: SlicesFn, gap_closing: int | None = None,
                    min_z_extent: int | None = None) -> tuple[np.ndarray, dict[int, float]]:
    """3D labels of ``planes`` (one volume per time point), see the module doc.

    Args:
        planes: the image's planes (:func:`~microsam_fiji.core.images.to_planes`; :func:`check_volume` passed).
        segment_slices: ``(planes (Z, Y, X[, 3]), index of the first plane in the stack)`` -> the planes' labels
            with ids offset plane by plane from 1 (as micro-sam's ``_segment_slices``) and their scores by id.
        gap_closing, min_z_extent: micro-sam's merge options.

    Returns:
        uint32 labels shaped like the stack (``planes.label_shape``), ids 1..n unique across time, and scores by
        id."""
    from skimage.segmentation import relabel_sequential

    sizes = dict(zip(planes.stack_axes, planes.stack_shape))
    n_t, n_z = sizes.get("T", 1), sizes["Z"]
    plane_shape = planes.data.shape[1:]
    # (T, Z, planes) in the stack's order: index each time point's volume without copying the planes around
    stack = planes.data.reshape(planes.stack_shape + plane_shape)
    if planes.stack_axes == "ZT":
        stack = np.swapaxes(stack, 0, 1)
    stack = stack.reshape((n_t, n_z) + plane_shape)
    out = np.zeros((n_t, n_z) + plane_shape[:2], dtype=np.uint32)
    scores: dict[int, float] = {}
    offset = 0
    for t in range(n_t):
        slice_segmentation, slice_scores = segment_slices(stack[t], t * n_z)
        report("merging objects across z", t, n_t)
        merged = merge_slices(slice_segmentation.copy(), gap_closing, min_z_extent)
        relabeled, forward, _ = relabel_sequential(np.asarray(merged, dtype=np.uint32))
        volume_scores = scores_3d(slice_segmentation, slice_scores, merged)
        out[t] = np.where(relabeled > 0, relabeled + np.uint32(offset), 0)
        scores.update({int(forward[obj]) + offset: s for obj, s in volume_scores.items()})
        offset += int(relabeled.max())
    if planes.stack_axes == "ZT":
        out = np.swapaxes(out, 0, 1)
    return out.reshape(planes.label_shape), scores
