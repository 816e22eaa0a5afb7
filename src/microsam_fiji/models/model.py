"""The loaded segmenter: a SAM predictor, its instance decoder, the cache of its images' embeddings and the lock
that keeps one image at a time on the predictor (a SAM predictor holds per-image state)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from microsam_fiji.core.embedding_cache import EmbeddingCache
from microsam_fiji.core.errors import UserError

MODEL_TYPES = ("vit_t", "vit_b", "vit_l", "vit_h")



@dataclass(eq=False)
class Model:
    """A SAM predictor plus its instance decoder, with the embeddings of recently segmented images.

    ``params``: default APG/AIS parameters that came with the model (a Model Zoo package's
    ``config.micro_sam``); call-time parameters override them."""

    predictor: Any
    decoder: Any
    model_type: str
    source: str
    device: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_mode: str = "apg"
    # how the image encoder and instance decoder run (models/backends): set by load_model
    backend: str = "torch"
    # the instance decoder as micro-sam builds it (torch_em's UNETR), made on first need: with the onnx backend
    # and its graphs on disk a cold start never builds it (nor imports torch_em, 2-3 s); decoder_state: its
    # weights, which key the graphs (None where micro-sam built the decoder itself)
    build_decoder: Callable[[], Any] | None = field(default=None, repr=False)
    decoder_state: dict | None = field(default=None, repr=False)
    _torch_decoder: Any = field(default=None, repr=False)
    cache: EmbeddingCache = field(default_factory=EmbeddingCache)
    # one image at a time on the predictor: it holds the current image's embeddings (every engine call takes it)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def torch_decoder(self) -> Any:
        """micro-sam's instance decoder module (``DecoderAdapter``), built on the first call.

        Returns:
            The torch module (what :attr:`decoder` is with the torch backend)."""
        if self._torch_decoder is None:
            if self.build_decoder is None:
                self._torch_decoder = self.decoder
            else:
                self._torch_decoder = self.build_decoder()
        return self._torch_decoder

    def __repr__(self) -> str:
        return (f"Model(model_type={self.model_type!r}, source={self.source!r}, device={self.device!r}, "
                f"backend={self.backend!r})")



def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{device}' asked for, but no CUDA GPU is available: use --device cpu")
    return device
