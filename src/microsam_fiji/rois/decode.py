"""ImageJ ROIs (a RoiSet.zip edited in Fiji) -> a label image, filled the way ImageJ fills selections
(:mod:`.raster`); ids from the ROI names where they are ours, else in ROI order."""
from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np
from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi

from microsam_fiji.core.errors import UserError
from microsam_fiji.rois.raster import PixelSpans
from microsam_fiji.rois.roiset import read_roiset

_AREA_TYPES = (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED)


_NAME = re.compile(r"^(?P<prefix>.*)-(?P<id>\d+)(?:-z\d+)?$")


def _ids_from_names(rois: Sequence[ImagejRoi], slices: list[tuple[int, ...]]) -> list[int]:
    """Ids parsed from names like ``cell-0042`` when every ROI has one (same prefix, no id twice on a slice);
    otherwise 1, 2, 3, ... in order."""
    found = [_NAME.match(r.name or "") for r in rois]
    matches = [m for m in found if m is not None]
    if matches and len(matches) == len(found) and len({m["prefix"] for m in matches}) == 1:
        ids = [int(m["id"]) for m in matches]
        seen = [(i, z) for i, zs in zip(ids, slices) for z in zs]
        if 0 not in ids and len(seen) == len(set(seen)):
            return ids
    return list(range(1, len(rois) + 1))


def roi_slices(roi: ImagejRoi, lead: tuple[int, ...], axes: str) -> tuple[int, ...]:
    """Stack indices (0-based) a ROI belongs to: its stack position, else its hyperstack (c, z, t) position
    mapped through ``axes`` (the letters of the leading dimensions), else every slice."""
    n_slices = int(np.prod(lead)) if lead else 1
    if roi.position:
        index = roi.position - 1
    elif roi.c_position or roi.z_position or roi.t_position:
        given = {"C": roi.c_position, "Z": roi.z_position, "T": roi.t_position}
        index = 0
        for letter, size in zip(axes, lead):
            index = index * size + max(given.get(letter, 0), 1) - 1
        # a channel position is dropped (labels have no channels); a missing z or t axis is an error
        missing = [a for a in "ZT" if given[a] > 1 and a not in axes]
        if missing:
            raise UserError(f"ROI '{roi.name}' has a {'/'.join(missing)} position but the target has no such "
                            "axis: give the full stack shape and axes")
    else:  # ImageJ: a ROI without position belongs to every slice
        return tuple(range(n_slices))
    if index >= n_slices:
        raise UserError(f"ROI '{roi.name}' is on slice {index + 1} but the target has {n_slices}: give the "
                        "stack's full shape")
    return (index,)


def _add_roi(spans: PixelSpans, index: int, roi: ImagejRoi) -> None:
    name = roi.name or f"#{index + 1}"
    if roi.composite:
        if roi.multi_coordinates is None:
            raise UserError(f"ROI '{name}' is a composite ROI without its path: save it again in ImageJ")
        try:
            rings = ImagejRoi.path2coords(roi.multi_coordinates)
        except (NotImplementedError, RuntimeError):
            raise UserError(f"ROI '{name}' has curved or broken path segments, which cannot be converted "
                            "exactly: convert it to a polygon first") from None
        for ring in rings:
            spans.add_polygon(index, ring[:, 0], ring[:, 1], integer=False)
    elif roi.roitype in _AREA_TYPES:
        if roi.options & ROI_OPTIONS.SPLINE_FIT:
            raise UserError(f"ROI '{name}' is spline-fitted, which ImageJ re-computes on opening: convert it "
                            "to a polygon (Edit > Selection > Interpolate) first")
        # ellipses and rotated rectangles are filled from their stored polygon; ImageJ recomputes a rotated
        # rectangle's polygon from its corners, which can move a pixel whose centre lies exactly on an edge
        if roi.subpixel_coordinates is not None:
            xy = roi.subpixel_coordinates.astype(np.float64)
            spans.add_polygon(index, xy[:, 0], xy[:, 1], integer=False)
        elif roi.integer_coordinates is not None:
            ij = roi.integer_coordinates.astype(np.int64) + (roi.left, roi.top)
            spans.add_polygon(index, ij[:, 0], ij[:, 1], integer=True)
    elif roi.roitype == ROI_TYPE.RECT:
        if roi.rounded_rect_arc_size:
            raise UserError(f"ROI '{name}' is a rounded rectangle, which cannot be converted exactly: "
                            "convert it to a polygon first")
        spans.add_rect(index, roi.left, roi.top, roi.right, roi.bottom)
    elif roi.roitype == ROI_TYPE.OVAL:
        spans.add_oval(index, roi.left, roi.top, roi.right - roi.left, roi.bottom - roi.top)
    else:
        kind = getattr(roi.roitype, "name", str(roi.roitype)).lower()
        raise UserError(f"ROI '{name}' is a {kind} selection, not an area: remove it from the set")


