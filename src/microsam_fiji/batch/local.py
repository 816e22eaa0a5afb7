"""Run a batch in this process, one image after the other (the default: no Dask involved)."""
from __future__ import annotations

from typing import Callable

from microsam_fiji.batch.job import segment_image
from microsam_fiji.batch.plan import Job
from microsam_fiji.batch.settings import Settings
from microsam_fiji.batch.summary import Row
from microsam_fiji.core.params import resolve_params


def run_local(todo: list[tuple[int, Job]], settings: Settings, key: dict, done: Callable[[int, Row], None],
              model=None) -> dict[str, int]:
    """Segment ``todo`` (index, job) pairs, calling ``done(index, row)`` after each; return model loads."""
    if not todo:
        return {}
    loads = 0
    if model is None:
        from microsam_fiji.models.load import load_model

        model = load_model(settings.model, model_type=settings.model_type, device=settings.device,
                           backend=settings.backend)
        loads = 1
    # without --mode the model decides it: a parameter of the other mode fails here, once, not per image
    mode = settings.mode or model.default_mode
    resolve_params(mode, {**model.params.get(mode, {}), **settings.params})
    for index, job in todo:
        done(index, segment_image(job, model, settings, key))
    return {"local": loads}
