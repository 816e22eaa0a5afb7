"""Promptable segmentation: μSAM's own prompt functions on the embeddings APG already cached.

What corrects an APG result: a point (one object per positive point; negative points say "not this"), a box
(with the points inside it), or a rough mask. Each object is micro-sam's
``micro_sam.prompt_based_segmentation.segment_from_points / segment_from_box / segment_from_box_and_points /
segment_from_mask`` with the annotator's defaults (the best of SAM's three masks for a single positive point), on
the per-image state of :mod:`.state`, so a prompt after APG on the same image encodes nothing. Tiled embeddings
work too: micro-sam picks the tile that holds the prompt."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.images import to_planes
from microsam_fiji.engines.segment import DEFAULT_TILE_THRESHOLD, tiling
from microsam_fiji.engines.state import image_state
from microsam_fiji.models.load import load_model
from microsam_fiji.models.model import Model

POSITIVE, NEGATIVE = 1, 0  # SAM's point labels


@dataclass
class PromptObject:
    """One object to segment: ``points`` (N, 2) as (y, x) with ``labels`` (1 positive, 0 negative), a ``box``
    (y0, x0, y1, x1; max exclusive, as ImageJ's rectangles), or a ``mask`` (bool, the plane's shape); a box may
    carry points; ``plane``: which plane of a stack (0 for a 2D image)."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    box: np.ndarray | None = None
    mask: np.ndarray | None = None
    plane: int = 0

    @property
    def kind(self) -> str:
        """``points``, ``box``, ``box+points`` or ``mask``: which of micro-sam's functions segments it."""
        if self.mask is not None:
            return "mask"
        if self.box is not None:
            return "box+points" if len(self.points) else "box"
        return "points"


@dataclass
class PromptSegmentation:
    """``labels``: uint32, one id per object in the order given (a later object paints over an earlier one);
    ``scores``: SAM's predicted IoU of each object's mask; ``encoded``: image encoder runs (0 when cached)."""

    labels: np.ndarray
    scores: dict[int, float]
    encoded: int


def objects_from_arrays(points=None, point_labels=None, objects=None, boxes=None, masks=None) -> list[PromptObject]:
    """Prompt objects from plain arrays (the Python API and the CLI's CSV).

    Args:
        points: (N, 2) as (y, x).
        point_labels: (N,) 1 positive / 0 negative (default: all positive).
        objects: (N,) an object id per point: points with one id are one object. Default: one object per
            positive point, or all points one object when some are negative.
        boxes: (M, 4) as (y0, x0, y1, x1), max exclusive; a point inside a box (and without an object id of its
            own) goes with that box.
        masks: (K, Y, X) or a list of 2D bool masks.

    Returns:
        The objects: boxes first, then point groups, then masks."""
    pts = np.zeros((0, 2)) if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = (np.full(len(pts), POSITIVE) if point_labels is None
              else np.asarray(point_labels, dtype=np.int64).reshape(-1))
    if len(labels) != len(pts):
        raise UserError(f"{len(pts)} points but {len(labels)} point labels: give one label (1 or 0) per point")
    if not set(np.unique(labels).tolist()) <= {POSITIVE, NEGATIVE}:
        raise UserError("point labels are 1 (positive) or 0 (negative)")
    out: list[PromptObject] = []
    free = np.ones(len(pts), bool)
    for box in [] if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        inside = free & (pts[:, 0] >= box[0]) & (pts[:, 0] < box[2]) & (pts[:, 1] >= box[1]) & (pts[:, 1] < box[3])
        if objects is None:
            free &= ~inside
        else:
            inside[:] = False
        out.append(PromptObject(points=pts[inside], labels=labels[inside], box=box))
    if objects is not None:
        ids = np.asarray(objects).reshape(-1)
        if len(ids) != len(pts):
            raise UserError(f"{len(pts)} points but {len(ids)} object ids: give one object id per point")
        for obj in dict.fromkeys(ids.tolist()):
            group = ids == obj
            out.append(PromptObject(points=pts[group], labels=labels[group]))
    elif free.any():
        if (labels[free] == NEGATIVE).any():
            out.append(PromptObject(points=pts[free], labels=labels[free]))
        else:
            out.extend(PromptObject(points=pts[i:i + 1], labels=labels[i:i + 1]) for i in np.flatnonzero(free))
    for mask in [] if masks is None else masks:
        out.append(PromptObject(mask=np.asarray(mask, dtype=bool)))
    return out


