"""ImageJ selections as μSAM prompts, for ``micro-sam Prompt``: the ROIs come as roifile ``ImagejRoi`` objects
(ImageJ's ``RoiEncoder`` bytes, from the current selection or the ROI Manager, or a RoiSet.zip made in Fiji).

* a point or multi-point selection: one object per point; ImageJ's multi-point counters mark negative points —
  **counter 1 is negative**, every other counter positive — and a multi-point with a negative point is one
  object (its positive points say what it is, its negative points what it is not);
* a rectangle: a box prompt, with the point selections that lie inside it (box + points);
* an oval, polygon, freehand, traced or composite selection: a mask prompt (filled as ImageJ fills it);
* a line, an angle or a text ROI is no prompt: one line says so.

On a stack a ROI's position says its slice; a ROI without a position is on the current slice."""
from __future__ import annotations

import numpy as np
from roifile import ROI_SUBTYPE, ROI_TYPE, ImagejRoi

from microsam_fiji.core.errors import UserError
from microsam_fiji.engines.prompted import NEGATIVE, POSITIVE, PromptObject
from microsam_fiji.rois.decode import roi_slices, rois_to_labels

NEGATIVE_COUNTER = 1
_LINES = (ROI_TYPE.LINE, ROI_TYPE.POLYLINE, ROI_TYPE.FREELINE, ROI_TYPE.ANGLE)
_AREAS = (ROI_TYPE.OVAL, ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED)


def _points(roi: ImagejRoi) -> np.ndarray:
    """(N, 2) as (y, x) in image pixels, as ImageJ stores a point selection's coordinates."""
    if roi.subpixel_coordinates is not None:
        xy = np.asarray(roi.subpixel_coordinates, np.float64)
    else:
        xy = np.asarray(roi.integer_coordinates, np.float64) + (roi.left, roi.top)
    return xy[:, ::-1]


def _name(roi: ImagejRoi, index: int) -> str:
    return roi.name or f"#{index + 1}"


def _plane(roi: ImagejRoi, lead: tuple[int, ...], axes: str, current: int) -> int:
    slices = roi_slices(roi, lead, axes)
    return current if len(slices) != 1 or not lead else slices[0]


def prompts_from_rois(rois: list[ImagejRoi], shape: tuple[int, ...], axes: str = "", current: int = 0
                      ) -> list[PromptObject]:
    """The objects that ``rois`` prompt for, in ROI order (boxes take the points inside them).

    Args:
        rois: the selections.
        shape: the image's label shape, (Y, X) or (planes..., Y, X).
        axes: the ImageJ letters of the leading (stack) dimensions, e.g. ``"Z"`` or ``"TZ"``.
        current: the current plane (0-based): where a ROI without a position goes.

    Returns:
        The prompt objects.

    Raises:
        UserError: no ROI, or one that is no prompt (a line, text)."""
    if not rois:
        raise UserError("no prompt: make a point, rectangle or area selection on the object first")
    lead, plane_shape = tuple(shape[:-2]), tuple(shape[-2:])
    boxes: list[PromptObject] = []
    point_groups: list[PromptObject] = []
    masks: list[PromptObject] = []
    for index, roi in enumerate(rois):
        name = _name(roi, index)
        plane = _plane(roi, lead, axes, current)
        if roi.subtype == ROI_SUBTYPE.TEXT:
            raise UserError(f"ROI '{name}' is a text ROI, not a prompt: use a point, a rectangle or an area selection")
        if roi.roitype in _LINES:
            raise UserError(f"ROI '{name}' is a line, not a prompt: use a point, a rectangle or an area selection")
        if roi.roitype == ROI_TYPE.POINT:
            points = _points(roi)
            counters = (np.zeros(len(points), np.int64) if roi.counters is None
                        else np.asarray(roi.counters, np.int64)[:len(points)])
            labels = np.where(counters == NEGATIVE_COUNTER, NEGATIVE, POSITIVE)
            if (labels == NEGATIVE).any():
                point_groups.append(PromptObject(points=points, labels=labels, plane=plane))
            else:
                point_groups.extend(PromptObject(points=points[i:i + 1], labels=labels[i:i + 1], plane=plane)
                                    for i in range(len(points)))
        elif roi.roitype == ROI_TYPE.RECT and not roi.composite and roi.subtype != ROI_SUBTYPE.ROTATED_RECT:
            boxes.append(PromptObject(box=np.array([roi.top, roi.left, roi.bottom, roi.right], np.float64),
                                      plane=plane))
        elif roi.roitype in _AREAS or roi.composite or roi.roitype == ROI_TYPE.RECT:
            filled = rois_to_labels([roi], lead + plane_shape, axes=axes or None).reshape((-1,) + plane_shape)[plane]
            masks.append(PromptObject(mask=filled > 0, plane=plane))
        else:
            raise UserError(f"ROI '{name}' ({ROI_TYPE(roi.roitype).name.lower()}) is not a prompt: use a point, a "
                            "rectangle or an area selection")
    # points inside a box, on its plane, refine that box (the first box that holds all of a group's points)
    loose = []
    for group in point_groups:
        for box in boxes:
            assert box.box is not None
            y0, x0, y1, x1 = box.box
            pts = group.points
            if group.plane == box.plane and ((pts[:, 0] >= y0) & (pts[:, 0] < y1) & (pts[:, 1] >= x0)
                                              & (pts[:, 1] < x1)).all():
                box.points = np.concatenate([box.points, pts])
                box.labels = np.concatenate([box.labels, group.labels])
                break
        else:
            loose.append(group)
    return boxes + loose + masks
