"""How the model's two heavy passes (SAM's image encoder, the UNETR instance decoder) run: one dispatcher over the
backends, one module each (bioimageio.core's ``backends/`` shape).

* ``torch``: PyTorch eager, the reference; always available, the default on a GPU.
* ``onnx``: ONNX Runtime on graphs exported once per set of weights (:mod:`.onnx_export`, kept on disk); the
  default on a CPU, where ``bench/model_bench.py`` measured it fastest with the same instances as ``torch``
  (``tests/test_backends.py`` holds it to that in CI). ``cuda`` uses ONNX Runtime's CUDA provider where
  ``onnxruntime-gpu`` is installed.

The choice: the ``backend`` argument (``--backend`` on the command line), else ``$MICROSAM_FIJI_BACKEND``, else
the device's default. The prompt encoder and mask decoder stay in torch (milliseconds per prompt batch)."""
from __future__ import annotations

import logging
import os
from typing import Any

from microsam_fiji.core.errors import UserError, one_line

BACKENDS = ("torch", "onnx")
BACKEND_ENV = "MICROSAM_FIJI_BACKEND"
_LOG = logging.getLogger(__name__)


def choose_backend(backend: str | None, device: str) -> tuple[str, bool]:
    """The backend a model on ``device`` runs with.

    Args:
        backend: ``torch``, ``onnx``, or None (``$MICROSAM_FIJI_BACKEND``, else ``onnx`` on a CPU, ``torch`` on a
            GPU).
        device: the model's torch device.

    Returns:
        (the backend's name, whether the user named it: a default may fall back to torch, a choice may not).

    Raises:
        UserError: for a name that is not a backend, or ``onnx`` without onnxruntime installed."""
    name = (backend or os.environ.get(BACKEND_ENV) or "").strip().lower()
    explicit = name not in ("", "auto")
    if not explicit:
        name = "onnx" if device == "cpu" and _has_onnxruntime() else "torch"
    if name not in BACKENDS:
        source = f"${BACKEND_ENV}" if not backend else "backend"
        raise UserError(f"unknown {source} '{backend or os.environ.get(BACKEND_ENV)}': use one of "
                        f"{', '.join(BACKENDS)}")
    if name == "onnx" and not _has_onnxruntime():
        raise UserError("backend 'onnx' needs onnxruntime: pip install onnxruntime (or use --backend torch)")
    return name, explicit


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def apply_backend(model: Any, backend: str, explicit: bool = True) -> None:
    """Run ``model``'s image encoder and instance decoder with ``backend``: sets ``model.decoder``, replaces the
    predictor's image encoder for ``onnx``, and sets ``model.backend`` to the backend in use.

    An ONNX export that fails (an architecture the exporter cannot trace) falls back to ``torch`` with one
    warning line in the log: the model still runs, only slower. So does a default ``onnx`` whose graph cache
    cannot be written (a read-only home); a user who asked for ``onnx`` gets the one-line error instead.

    Args:
        model: a :class:`~microsam_fiji.models.model.Model` as a loader made it (its torch decoder not built yet).
        backend: a name from :data:`BACKENDS` (see :func:`choose_backend`).
        explicit: whether the user chose ``backend``.

    Raises:
        UserError: for weights that do not fit (a bad ``decoder_state``), or a chosen ``onnx`` that cannot run."""
    from microsam_fiji.models.backends.onnx_export import GraphCacheError
    from microsam_fiji.models.backends.progress_hooks import (
        add_progress_hooks,
        decoder_units,
        encoder_units,
    )

    encoder = model.predictor.model.image_encoder
    if backend == "onnx":
        try:
            from microsam_fiji.models.backends.onnx_runtime import onnx_modules

            model.predictor.model.image_encoder, model.decoder = onnx_modules(model)
            model.backend = "onnx"
            return
        except GraphCacheError as err:
            if explicit:
                raise
            _LOG.warning("%s; running the model with torch", err)
        except UserError:
            raise  # the weights themselves are wrong: torch cannot run them either
        except Exception as err:  # noqa: BLE001 - any exporter failure: the torch passes still work
            _LOG.warning("ONNX export failed (%s); running the model with torch", one_line(err))
    model.decoder = model.torch_decoder()
    add_progress_hooks(encoder, encoder_units(encoder), "encoding the image")
    add_progress_hooks(model.decoder, decoder_units(model.decoder), "instance decoder")
    model.backend = "torch"
