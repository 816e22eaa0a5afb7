"""The per-image state the engines start from: image encoder + instance decoder outputs, computed once per
image (and tiling) and kept in the model's embedding cache."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from microsam_fiji.core.embedding_cache import ImageState, image_key
from microsam_fiji.core.micro_sam_compat import decoder_maps
from microsam_fiji.core.progress import in_parts, report
from microsam_fiji.engines.micro_sam import generator
from microsam_fiji.models.model import Model


def compute_state(model: Model, plane: np.ndarray, tile_shape=None, halo=None, decoder: bool = True) -> ImageState:
    """Image encoder + instance decoder for one plane (what micro-sam's ``initialize`` does).

    Progress: the passes report their blocks (models/backends); on a tiled image each pass counts its tiles,
    through micro-sam's own progress callbacks, so the fraction covers the whole image.

    Args:
        model: the model.
        plane: the image (Y, X[, 3]).
        tile_shape, halo: micro-sam's tiling (None: untiled).
        decoder: also run the instance decoder (False: the embeddings alone, what a prompt needs).

    Returns:
        The state (its maps None where ``decoder`` is False)."""
    from micro_sam import util

    if tile_shape is None:
        embeddings = util.precompute_image_embeddings(model.predictor, plane, ndim=2, verbose=False)
    else:
        with _tile_parts("encoding tile") as callbacks:
            embeddings = util.precompute_image_embeddings(model.predictor, plane, ndim=2, tile_shape=tile_shape,
                                                          halo=halo, verbose=True, **callbacks)
    state = ImageState(embeddings=embeddings, tile_shape=tile_shape, halo=halo)
    if decoder:
        add_decoder_maps(model, plane, state)
    return state


def add_decoder_maps(model: Model, plane: np.ndarray, state: ImageState) -> None:
    """The instance decoder's maps from the state's embeddings, set on ``state`` once all are computed (a cancel
    leaves it as it was).

    Args:
        model: the model the embeddings came from.
        plane: the image they are of.
        state: its state."""
    if state.tile_shape is None:
        maps = decoder_maps_of(model, state.embeddings)
    else:
        gen = generator(model, "ais", tiled=True)
        with _tile_parts("instance decoder, tile") as callbacks:
            gen.initialize(plane, image_embeddings=state.embeddings, tile_shape=state.tile_shape, halo=state.halo,
                           verbose=True, **callbacks)
        maps = decoder_maps(gen)
    state.foreground, state.center_distances, state.boundary_distances = maps


def decoder_maps_of(model: Model, embeddings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground, center and boundary distances of an untiled image: what micro-sam's
    ``InstanceSegmentationWithDecoder.initialize`` computes from precomputed embeddings, without building its
    generator (whose module imports torch_em: 2-3 s of a cold start); tests/test_backends.py holds the two equal.

    Args:
        model: the model (its decoder as the backend runs it).
        embeddings: ``micro_sam.util.precompute_image_embeddings``'s result for the image.

    Returns:
        The three maps, each shaped like the image."""
    import torch
    from micro_sam import util

    predictor = util.set_precomputed(model.predictor, embeddings)
    with torch.no_grad():
        output = model.decoder(predictor.features, tuple(predictor.input_size), tuple(predictor.original_size))
    foreground, center_distances, boundary_distances = output.cpu().numpy().squeeze(0)
    return foreground, center_distances, boundary_distances


@contextmanager
def _tile_parts(stage: str) -> Iterator[dict[str, Callable]]:
    """micro-sam's ``pbar_init(total, description)`` / ``pbar_update(n)`` callbacks, as :func:`in_parts` parts
    (micro-sam calls them only with ``verbose=True``; given callbacks, it draws no tqdm bar of its own)."""
    with in_parts(stage, 1) as parts:
        def init(total, *_):
            parts.count = int(total or 1)

        yield {"pbar_init": init, "pbar_update": lambda n=1: parts.advance(int(n))}


def image_state(model: Model, plane: np.ndarray, tile_shape=None, halo=None, decoder: bool = True) -> ImageState:
    """The plane's state from the model's embedding cache, computed where missing: the image encoder once per
    plane (and tiling), the instance decoder once it is needed (``decoder``).

    Args:
        model: the model (its lock held by the caller).
        plane: the image (Y, X[, 3]).
        tile_shape, halo: micro-sam's tiling (None: untiled).
        decoder: the decoder maps are needed (APG, AIS); False for prompts, which need the embeddings alone (a
            first prompt on a new image then took 1.5 s instead of 10 s with the demo model on this 2-core CPU).

    Returns:
        The cached state."""
    key = image_key(plane, tile_shape, halo)
    state = model.cache.get(key)
    if state is None:
        report("encoding the image")
        state = compute_state(model, plane, tile_shape, halo, decoder=decoder)
        model.cache.put(key, state)
    elif decoder and not state.has_maps:
        add_decoder_maps(model, plane, state)
        model.cache.put(key, state, encoded=False)
    return state
