"""The ``micro-sam`` engine: micro-sam's own generators (``AutomaticPromptGenerator``,
``InstanceSegmentationWithDecoder`` and their tiled variants), restored from the cached per-image state."""
from __future__ import annotations

import numpy as np

from microsam_fiji.core.embedding_cache import ImageState
from microsam_fiji.core.micro_sam_compat import restore_generator_state
from microsam_fiji.models.model import Model


def generator(model: Model, mode: str, tiled: bool):
    from micro_sam.instance_segmentation import get_instance_segmentation_generator

    return get_instance_segmentation_generator(model.predictor, is_tiled=tiled, decoder=model.decoder,
                                               segmentation_mode=mode)



def restore_generator(model: Model, mode: str, state: ImageState):
    """A micro-sam generator in the state ``initialize`` would leave it in, without running the networks."""
    from micro_sam import util

    gen = generator(model, mode, state.tiled)
    if not state.tiled:
        util.set_precomputed(model.predictor, state.embeddings)
    return restore_generator_state(gen, *state.maps, tiled_embeddings=state.embeddings if state.tiled else None)



def generate(model: Model, mode: str, state: ImageState, params: dict) -> tuple[np.ndarray, dict]:
    gen = restore_generator(model, mode, state)
    labels = gen.generate(**params)
    return np.asarray(labels, dtype=np.uint32), {}
