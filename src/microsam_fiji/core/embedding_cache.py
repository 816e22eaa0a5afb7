"""Per-image cache of encoder embeddings and decoder maps.

Re-segmenting the same pixels with other thresholds (tuning parameters from Fiji) then skips the image
encoder and the instance decoder: only prompt derivation, the mask decoder and NMS run again."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class ImageState:
    """What micro-sam's ``initialize`` computes for one 2D image."""

    embeddings: Any  # micro-sam ImageEmbeddings (features, input_size, original_size) or tiled zarr group
    foreground: np.ndarray
    center_distances: np.ndarray
    boundary_distances: np.ndarray
    tile_shape: tuple[int, int] | None = None
    halo: tuple[int, int] | None = None

    @property
    def tiled(self) -> bool:
        return self.tile_shape is not None


def image_key(plane: np.ndarray, tile_shape, halo) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(str((plane.shape, plane.dtype.str, tile_shape, halo)).encode())
    h.update(np.ascontiguousarray(plane).data)
    return h.hexdigest()


class EmbeddingCache:
    """Least-recently-used map from image key to :class:`ImageState`; ``misses`` counts encoder runs."""

    def __init__(self, max_items: int = 8):
        self.max_items = max_items
        self._items: OrderedDict[str, ImageState] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> ImageState | None:
        state = self._items.get(key)
        if state is None:
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return state

    def put(self, key: str, state: ImageState) -> None:
        self.misses += 1
        self._items[key] = state
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
