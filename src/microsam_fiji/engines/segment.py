"""Run APG (automatic prompt generation) or AIS (decoder-based instance segmentation) on an image.

The algorithm is micro-sam's (``AutomaticPromptGenerator``, ``InstanceSegmentationWithDecoder`` and their tiled
variants); this module adds what users need around it: ImageJ image kinds and stacks, tiling of large images,
parameter handling and the per-image embedding cache; 3D objects from z-stacks (``volume=True``, see
:mod:`microsam_fiji.engines.volume`) and the channel to segment (``channel=N``)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.images import is_constant, to_planes
from microsam_fiji.core.params import check_mode, check_tiling, resolve_params
from microsam_fiji.core.progress import report
from microsam_fiji.engines.registry import ENGINE_IMPLS, check_engine
from microsam_fiji.engines.state import image_state
from microsam_fiji.engines.volume import check_merge_options, check_volume, segment_volumes
from microsam_fiji.models.load import load_model
from microsam_fiji.models.model import Model


class TilingWarning(UserWarning):
    """A parameter that micro-sam's tiled generators do not use was given for a tiled image."""


DEFAULT_TILE_THRESHOLD = 1024
DEFAULT_TILE_SHAPE = (768, 768)  # + 2 x halo = 1024, SAM's input size: tiles are not rescaled
DEFAULT_HALO = (128, 128)


@dataclass
class Segmentation:
    """``labels``: uint32 instance labels (0 = background), shaped like the input without RGB/channel axes.
    ``scores``: per label id, the predicted mask quality where the engine reports one (APG; a 3D object's is the
    mean of its 2D pieces'), else empty. ``axes``: the labels' ImageJ axes (``"YX"``, ``"ZYX"``, ``"TZYX"``, ...);
    ``volume``: whether objects are 3D (merged across z); ``channel``: the channel segmented (1-based) of an
    image with channels, else None."""

    labels: np.ndarray
    scores: dict[int, float] = field(default_factory=dict)
    mode: str = "apg"
    params: dict[str, Any] = field(default_factory=dict)
    axes: str = ""
    volume: bool = False
    channel: int | None = None


def tiling(shape: tuple[int, int], tile_shape, halo, tile_threshold: int | None):
    if tile_shape is None and tile_threshold is not None and max(shape) > tile_threshold:
        tile_shape = DEFAULT_TILE_SHAPE
    if tile_shape is None:
        return None, None
    tile_shape = tuple(int(t) for t in tile_shape)
    halo = DEFAULT_HALO if halo is None else tuple(int(h) for h in halo)
    if len(tile_shape) != 2 or len(halo) != 2 or min(tile_shape) < 1 or min(halo) < 0:
        raise UserError(f"tile shape {tile_shape} / halo {halo} must be two positive numbers each (e.g. 768,768)")
    return tile_shape, halo


def segment_plane(model: Model, plane: np.ndarray, mode: str, params: dict, tile_shape=None, halo=None,
                  engine: str | None = None) -> tuple[np.ndarray, dict]:
    if is_constant(plane):
        return np.zeros(plane.shape[:2], dtype=np.uint32), {}
    with model.lock:  # the predictor holds this plane's embeddings until the engine is done with them
        state = image_state(model, plane, tile_shape, halo)
        return ENGINE_IMPLS[check_engine(engine)](model, mode, state, params)


