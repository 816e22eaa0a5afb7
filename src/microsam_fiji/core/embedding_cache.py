"""Per-image cache of encoder embeddings and decoder maps.

Re-segmenting the same pixels with other thresholds (tuning parameters from Fiji) then skips the image
encoder and the instance decoder: only prompt derivation, the mask decoder and NMS run again.

The cache is bounded by the bytes it holds, not by a count of images: a z-stack's planes are one image each, and
tuning a volume (``segment(..., volume=True)`` again with other thresholds) must find all of them. The default
bound is a quarter of the memory free when the cache is made (:func:`microsam_fiji.core.machine.available_memory`);
``$MICROSAM_FIJI_EMBEDDING_CACHE_MB`` or ``EmbeddingCache(max_bytes=...)`` set another. One plane costs its SAM
embedding (4 MiB: 256 x 64 x 64 float32, per tile on a tiled image) plus three float32 decoder maps of its size."""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from microsam_fiji.core.errors import UserError

CACHE_BYTES_ENV = "MICROSAM_FIJI_EMBEDDING_CACHE_MB"
DEFAULT_MEMORY_FRACTION = 0.25


@dataclass
class ImageState:
    """What micro-sam's ``initialize`` computes for one 2D image: the image encoder's embeddings and the instance
    decoder's three maps. A prompt needs only the embeddings, so the maps may be left for the first APG / AIS call
    (None until then: :attr:`has_maps`)."""

    embeddings: Any  # micro-sam ImageEmbeddings (features, input_size, original_size) or tiled zarr group
    foreground: np.ndarray | None = None
    center_distances: np.ndarray | None = None
    boundary_distances: np.ndarray | None = None
    tile_shape: tuple[int, int] | None = None
    halo: tuple[int, int] | None = None

    @property
    def tiled(self) -> bool:
        return self.tile_shape is not None

    @property
    def has_maps(self) -> bool:
        return self.foreground is not None

    @property
    def maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Foreground, center distances, boundary distances.

        Raises:
            RuntimeError: the instance decoder has not run on this image (engines/state.py runs it first)."""
        if self.foreground is None or self.center_distances is None or self.boundary_distances is None:
            raise RuntimeError("the instance decoder's maps of this image were not computed")
        return self.foreground, self.center_distances, self.boundary_distances

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold (embeddings, per tile where tiled, and the three decoder maps)."""
        return sum(_nbytes(part) for part in (self.embeddings, self.foreground, self.center_distances,
                                              self.boundary_distances))


def _nbytes(obj: Any) -> int:
    """Bytes held by the arrays in ``obj``: NumPy arrays and torch tensors, dicts and lists of them, zarr groups."""
    if obj is None or isinstance(obj, (str, bytes, int, float)):
        return 0
    if hasattr(obj, "element_size") and hasattr(obj, "numel"):  # a torch tensor
        return int(obj.element_size() * obj.numel())
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    if callable(getattr(obj, "arrays", None)) and callable(getattr(obj, "groups", None)):  # a zarr group
        return sum(_nbytes(a) for _, a in obj.arrays()) + sum(_nbytes(g) for _, g in obj.groups())
    return int(getattr(obj, "nbytes", 0) or 0)


def image_key(plane: np.ndarray, tile_shape, halo) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(str((plane.shape, plane.dtype.str, tile_shape, halo)).encode())
    h.update(np.ascontiguousarray(plane).data)
    return h.hexdigest()


def default_max_bytes() -> int:
    """``$MICROSAM_FIJI_EMBEDDING_CACHE_MB`` (MiB) where set, else a quarter of the memory free now.

    Raises:
        UserError: for a variable that is no number of MiB."""
    value = os.environ.get(CACHE_BYTES_ENV, "").strip()
    if value:
        try:
            mib = float(value)
        except ValueError:
            mib = -1.0
        if not mib >= 0:
            raise UserError(f"${CACHE_BYTES_ENV}={value!r} is no size: give the embedding cache's size in MiB "
                            "(e.g. 4096), or unset it for a quarter of the free memory")
        return int(mib * (1 << 20))
    from microsam_fiji.core.machine import available_memory

    return int(available_memory() * DEFAULT_MEMORY_FRACTION)


class EmbeddingCache:
    """Least-recently-used map from image key to :class:`ImageState`, holding at most ``max_bytes`` (see the module
    doc; the newest image stays even when it alone is larger). ``misses`` counts encoder runs, ``hits`` reuses."""

    def __init__(self, max_bytes: int | None = None):
        """Args:
            max_bytes: the bound (None: :func:`default_max_bytes`)."""
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        self._items: OrderedDict[str, ImageState] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> ImageState | None:
        state = self._items.get(key)
        if state is None:
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return state

    def put(self, key: str, state: ImageState, encoded: bool = True) -> None:
        """Keep ``state`` under ``key``.

        Args:
            key: :func:`image_key` of its image.
            state: the state.
            encoded: the image encoder ran for it (counted in :attr:`misses`); False where a kept state only grew
                (its decoder maps added): its bytes are counted again, no encoder run."""
        self.misses += int(encoded)
        if key in self._items:
            self.nbytes -= self._sizes[key]
        self._items[key] = state
        self._items.move_to_end(key)
        self._sizes[key] = state.nbytes
        self.nbytes += self._sizes[key]
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            old, _ = self._items.popitem(last=False)
            self.nbytes -= self._sizes.pop(old)

    def clear(self) -> None:
        self._items.clear()
        self._sizes.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)
