"""Label images <-> ImageJ ROIs (RoiSet.zip), exact in both directions and fast (numpy, roifile).

``labels_to_rois`` outlines every object along pixel edges (see :mod:`.roi_tracing`), so ImageJ's own
``Roi.getMask()`` gives back exactly the object's pixels: an object in one piece without holes becomes a traced
polygon ROI (pixels touching only at a corner count as connected); one with holes or in several pieces becomes
a composite (shape) ROI whose sub-paths are its outer outlines and hole outlines. ``rois_to_labels`` goes back
the way ImageJ fills selections (see :mod:`.roi_raster`).

ROI names are ``<prefix>-<id>`` with the id zero-padded (at least 4 digits) so that they sort like the ids;
stacks set the ROI's stack position (1-based) and add ``-z<slice>`` to the name only where one id occurs on
several slices. Each ROI carries ImageJ properties ``id``, ``area`` (pixels) and ``score`` when given
(``Roi.getProperty("score")`` in a macro or script)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi, roiread, roiwrite

from ..errors import UserError
from ..tiff_io import atomic_write
from .roi_raster import PixelSpans
from .roi_tracing import Outlines, trace_outlines

__all__ = ["labels_to_rois", "write_roiset", "read_roiset", "rois_to_labels", "roi_name"]

# ImageJ stores integer polygon coordinates as 16-bit numbers; beyond this, add float coordinates too
_INT16_SAFE = 32000
_MOVETO, _LINETO, _CLOSE = 0.0, 1.0, 4.0
_AREA_TYPES = (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED)


def roi_name(prefix: str, label: int, width: int = 4, slice_index: int | None = None, slice_width: int = 0) -> str:
    """``cell-0042``, or ``cell-0042-z003`` for an id that occurs on several slices (1-based slice)."""
    name = f"{prefix}-{label:0{width}d}"
    if slice_index is not None:
        name += f"-z{slice_index:0{slice_width}d}"
    return name


def _as_label_array(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim < 2:
        raise UserError(f"labels must be a 2D image (Y,X) or a stack (...,Y,X), got shape {labels.shape}")
    if labels.dtype.kind == "f":
        as_int = labels.astype(np.int64)
        if not np.array_equal(as_int, labels):
            raise UserError("labels hold non-integer values: pass a label image (one whole number per object)")
        labels = as_int
    elif labels.dtype.kind == "b":
        labels = labels.astype(np.uint8)
    elif labels.dtype.kind not in "iu":
        raise UserError(f"labels must be integers, got {labels.dtype}")
    if labels.size and labels.dtype.kind == "i" and labels.min() < 0:
        raise UserError("labels hold negative values: ids must be 0 (background) or positive")
    return labels


def _positions(positions, n_slices: int, is_stack: bool) -> list:
    if positions is None:
        return [i + 1 for i in range(n_slices)] if is_stack else [0]
    if not is_stack:
        return [positions]
    positions = list(positions)
    if len(positions) != n_slices:
        raise UserError(f"{len(positions)} positions given for {n_slices} slices: give one per slice")
    return positions


def _set_position(roi: ImagejRoi, position) -> None:
    if position is None or position == 0:
        return
    if isinstance(position, (tuple, list)):  # hyperstack (c, z, t), 1-based
        roi.c_position, roi.z_position, roi.t_position = (int(v) for v in position)
    else:
        roi.position = int(position)


def _signed_areas(outlines: Outlines) -> np.ndarray:
    """Shoelace area of every outline: positive for outer outlines (clockwise on screen), negative for holes."""
    v = outlines.vertices.astype(np.int64)
    if v.shape[0] == 0:
        return np.zeros(0, np.int64)
    starts = outlines.starts[:-1]
    nxt = np.arange(1, v.shape[0] + 1)
    nxt[outlines.starts[1:] - 1] = starts
    cross = v[:, 0] * v[nxt, 1] - v[nxt, 0] * v[:, 1]
    return np.add.reduceat(cross, starts) // 2


def _props(label: int, area: int, scores) -> str:
    text = f"id: {label}\narea: {area}\n"
    if scores is not None and label in scores:
        text += f"score: {float(scores[label]):.6g}\n"
    return text


def _composite_path(pieces: list[np.ndarray]) -> np.ndarray:
    """MOVETO x y LINETO x y ... CLOSE per piece: the path format of ImageJ's composite (shape) ROIs."""
    paths = []
    for verts in pieces:
        ops = np.empty((verts.shape[0], 3), np.float32)
        ops[:, 0] = _LINETO
        ops[0, 0] = _MOVETO
        ops[:, 1:] = verts
        paths.append(ops.ravel())
        paths.append(np.array([_CLOSE], np.float32))
    return np.concatenate(paths)


