"""Models: one loader per source and ``load_model`` dispatching; the loaded-model cache (:mod:`.cache`)."""
from microsam_fiji.models.load import load_model
from microsam_fiji.models.model import Model

__all__ = ["Model", "load_model"]