def segment_with_scores(image, model: Model | str | os.PathLike | None = None, mode: str | None = None, *,
                        axes: str | None = None, tile_shape=None, halo=None,
                        tile_threshold: int | None = DEFAULT_TILE_THRESHOLD, engine: str | None = None,
                        progress: Callable[[int, int], None] | None = None, backend: str | None = None,
                        volume: bool = False, gap_closing: int | None = None, min_z_extent: int | None = None,
                        channel: int | None = None, **params) -> Segmentation:
    """Segment ``image`` and return a :class:`Segmentation`: labels plus per-object scores, mode and parameters
    (:func:`segment` returns the labels alone).

    Args:
        image: as for :func:`segment`.
        model: a :class:`Model` or a source for :func:`microsam_fiji.load_model` (None: the demo model).
        mode: ``"apg"`` or ``"ais"`` (None: the model's default, APG unless a package says otherwise).
        axes: ImageJ letters of ``image``'s axes where its shape is ambiguous (``"TZYX"``).
        tile_shape, halo: tiling (Y, X) of large planes; tile_threshold: tile planes larger than this.
        engine: ``"fast"`` (default, micro-sam's instances) or ``"micro-sam"``.
        progress: called with (planes done, planes) after each plane.
        backend: ``torch`` or ``onnx`` for a model loaded here (None: ``$MICROSAM_FIJI_BACKEND``, else ``onnx`` on
            a CPU); a :class:`Model` keeps the backend it was loaded with.
        volume: 3D objects: every plane segmented, then the planes' objects merged across z by micro-sam's
            ``merge_instance_segmentation_3d`` (micro-sam's ``automatic_3d_segmentation`` with this engine); a
            TZYX stack is a volume per time point. Needs z slices (a time series alone is refused).
        gap_closing: with ``volume``, close gaps of up to this many slices in an object before merging (micro-sam's
            binary closing along z; None: off, micro-sam's default).
        min_z_extent: with ``volume``, drop objects that span fewer slices than this (None: keep all, micro-sam's
            default).
        channel: the channel to segment, 1-based as in ImageJ, of an image with channels (a C axis); None: the
            first, with a :class:`~microsam_fiji.core.images.ChannelWarning` where there are several.
        **params: micro-sam's APG / AIS parameters (short names too: ``center=0.3``).

    Returns:
        :class:`Segmentation`: uint32 labels unique across a stack (and across time), per-label scores, the mode,
        parameters, the labels' axes."""
    engine = check_engine(engine)  # before the model is loaded or an image encoded
    check_merge_options(volume, gap_closing, min_z_extent)
    check_tiling(tile_shape, halo)  # tiles below 64 px: an endless run of encoder calls that find nothing
    model = load_model(model, backend=backend)
    mode = check_mode(mode or model.default_mode)
    resolved = resolve_params(mode, {**model.params.get(mode, {}), **params})
    planes = to_planes(image, axes, channel)
    if volume:
        check_volume(planes)
    tile_shape, halo = tiling(planes.data.shape[1:3], tile_shape, halo, tile_threshold)
    if tile_shape is not None and mode == "apg" and resolved.get("mask_threshold") is not None:
        # as micro-sam's TiledAutomaticPromptGenerator, whose masks we reproduce: it does not pass it on
        warnings.warn(f"mask_threshold={resolved['mask_threshold']} is not used on a tiled image: micro-sam's tiled "
                      "APG thresholds each tile's masks at the model's own threshold (0)", TilingWarning, stacklevel=2)
    n_planes = len(planes.data)

    def segment_slices(data: np.ndarray, first: int) -> tuple[np.ndarray, dict[int, float]]:
        """Labels of ``data``'s planes, ids offset plane by plane (as micro-sam's ``_segment_slices``); ``first``:
        the index of its first plane in the stack, for progress."""
        out = np.zeros(data.shape[:3], dtype=np.uint32)
        scores: dict[int, float] = {}
        offset = 0
        for i, plane in enumerate(data):
            if n_planes > 1:
                report("segmenting planes", first + i, n_planes)
            labels, plane_scores = segment_plane(model, plane, mode, resolved, tile_shape, halo, engine)
            n = int(labels.max())
            out[i] = np.where(labels > 0, labels + np.uint32(offset), 0)
            scores.update({k + offset: v for k, v in plane_scores.items()})
            offset += n
            if progress is not None:
                progress(first + i + 1, n_planes)
        return out, scores

    if volume:
        labels, scores = segment_volumes(planes, segment_slices, gap_closing, min_z_extent)
    else:
        labels, scores = segment_slices(planes.data, 0)
        labels = labels.reshape(planes.label_shape)
    return Segmentation(labels=labels, scores=scores, mode=mode, params=resolved,
                        axes=planes.stack_axes + "YX", volume=volume, channel=planes.channel)


def segment(image, model: Model | str | os.PathLike | None = None, mode: str | None = None, **kwargs) -> np.ndarray:
    """Instance labels (uint32, 0 = background) for ``image`` with micro-sam APG (default) or AIS.

    ``image``: 2D grayscale (8/16/32-bit), RGB (Y, X, 3), or a z/t stack (segmented slice by slice, label ids
    unique across the stack; with ``volume=True`` objects in 3D, merged across z); ``axes`` names the axes where
    the shape is ambiguous (ImageJ letters XYZTCS); ``channel=N`` picks the channel of a multi-channel image.
    ``model``: a :class:`Model` or anything :func:`microsam_fiji.load_model` accepts (default: the demo model).
    Parameters (``foreground_threshold``, ``center_distance_threshold``, ``boundary_distance_threshold``,
    ``min_size``, ``nms_threshold``, ...; short names ``foreground``, ``center``, ``boundary``, ``nms`` too)
    default to micro-sam's. Images larger than ``tile_threshold`` pixels on a side are segmented in tiles
    (``tile_shape``, ``halo``). A constant image has no objects and gives all-zero labels.

    Args:
        image: the image (NumPy array, or anything array-like).
        model: a :class:`Model` or a source for :func:`microsam_fiji.load_model`.
        mode: ``"apg"`` (default) or ``"ais"``.
        **kwargs: as for :func:`segment_with_scores`.

    Returns:
        The uint32 label image.
    """
    return segment_with_scores(image, model, mode, **kwargs).labels


run = segment_with_scores
"""The earlier name of :func:`segment_with_scores` (before 0.2), kept so that existing scripts run."""