def labels_to_rois(labels: np.ndarray, scores: dict[int, float] | None = None, name_prefix: str = "cell",
                   positions=None) -> list[ImagejRoi]:
    """One ImageJ ROI per object and slice, outlined so that ImageJ's ``Roi.getMask()`` is exactly the object.

    ``labels``: (Y,X), (N,Y,X) or (T,Z,Y,X) integer ids, 0 = background (leading axes are flattened in
    ImageJ's stack order). ``scores``: id -> score, stored as the ROI property ``score``. ``positions``: for
    a 2D image the stack position to give every ROI (default none); for a stack one position per slice, an
    int (1-based stack index, default slice + 1) or a (c, z, t) tuple for hyperstacks. ROIs come sorted by
    slice, then id."""
    labels = _as_label_array(labels)
    is_stack = labels.ndim >= 3
    planes = labels.reshape(-1, *labels.shape[-2:])  # stack index order of ImageJ for (T, Z, Y, X)
    slice_positions = _positions(positions, planes.shape[0], is_stack)
    top_id = int(labels.max()) if labels.size else 0
    width = max(4, len(str(top_id)))

    # the tracer's passes over the image run faster on narrower pixels
    narrow = np.uint16 if top_id <= np.iinfo(np.uint16).max else np.uint32 if top_id < 2**32 else planes.dtype
    traced = [trace_outlines(plane.astype(narrow, copy=False)) for plane in planes]
    multi_slice_ids: set[int] = set()
    if is_stack and len(traced) > 1:
        ids_per_slice = np.concatenate([np.unique(o.labels) for o in traced])
        uniq, counts = np.unique(ids_per_slice, return_counts=True)
        multi_slice_ids = set(uniq[counts > 1].tolist())
    slice_width = len(str(planes.shape[0]))

    rois: list[ImagejRoi] = []
    for z, (outlines, position) in enumerate(zip(traced, slice_positions)):
        if outlines.labels.size == 0:
            continue
        # per object: its outlines [first, stop), its vertices [v0, v1), bounds and area, all vectorised
        change = np.flatnonzero(np.r_[True, outlines.labels[1:] != outlines.labels[:-1], True])
        first, stop = change[:-1], change[1:]
        v0, v1 = outlines.starts[first], outlines.starts[stop]
        verts = outlines.vertices
        low = np.minimum.reduceat(verts, v0)
        high = np.maximum.reduceat(verts, v0)
        relative = (verts - np.repeat(low, v1 - v0, axis=0)).astype(np.int32)
        area = np.add.reduceat(_signed_areas(outlines), first)
        huge = max(high.max(), 0) > _INT16_SAFE
        starts = outlines.starts.tolist()
        for label, a, b, k0, k1, (left, top), (right, bottom), pixels in zip(
                outlines.labels[first].tolist(), v0.tolist(), v1.tolist(), first.tolist(), stop.tolist(),
                low.tolist(), high.tolist(), area.tolist()):
            name = roi_name(name_prefix, label, width, z + 1 if label in multi_slice_ids else None, slice_width)
            if k1 - k0 == 1:  # one piece without holes: a traced polygon
                roi = ImagejRoi(roitype=ROI_TYPE.TRACED, left=left, top=top, right=right, bottom=bottom,
                                n_coordinates=b - a, integer_coordinates=relative[a:b], name=name,
                                props=_props(label, pixels, scores))
                if huge:  # beyond 16-bit coordinates ImageJ reads the float ones
                    roi.options |= ROI_OPTIONS.SUB_PIXEL_RESOLUTION
                    roi.subpixel_coordinates = verts[a:b].astype(np.float32)
            else:
                path = _composite_path([verts[starts[k]:starts[k + 1]] for k in range(k0, k1)])
                roi = ImagejRoi(roitype=ROI_TYPE.RECT, left=left, top=top, right=right, bottom=bottom,
                                shape_roi_size=path.size, multi_coordinates=path, name=name,
                                props=_props(label, pixels, scores))
            _set_position(roi, position)
            rois.append(roi)
    return rois


