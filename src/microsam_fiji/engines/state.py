"""The per-image state the engines start from: image encoder + instance decoder outputs, computed once per
image (and tiling) and kept in the model's embedding cache."""
from __future__ import annotations

import numpy as np

from microsam_fiji.core.embedding_cache import ImageState, image_key
from microsam_fiji.core.micro_sam_compat import decoder_maps
from microsam_fiji.core.progress import report
from microsam_fiji.engines.micro_sam import generator
from microsam_fiji.models.model import Model

def compute_state(model: Model, plane: np.ndarray, tile_shape=None, halo=None) -> ImageState:
    """Image encoder + instance decoder for one plane (what micro-sam's ``initialize`` does)."""
    from micro_sam import util

    tiled = tile_shape is not None
    embeddings = util.precompute_image_embeddings(model.predictor, plane, ndim=2, tile_shape=tile_shape,
                                                  halo=halo, verbose=False)
    gen = generator(model, "ais", tiled)
    if tiled:
        gen.initialize(plane, image_embeddings=embeddings, tile_shape=tile_shape, halo=halo)
    else:
        gen.initialize(plane, image_embeddings=embeddings)
    foreground, center_distances, boundary_distances = decoder_maps(gen)
    return ImageState(embeddings=embeddings, foreground=foreground, center_distances=center_distances,
                      boundary_distances=boundary_distances, tile_shape=tile_shape, halo=halo)



def image_state(model: Model, plane: np.ndarray, tile_shape=None, halo=None) -> ImageState:
    key = image_key(plane, tile_shape, halo)
    state = model.cache.get(key)
    if state is None:
        report("encoding the image")
        state = compute_state(model, plane, tile_shape, halo)
        model.cache.put(key, state)
    return state