def _check(obj: PromptObject, shape: tuple[int, int], n_planes: int) -> None:
    height, width = shape
    if not 0 <= obj.plane < n_planes:
        raise UserError(f"a prompt is on plane {obj.plane + 1}, but the image has {n_planes}: prompt on the image's "
                        "own slices")
    if len(obj.points) and not ((obj.points >= 0).all() and (obj.points[:, 0] < height).all()
                                and (obj.points[:, 1] < width).all()):
        raise UserError(f"a point prompt lies outside the {width}x{height} image: put the points on the image")
    if obj.kind == "points" and not (obj.labels == POSITIVE).any():
        raise UserError("an object has only negative points: add a positive point on the object")
    if obj.box is not None:
        y0, x0, y1, x1 = obj.box
        if not (y1 > y0 and x1 > x0):
            raise UserError("a box prompt has zero area: drag a rectangle around the object")
        if y1 <= 0 or x1 <= 0 or y0 >= height or x0 >= width:
            raise UserError(f"a box prompt lies outside the {width}x{height} image: draw it on the image")
    if obj.mask is not None:
        if obj.mask.shape != shape:
            raise UserError(f"a mask prompt is {obj.mask.shape[::-1]} but the image is {width}x{height}: give a "
                            "mask of the image's size")
        if not obj.mask.any():
            raise UserError("a mask prompt is empty (it covers no pixel of the image): draw it on the object")


def predict_object(model: Model, embeddings, obj: PromptObject) -> tuple[np.ndarray, float]:
    """micro-sam's mask for one object on ``embeddings`` (the cached per-image embeddings, tiled or not).

    Args:
        model: the model whose predictor segments (its lock held by the caller).
        embeddings: micro-sam's image embeddings of the object's plane.
        obj: the prompts.

    Returns:
        The (Y, X) bool mask and SAM's predicted IoU for it."""
    from micro_sam import prompt_based_segmentation as pbs

    predictor = model.predictor
    if obj.kind == "mask":
        masks, scores, _ = pbs.segment_from_mask(predictor, obj.mask, image_embeddings=embeddings, return_all=True)
    elif obj.kind == "points":
        # a single positive point: micro-sam keeps the best of SAM's three masks (and returns all three scores)
        masks, scores, _ = pbs.segment_from_points(predictor, obj.points, obj.labels, image_embeddings=embeddings,
                                                   return_all=True)
    else:
        box = obj.box  # max exclusive: ImageJ's rectangles and micro-sam's boxes from masks alike
        if obj.kind == "box":
            masks, scores, _ = pbs.segment_from_box(predictor, box, image_embeddings=embeddings, return_all=True)
        else:
            masks, scores, _ = pbs.segment_from_box_and_points(predictor, box, obj.points, obj.labels,
                                                               image_embeddings=embeddings, return_all=True)
    return np.asarray(masks)[0].astype(bool), float(np.max(scores))


# micro-sam annotator's defaults for segmenting an object through a volume (sam_annotator/_widgets.py)
PROPAGATION = {"projection": "single_point", "iou_threshold": 0.5, "box_extension": 0.05}


def volume_embeddings(model: Model, planes: np.ndarray) -> dict:
    """micro-sam's 3D embeddings (``precompute_image_embeddings(..., ndim=3)``'s layout) from the per-plane
    cached states: each plane is encoded once, whether by APG, a prompt or this."""
    states = [image_state(model, plane, decoder=False) for plane in planes]
    if any(state.tiled for state in states):
        raise UserError("propagate works on untiled stacks: segment planes up to 1024 px on a side, or leave out "
                        "propagate")
    features = np.stack([np.asarray(state.embeddings["features"]) for state in states])
    first = states[0].embeddings
    return {"features": features, "input_size": first["input_size"], "original_size": first["original_size"]}


