"""Run APG (automatic prompt generation) or AIS (decoder-based instance segmentation) on an image.

The algorithm is micro-sam's (``AutomaticPromptGenerator``, ``InstanceSegmentationWithDecoder`` and their tiled
variants); this module adds what users need around it: ImageJ image kinds and stacks, tiling of large images,
parameter handling and the per-image embedding cache."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .embedding_cache import ImageState, image_key
from .errors import UserError
from .images import is_constant, to_planes
from .micro_sam_compat import decoder_maps, restore_generator_state
from .models import Model, load_model
from .params import check_mode, resolve_params
from .progress import report

DEFAULT_TILE_THRESHOLD = 1024
DEFAULT_TILE_SHAPE = (768, 768)  # + 2 x halo = 1024, SAM's input size: tiles are not rescaled
DEFAULT_HALO = (128, 128)
ENGINES = ("micro-sam", "fast")  # the engines that ship; tests may register more in _ENGINE_IMPLS


@dataclass
class Segmentation:
    """``labels``: uint32 instance labels (0 = background), shaped like the input without RGB/channel axes.
    ``scores``: per label id, the predicted mask quality where the engine reports one (APG), else empty."""

    labels: np.ndarray
    scores: dict[int, float] = field(default_factory=dict)
    mode: str = "apg"
    params: dict[str, Any] = field(default_factory=dict)


def _tiling(shape: tuple[int, int], tile_shape, halo, tile_threshold: int | None):
    if tile_shape is None and tile_threshold is not None and max(shape) > tile_threshold:
        tile_shape = DEFAULT_TILE_SHAPE
    if tile_shape is None:
        return None, None
    tile_shape = tuple(int(t) for t in tile_shape)
    halo = DEFAULT_HALO if halo is None else tuple(int(h) for h in halo)
    if len(tile_shape) != 2 or len(halo) != 2 or min(tile_shape) < 1 or min(halo) < 0:
        raise UserError(f"tile shape {tile_shape} / halo {halo} must be two positive numbers each (e.g. 768,768)")
    return tile_shape, halo


def _generator(model: Model, mode: str, tiled: bool):
    from micro_sam.instance_segmentation import get_instance_segmentation_generator

    return get_instance_segmentation_generator(model.predictor, is_tiled=tiled, decoder=model.decoder,
                                               segmentation_mode=mode)


def compute_state(model: Model, plane: np.ndarray, tile_shape=None, halo=None) -> ImageState:
    """Image encoder + instance decoder for one plane (what micro-sam's ``initialize`` does)."""
    from micro_sam import util

    tiled = tile_shape is not None
    embeddings = util.precompute_image_embeddings(model.predictor, plane, ndim=2, tile_shape=tile_shape,
                                                  halo=halo, verbose=False)
    gen = _generator(model, "ais", tiled)
    if tiled:
        gen.initialize(plane, image_embeddings=embeddings, tile_shape=tile_shape, halo=halo)
    else:
        gen.initialize(plane, image_embeddings=embeddings)
    foreground, center_distances, boundary_distances = decoder_maps(gen)
    return ImageState(embeddings=embeddings, foreground=foreground, center_distances=center_distances,
                      boundary_distances=boundary_distances, tile_shape=tile_shape, halo=halo)


def restore_generator(model: Model, mode: str, state: ImageState):
    """A micro-sam generator in the state ``initialize`` would leave it in, without running the networks."""
    from micro_sam import util

    gen = _generator(model, mode, state.tiled)
    if not state.tiled:
        util.set_precomputed(model.predictor, state.embeddings)
    return restore_generator_state(gen, state.foreground, state.center_distances, state.boundary_distances,
                                   tiled_embeddings=state.embeddings if state.tiled else None)


def image_state(model: Model, plane: np.ndarray, tile_shape=None, halo=None) -> ImageState:
    key = image_key(plane, tile_shape, halo)
    state = model.cache.get(key)
    if state is None:
        report("encoding the image")
        state = compute_state(model, plane, tile_shape, halo)
        model.cache.put(key, state)
    return state


def _micro_sam_generate(model: Model, mode: str, state: ImageState, params: dict) -> tuple[np.ndarray, dict]:
    gen = restore_generator(model, mode, state)
    labels = gen.generate(**params)
    return np.asarray(labels, dtype=np.uint32), {}


def _fast_generate(model: Model, mode: str, state: ImageState, params: dict) -> tuple[np.ndarray, dict]:
    from .fast import generate

    return generate(model, mode, state, params)


_ENGINE_IMPLS: dict[str, Callable] = {"micro-sam": _micro_sam_generate, "fast": _fast_generate}


def check_engine(engine: str | None) -> str:
    """``engine`` (None: the default) if it names an engine, else one line listing them: front ends call this
    before loading a model or reading an image."""
    engine = engine or default_engine()
    if engine not in _ENGINE_IMPLS:
        raise UserError(f"unknown engine '{engine}': use one of {', '.join(_ENGINE_IMPLS)}")
    return engine


def default_engine() -> str:
    # "fast" gives micro-sam's instances (tests/test_parity.py); "micro-sam" stays available as the reference
    return os.environ.get("MICROSAM_FIJI_ENGINE", "fast")


def segment_plane(model: Model, plane: np.ndarray, mode: str, params: dict, tile_shape=None, halo=None,
                  engine: str | None = None) -> tuple[np.ndarray, dict]:
    if is_constant(plane):
        return np.zeros(plane.shape[:2], dtype=np.uint32), {}
    state = image_state(model, plane, tile_shape, halo)
    return _ENGINE_IMPLS[check_engine(engine)](model, mode, state, params)


def run(image, model: Model | str | os.PathLike | None = None, mode: str | None = None, *, axes: str | None = None,
        tile_shape=None, halo=None, tile_threshold: int | None = DEFAULT_TILE_THRESHOLD, engine: str | None = None,
        progress: Callable[[int, int], None] | None = None, **params) -> Segmentation:
    """Segment ``image`` and return labels plus per-object scores; see :func:`segment`."""
    engine = check_engine(engine)  # before the model is loaded or an image encoded
    model = load_model(model)
    mode = check_mode(mode or model.default_mode)
    resolved = resolve_params(mode, {**model.params.get(mode, {}), **params})
    planes = to_planes(image, axes)
    tile_shape, halo = _tiling(planes.data.shape[1:3], tile_shape, halo, tile_threshold)
    out = np.zeros((len(planes.data),) + planes.data.shape[1:3], dtype=np.uint32)
    scores: dict[int, float] = {}
    offset = 0
    for i, plane in enumerate(planes.data):
        if len(planes.data) > 1:
            report("segmenting planes", i, len(planes.data))
        labels, plane_scores = segment_plane(model, plane, mode, resolved, tile_shape, halo, engine)
        n = int(labels.max())
        out[i] = np.where(labels > 0, labels + np.uint32(offset), 0)
        scores.update({k + offset: v for k, v in plane_scores.items()})
        offset += n
        if progress is not None:
            progress(i + 1, len(planes.data))
    return Segmentation(labels=out.reshape(planes.label_shape), scores=scores, mode=mode, params=resolved)


def segment(image, model: Model | str | os.PathLike | None = None, mode: str | None = None, **kwargs) -> np.ndarray:
    """Instance labels (uint32, 0 = background) for ``image`` with micro-sam APG (default) or AIS.

    ``image``: 2D grayscale (8/16/32-bit), RGB (Y, X, 3), or a z/t stack (segmented slice by slice, label ids
    unique across the stack); ``axes`` names the axes where the shape is ambiguous (ImageJ letters XYZTCS).
    ``model``: a :class:`Model` or anything :func:`microsam_fiji.load_model` accepts (default: the demo model).
    Parameters (``foreground_threshold``, ``center_distance_threshold``, ``boundary_distance_threshold``,
    ``min_size``, ``nms_threshold``, ...; short names ``foreground``, ``center``, ``boundary``, ``nms`` too)
    default to micro-sam's. Images larger than ``tile_threshold`` pixels on a side are segmented in tiles
    (``tile_shape``, ``halo``). A constant image has no objects and gives all-zero labels.
    """
    return run(image, model, mode, **kwargs).labels
