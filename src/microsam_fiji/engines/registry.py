"""The segmentation engines by name: ``fast`` (the default: micro-sam's instances, faster) and ``micro-sam``
(micro-sam's own generators, the reference)."""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from microsam_fiji.core.embedding_cache import ImageState
from microsam_fiji.core.errors import UserError
from microsam_fiji.engines import micro_sam
from microsam_fiji.models.model import Model

ENGINES = ("micro-sam", "fast")  # the engines that ship; tests may register more in ENGINE_IMPLS



def _fast_generate(model: Model, mode: str, state: ImageState, params: dict) -> tuple[np.ndarray, dict]:
    from microsam_fiji.engines.fast import generate

    return generate(model, mode, state, params)



ENGINE_IMPLS: dict[str, Callable] = {"micro-sam": micro_sam.generate, "fast": _fast_generate}



def check_engine(engine: str | None) -> str:
    """``engine`` (None: the default) if it names an engine, else one line listing them: front ends call this
    before loading a model or reading an image."""
    engine = engine or default_engine()
    if engine not in ENGINE_IMPLS:
        raise UserError(f"unknown engine '{engine}': use one of {', '.join(ENGINE_IMPLS)}")
    return engine



def default_engine() -> str:
    # "fast" gives micro-sam's instances (tests/test_parity.py); "micro-sam" stays available as the reference
    return os.environ.get("MICROSAM_FIJI_ENGINE", "fast")
