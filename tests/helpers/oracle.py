"""An "oracle decoder": the instance decoder's three maps computed from ground-truth labels.

micro-sam trains the decoder towards torch_em's ``PerObjectDistanceTransform`` (foreground, per-object
normalised center and boundary distances), so these maps are what a perfect decoder would predict: APG then
gets one realistic prompt per object without a trained model (benchmarks and tests of dense images)."""
from __future__ import annotations

import numpy as np

from microsam_fiji.core.embedding_cache import ImageState


def decoder_maps(labels: np.ndarray) -> np.ndarray:
    """(3, H, W) float32: foreground, center distances, boundary distances."""
    from torch_em.transform.label import PerObjectDistanceTransform

    transform = PerObjectDistanceTransform(distances=True, boundary_distances=True, foreground=True)
    return transform(np.asarray(labels)).astype(np.float32)


def oracle_state(model, image: np.ndarray, labels: np.ndarray, tile_shape=None, halo=None) -> ImageState:
    """Image embeddings from ``model``'s encoder plus oracle decoder maps for ``labels``."""
    from micro_sam import util

    embeddings = util.precompute_image_embeddings(model.predictor, image, ndim=2, tile_shape=tile_shape, halo=halo,
                                                  verbose=False)
    fg, center, boundary = decoder_maps(labels)
    return ImageState(embeddings=embeddings, foreground=fg, center_distances=center, boundary_distances=boundary,
                      tile_shape=tile_shape, halo=halo)