class RoisOutsideWarning(UserWarning):
    """ROIs reach beyond the label image (a --shape or --like image smaller than the one they were drawn on)."""


def _warn_outside(rois: Sequence[ImagejRoi], height: int, width: int) -> None:
    """Warn, in one line, about ROIs that the label image cuts or leaves out entirely."""
    import warnings

    # ImagejRoi's bounds: left/top inclusive, right/bottom exclusive, as ImageJ's Rectangle
    outside, cut = [], []
    for r in rois:
        if r.right <= 0 or r.bottom <= 0 or r.left >= width or r.top >= height:
            outside.append(r)
        elif r.left < 0 or r.top < 0 or r.right > width or r.bottom > height:
            cut.append(r)
    if outside or cut:
        named = ", ".join((r.name or "?") for r in (outside + cut)[:3])
        warnings.warn(f"{len(outside)} ROI(s) lie outside the {height}x{width} label image and {len(cut)} reach "
                      f"beyond it ({named}...): they are left out or cut; give the size of the image they were "
                      "drawn on (--like IMAGE or a larger --shape)", RoisOutsideWarning, stacklevel=3)


def rois_to_labels(rois_or_path, shape: Sequence[int], axes: str | None = None) -> np.ndarray:
    """Rasterise area ROIs into a uint32 label image of ``shape`` ((Y,X), (N,Y,X), ...), as ImageJ fills them.

    ``rois_or_path``: ImagejRoi list, or the path of a RoiSet.zip / .roi file. Ids come from names like
    ``cell-0042`` when all ROIs are named that way (so label -> ROI -> label round trips keep ids), else ROI
    i gets id i + 1. Where ROIs overlap the later one wins. Stack ROIs go to their stack position's slice; ROIs
    with hyperstack positions use ``axes``, the ImageJ letters of the leading dimensions (default Z, TZ for
    4D, as ImageJ orders hyperstacks); a ROI without position goes to every slice."""
    rois = read_roiset(rois_or_path) if isinstance(rois_or_path, (str, os.PathLike)) else list(rois_or_path)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or min(shape) <= 0:
        raise UserError(f"shape must be (Y,X) or (...,Y,X) with positive sizes, got {shape}")
    lead, (height, width) = shape[:-2], shape[-2:]
    axes = (axes or {0: "", 1: "Z", 2: "TZ", 3: "TZC"}.get(len(lead), "")).upper()
    if len(axes) != len(lead) or set(axes) - set("CZT"):
        raise UserError(f"axes '{axes}' do not fit the leading dimensions {lead}: one of C, Z, T per dimension")
    n_slices = int(np.prod(lead)) if lead else 1
    slices = [roi_slices(r, lead, axes) for r in rois]
    ids = np.asarray(_ids_from_names(rois, slices), np.int64)
    if ids.size and ids.max() > np.iinfo(np.uint32).max:
        raise UserError("ROI ids exceed 2**32: rename the ROIs")

    spans = PixelSpans()
    for i, roi in enumerate(rois):
        _add_roi(spans, i, roi)
    _warn_outside(rois, height, width)  # after each ROI was checked: a refused ROI gets its own error first
    owner, y, x = spans.pixels(height, width)

    out = np.zeros((n_slices, height, width), np.uint32)
    if owner.size:
        # one pixel entry per slice the ROI is on
        n_on = np.array([len(s) for s in slices])
        per_owner = n_on[owner]
        rep = np.repeat(np.arange(owner.size), per_owner)
        offsets = np.concatenate([np.asarray(s, np.int64) for s in slices]) if slices else np.zeros(0, np.int64)
        first = np.cumsum(n_on) - n_on
        k = np.arange(rep.size) - np.repeat(np.cumsum(per_owner) - per_owner, per_owner)
        z = offsets[first[owner[rep]] + k]
        flat = (z * height + y[rep]) * width + x[rep]
        owner = owner[rep]
        flat_out = out.reshape(-1)
        if np.bincount(flat, minlength=flat_out.size).max() > 1:
            # overlapping ROIs: the later ROI (higher index) wins, as when ImageJ fills them in order
            top = np.full(flat_out.size, -1, np.int64)
            np.maximum.at(top, flat, owner)
            hit = top >= 0
            flat_out[hit] = ids[top[hit]]
        else:
            flat_out[flat] = ids[owner]
    return out.reshape(shape)
