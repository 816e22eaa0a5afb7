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


def compute_state(model: Model, plane: np.ndarray, tile_shape=None, halo=None) -> ImageState:
    """Image encoder + instance decoder for one plane (what micro-sam's ``initialize`` does).

    Progress: the passes report their blocks (models/backends); on a tiled image each pass counts its tiles,
    through micro-sam's own progress callbacks, so the fraction covers the whole image."""
    from micro_sam import util

    if tile_shape is None:
        embeddings = util.precompute_image_embeddings(model.predictor, plane, ndim=2, verbose=False)
        foreground, center_distances, boundary_distances = decoder_maps_of(model, embeddings)
    else:
        gen = generator(model, "ais", tiled=True)
        with _tile_parts("encoding tile") as callbacks:
            embeddings = util.precompute_image_embeddings(model.predictor, plane, ndim=2, tile_shape=tile_shape,
                                                          halo=halo, verbose=True, **callbacks)
        with _tile_parts("instance decoder, tile") as callbacks:
            gen.initialize(plane, image_embeddings=embeddings, tile_shape=tile_shape, halo=halo, verbose=True,
                           **callbacks)
        foreground, center_distances, boundary_distances = decoder_maps(gen)
    return ImageState(embeddings=embeddings, foreground=foreground, center_distances=center_distances,
                      boundary_distances=boundary_distances, tile_shape=tile_shape, halo=halo)


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


def image_state(model: Model, plane: np.ndarray, tile_shape=None, halo=None) -> ImageState:
    key = image_key(plane, tile_shape, halo)
    state = model.cache.get(key)
    if state is None:
        report("encoding the image")
        state = compute_state(model, plane, tile_shape, halo)
        model.cache.put(key, state)
    return state