def write_roiset(path: str | os.PathLike, labels: np.ndarray, scores: dict[int, float] | None = None,
                 name_prefix: str = "cell", positions=None) -> Path:
    """Write the objects of ``labels`` as an ImageJ RoiSet.zip (replacing any file there, atomically).

    Labels without objects give a valid zip with no entries (Python readers get no ROIs); ImageJ's ROI Manager
    refuses such a zip with 'This ZIP archive does not contain ".roi" files', so check the object count before
    opening it there."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise UserError(f"'{path}': a ROI set is a .zip file: give a path ending in .zip")
    rois = labels_to_rois(labels, scores=scores, name_prefix=name_prefix, positions=positions)
    return write_rois(path, rois)


def write_rois(path: str | os.PathLike, rois: Iterable[ImagejRoi]) -> Path:
    """Write ROIs into a new RoiSet.zip at ``path`` (atomically; an existing file is replaced, not appended to)."""
    rois = list(rois)
    return atomic_write(path, lambda tmp: roiwrite(tmp, rois, mode="w"))


def read_roiset(path: str | os.PathLike) -> list[ImagejRoi]:
    """The ROIs of a RoiSet.zip, a single .roi file, or the overlay of an ImageJ TIFF."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"ROI file '{path}' not found: check the path")
    try:
        rois = roiread(path)
    except Exception as err:  # zipfile.BadZipFile, struct errors, ValueError from roifile
        raise UserError(f"'{path}' is not an ImageJ ROI file or RoiSet.zip ({err})") from None
    if isinstance(rois, list):
        if not rois and path.suffix.lower() in (".tif", ".tiff"):
            raise UserError(f"'{path}' holds no ImageJ ROIs (overlay): give a RoiSet.zip or .roi file")
        return rois
    return [rois]


_NAME = re.compile(r"^(?P<prefix>.*)-(?P<id>\d+)(?:-z\d+)?$")


def _ids_from_names(rois: Sequence[ImagejRoi], slices: list[tuple[int, ...]]) -> list[int]:
    """Ids parsed from names like ``cell-0042`` when every ROI has one (same prefix, no id twice on a slice);
    otherwise 1, 2, 3, ... in order."""
    matches = [_NAME.match(r.name or "") for r in rois]
    if matches and all(matches) and len({m["prefix"] for m in matches}) == 1:
        ids = [int(m["id"]) for m in matches]
        seen = [(i, z) for i, zs in zip(ids, slices) for z in zs]
        if 0 not in ids and len(seen) == len(set(seen)):
            return ids
    return list(range(1, len(rois) + 1))


def _roi_slices(roi: ImagejRoi, lead: tuple[int, ...], axes: str) -> tuple[int, ...]:
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
            c = roi.subpixel_coordinates.astype(np.float64)
            spans.add_polygon(index, c[:, 0], c[:, 1], integer=False)
        elif roi.integer_coordinates is not None:
            c = roi.integer_coordinates.astype(np.int64) + (roi.left, roi.top)
            spans.add_polygon(index, c[:, 0], c[:, 1], integer=True)
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
    slices = [_roi_slices(r, lead, axes) for r in rois]
    ids = np.asarray(_ids_from_names(rois, slices), np.int64)
    if ids.size and ids.max() > np.iinfo(np.uint32).max:
        raise UserError("ROI ids exceed 2**32: rename the ROIs")

    spans = PixelSpans()
    for i, roi in enumerate(rois):
        _add_roi(spans, i, roi)
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
