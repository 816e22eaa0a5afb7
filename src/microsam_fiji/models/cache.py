"""Loaded models kept by source, for the command's transports (in-process ImageJ, the plugin worker): the first
call on a model loads it, later calls (from any macro) reuse it together with its per-image embeddings."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from microsam_fiji.models.demo import DEMO_NAME
from microsam_fiji.models.load import load_model
from microsam_fiji.models.model import Model


class ModelCache:
    """Models by source string (``model=[...]`` in a macro), a default for calls that name none, and a device."""

    def __init__(self, default_model: str | os.PathLike | Model | None = None, device: str | None = None,
                 backend: str | None = None):
        self.device = device
        self.backend = backend  # None: $MICROSAM_FIJI_BACKEND or the device's default (models/backends)
        self.models: dict[str, Model] = {}
        self.model_loads = 0
        self.default_model = DEMO_NAME
        self._lock = threading.Lock()  # two transports' threads may ask for the same model at once
        # the model and tiling of the last micro-sam APG call: a prompt that names neither corrects that result,
        # on the same cached embeddings (model source or None, tile shape, halo)
        self.last_apg: tuple[str | None, tuple[int, int] | None, tuple[int, int] | None] = (None, None, None)
        self.set_default_model(default_model)

    def set_default_model(self, model: str | os.PathLike | Model | None) -> None:
        """Used where a macro gives no ``model=``; a :class:`Model` object is registered under its source."""
        if model is None:
            return
        if isinstance(model, Model):
            self.models.setdefault(self.model_key(model.source), model)
            self.default_model = model.source
        else:
            self.default_model = str(model)

    @staticmethod
    def model_key(source: str | os.PathLike) -> str:
        """The cache key of ``source``: an existing path resolved (two spellings of one file are one model)."""
        text = str(source).strip()
        path = Path(text).expanduser()
        return str(path.resolve()) if text and path.exists() else text

    def key(self, source: str | os.PathLike | None) -> str:
        text = str(source).strip() if source is not None else ""
        return self.model_key(text or self.default_model)

    def is_loaded(self, source: str | os.PathLike | Model | None) -> bool:
        """Whether :meth:`model` returns without loading (a transport says "loading the model" otherwise)."""
        return isinstance(source, Model) or self.key(source) in self.models

    def model(self, source: str | os.PathLike | Model | None = None) -> Model:
        """The model for ``source`` (default: the cache's default), loaded on first use and kept.

        Args:
            source: a :class:`Model`, anything :func:`microsam_fiji.load_model` accepts, or None (the default).

        Returns:
            The loaded model, the same object on every later call with the same source."""
        if isinstance(source, Model):
            return source
        key = self.key(source)
        with self._lock:
            model = self.models.get(key)
            if model is None:
                model = load_model(key, device=self.device, backend=self.backend)
                self.model_loads += 1
                self.models[key] = model
            return model


_shared: list[ModelCache] = []


def shared_cache() -> ModelCache:
    """This process's cache (one per process: the in-process ImageJ session's)."""
    if not _shared:
        _shared.append(ModelCache())
    return _shared[0]
