"""Label images -> ImageJ ROIs, exact and fast (numpy, roifile); the way back is :mod:`.decode`.

``labels_to_rois`` outlines every object along pixel edges (see :mod:`.tracing`), so ImageJ's own
``Roi.getMask()`` gives back exactly the object's pixels: an object in one piece without holes becomes a traced
polygon ROI (pixels touching only at a corner count as connected); one with holes or in several pieces becomes
a composite (shape) ROI whose sub-paths are its outer outlines and hole outlines.

ROI names are ``<prefix>-<id>`` with the id zero-padded (at least 4 digits) so that they sort like the ids;
stacks set the ROI's stack position (1-based) and add ``-z<slice>`` to the name only where one id occurs on
several slices — unless the caller says the slices are one object (``slice_suffix=False``: an object propagated
through a stack keeps one name, its ROIs told apart by their positions, as ImageJ's own 3D tools do). Each ROI
carries ImageJ properties ``id``, ``area`` (always in pixels), ``score`` when given, and on a calibrated image
``calibrated_area`` with its ``area_unit`` (e.g. ``µm²``, what ImageJ's Measure reports) —
``Roi.getProperty("score")`` in a macro or script."""
from __future__ import annotations

import numpy as np
from roifile import ROI_OPTIONS, ROI_TYPE, ImagejRoi

from microsam_fiji.core.errors import UserError
from microsam_fiji.rois.tracing import Outlines, trace_outlines

# ImageJ's path segment types in a composite (shape) ROI
_MOVETO, _LINETO, _CLOSE = 0.0, 1.0, 4.0

# ImageJ stores integer polygon coordinates as 16-bit numbers; beyond this, add float coordinates too
_INT16_SAFE = 32000


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


def _properties(label: int, area: int, scores, calibration=None) -> dict:
    """The ROI's ImageJ properties (roifile writes them as ImageJ's ``key: value`` lines)."""
    properties: dict[str, int | float | str] = {"id": label, "area": area}
    if scores is not None and label in scores:
        properties["score"] = float(f"{float(scores[label]):.6g}")  # 6 digits: what a ROI Manager user reads
    if calibration is not None and calibration.unit not in ("pixel", "pixels", ""):
        properties["calibrated_area"] = float(f"{area * calibration.pixel_width * calibration.pixel_height:.6g}")
        properties["area_unit"] = f"{calibration.unit}²"
    return properties


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
                   positions=None, slice_suffix: bool = True, calibration=None) -> list[ImagejRoi]:
    """One ImageJ ROI per object and slice, outlined so that ImageJ's ``Roi.getMask()`` is exactly the object.

    ``labels``: (Y,X), (N,Y,X) or (T,Z,Y,X) integer ids, 0 = background (leading axes are flattened in
    ImageJ's stack order). ``scores``: id -> score, stored as the ROI property ``score``. ``positions``: for
    a 2D image the stack position to give every ROI (default none); for a stack one position per slice, an
    int (1-based stack index, default slice + 1) or a (c, z, t) tuple for hyperstacks. ``slice_suffix``: name
    an id found on several slices ``<prefix>-<id>-z<slice>`` (default) or, False, ``<prefix>-<id>`` on every
    slice (one object through the stack). ``calibration``: the image's (:class:`~microsam_fiji.core.tiff_io.
    Calibration`); where it has a unit, each ROI also says its calibrated area. ROIs come sorted by slice, then id."""
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
    if is_stack and len(traced) > 1 and slice_suffix:
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
                                n_coordinates=b - a, integer_coordinates=relative[a:b], name=name)
                roi.properties = _properties(label, pixels, scores, calibration)
                if huge:  # beyond 16-bit coordinates ImageJ reads the float ones
                    roi.options |= ROI_OPTIONS.SUB_PIXEL_RESOLUTION
                    roi.subpixel_coordinates = verts[a:b].astype(np.float32)
            else:
                path = _composite_path([verts[starts[k]:starts[k + 1]] for k in range(k0, k1)])
                roi = ImagejRoi(roitype=ROI_TYPE.RECT, left=left, top=top, right=right, bottom=bottom,
                                shape_roi_size=path.size, multi_coordinates=path, name=name)
                roi.properties = _properties(label, pixels, scores, calibration)
            _set_position(roi, position)
            rois.append(roi)
    return rois