def propagate(model: Model, planes: np.ndarray, mask: np.ndarray, plane: int) -> np.ndarray:
    """An object segmented on ``plane``, extended through the stack by micro-sam's ``segment_mask_in_volume``
    with the annotator's defaults (single-point projection, IoU threshold 0.5, box extension 0.05).

    Args:
        model: the model (its lock held by the caller).
        planes: the stack's planes (N, Y, X[, 3]).
        mask: the object's (Y, X) mask on ``plane``.
        plane: where the prompt was.

    Returns:
        The (N, Y, X) bool mask of the object in every plane it continues to."""
    from micro_sam.multi_dimensional_segmentation import segment_mask_in_volume

    embeddings = volume_embeddings(model, planes)
    segmentation = np.zeros((len(planes),) + mask.shape, dtype=np.uint32)
    segmentation[plane] = mask
    out, _ = segment_mask_in_volume(segmentation, model.predictor, embeddings, np.array([plane]), stop_lower=False,
                                    stop_upper=False, **PROPAGATION)
    return np.asarray(out) > 0


def segment_from_prompts(image, model: Model | str | os.PathLike | None = None, *, points=None, point_labels=None,
                         objects=None, boxes=None, masks=None, prompts: list[PromptObject] | None = None,
                         axes: str | None = None, tile_shape=None, halo=None,
                         tile_threshold: int | None = DEFAULT_TILE_THRESHOLD,
                         propagate_objects: bool = False) -> PromptSegmentation:
    """Segment the objects that prompts point at, as micro-sam's annotator does, on cached embeddings.

    Args:
        image: as for :func:`microsam_fiji.segment` (2D, RGB, or a stack: prompts say their plane).
        model: a :class:`Model` or a source for :func:`microsam_fiji.load_model`.
        points, point_labels, objects, boxes, masks: see :func:`objects_from_arrays` (a 2D image).
        prompts: :class:`PromptObject` objects instead (any plane of a stack).
        axes, tile_shape, halo, tile_threshold: as for :func:`microsam_fiji.segment_with_scores`; the same tiling as
        APG's
            reuses APG's embeddings.
        propagate_objects: extend each object from its plane through a z (or t) stack (:func:`propagate`).

    Returns:
        :class:`PromptSegmentation`: labels (1..N in prompt order, shaped like the image's planes), scores,
        and how many planes had to be encoded."""
    model = load_model(model)
    objs = prompts if prompts is not None else objects_from_arrays(points, point_labels, objects, boxes, masks)
    if not objs:
        raise UserError("no prompts: give points, boxes or masks (in Fiji: a point, rectangle or area selection)")
    planes = to_planes(image, axes)
    shape = planes.data.shape[1:3]
    for obj in objs:
        _check(obj, shape, len(planes.data))
    if propagate_objects and (len(planes.data) < 2 or len(planes.label_shape) != 3):
        raise UserError("propagate needs a z (or t) stack with one stack axis: leave out propagate on this image")
    tile_shape, halo = tiling(shape, tile_shape, halo, tile_threshold)
    out = np.zeros((len(planes.data),) + shape, dtype=np.uint32)
    scores: dict[int, float] = {}
    encoded_before = model.cache.misses
    with model.lock:  # the predictor holds one image's embeddings at a time
        for label, obj in enumerate(objs, start=1):
            state = image_state(model, planes.data[obj.plane], tile_shape, halo, decoder=False)
            mask, score = predict_object(model, state.embeddings, obj)
            if propagate_objects:
                out[propagate(model, planes.data, mask, obj.plane)] = label
            else:
                out[obj.plane][mask] = label
            scores[label] = score
    present = set(np.unique(out).tolist()) - {0}
    return PromptSegmentation(labels=out.reshape(planes.label_shape), encoded=model.cache.misses - encoded_before,
                              scores={k: v for k, v in scores.items() if k in present})
