"""Every use of micro-sam's private names, in one place.

micro-sam has no public API for some of what we need: the decoder maps its instance-segmentation generators
compute in ``initialize`` (so that one embedding serves APG and AIS and the embedding cache can restore a
generator without running the networks), its model-type detection, the predictor's attributes, its uint8 image view
and its local Otsu threshold. A micro-sam release may rename any of them; ``tests/test_micro_sam_compat.py``
then fails naming this module, and only this module needs changing.

``TESTED_MICRO_SAM`` is the range the test suite passed with (see README, "Models").

Not here because it cannot import microsam_fiji: ``zoo/architecture.py`` (copied into Model Zoo packages)
calls torch_em's ``UNETR._encode_image``; the compat test checks that name as well.
"""
from __future__ import annotations

import functools
import importlib
import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Iterator

import numpy as np

TESTED_MICRO_SAM = ">=1.8.14,<1.9"

# What ``initialize`` leaves on a generator (instance segmentation with decoder, tiled or not, and APG).
GENERATOR_MAP_ATTRIBUTES = ("_foreground", "_center_distances", "_boundary_distances")
GENERATOR_STATE_ATTRIBUTES = GENERATOR_MAP_ATTRIBUTES + ("_i", "_is_initialized", "_image_embeddings")
# module -> private functions we call
PRIVATE_FUNCTIONS = {
    "micro_sam.models.build_sam": ("_validate_model_type",),
    "micro_sam.util": ("_to_image",),
    "micro_sam.inference": ("_local_otsu_threshold",),
}
# used by zoo/architecture.py, which cannot import this module
TORCH_EM_PRIVATE = {"torch_em.model.unetr.UNETR": ("_encode_image",)}


def validate_model_type(model_state: dict) -> str:
    """vit_t / vit_b / vit_l / vit_h from the weights (micro-sam's own decision); KeyError when unknown."""
    from micro_sam.models.build_sam import _validate_model_type

    return _validate_model_type(model_state)


def sam_predictor(model_state: dict, model_type: str, device: str, name: str) -> Any:
    """micro-sam's SAM predictor with ``model_state`` loaded, as ``micro_sam.util.get_sam_model`` builds it from a
    checkpoint file, but handed the state dict: micro-sam's own file reader unpickles without torch's
    ``weights_only`` (any code in the file runs), so we read files ourselves (``models.checkpoint.read_state``).

    Args:
        model_state: the SAM weights, micro-sam's ``sam.`` prefixes removed.
        model_type: ``vit_t`` ... (a registry suffix such as ``_lm`` is ignored).
        device: where the model runs.
        name: the model's name (what micro-sam records as ``checkpoint_path``).

    Returns:
        A ``SamPredictor`` with micro-sam's attributes (``model_type``, ``model_name``, ``_hash``)."""
    import torch
    import xxhash

    util = micro_sam_util()
    sam = util.sam_model_registry[model_type[:5]]()
    sam.load_state_dict(model_state)
    # micro-sam signs saved embeddings with this hash (xxh128 of the file it read); ours is of the weights
    digest = xxhash.xxh128()
    for key, value in sam.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    sam.to(device=device)
    predictor = util.SamPredictor(sam)
    predictor.model_type = model_type[:5]
    predictor.model_name = model_type
    predictor.checkpoint_path = name
    predictor._hash = f"xxh128:{digest.hexdigest()}"
    return predictor


def to_image(plane: np.ndarray) -> np.ndarray:
    """The uint8 RGB view micro-sam segments (per-channel min-max to 0..255)."""
    from micro_sam.util import _to_image

    return _to_image(plane)


def local_otsu_threshold(low_res_masks):
    """micro-sam's ``mask_threshold="auto"``: a local Otsu threshold per mask."""
    from micro_sam.inference import _local_otsu_threshold

    return _local_otsu_threshold(low_res_masks)


def decoder_maps(generator: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground, center and boundary distance maps of an initialized generator."""
    return tuple(getattr(generator, name) for name in GENERATOR_MAP_ATTRIBUTES)


def restore_generator_state(generator: Any, foreground, center_distances, boundary_distances,
                            tiled_embeddings=None) -> Any:
    """Put ``generator`` in the state ``initialize`` leaves it in, from maps computed before.

    A tiled generator keeps the embeddings itself (``tiled_embeddings``); an untiled one reads them from the
    predictor, which the caller sets with ``micro_sam.util.set_precomputed``."""
    if tiled_embeddings is not None:
        generator._image_embeddings = tiled_embeddings
    generator._foreground = foreground
    generator._center_distances = center_distances
    generator._boundary_distances = boundary_distances
    generator._i = None
    generator._is_initialized = True
    return generator


def missing_names() -> list[str]:
    """The private names above that the installed micro-sam / torch_em no longer have (static check)."""
    import importlib
    import inspect
    import re

    missing = []
    for module_name, names in PRIVATE_FUNCTIONS.items():
        module = importlib.import_module(module_name)
        missing += [f"{module_name}.{n}" for n in names if not callable(getattr(module, n, None))]
    for path, names in TORCH_EM_PRIVATE.items():
        module_name, cls_name = path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module_name), cls_name)
        missing += [f"{path}.{n}" for n in names if not callable(getattr(cls, n, None))]
    from micro_sam import instance_segmentation as ins

    # the generators read and write these in initialize / generate: renamed, our restored state is ignored
    source = inspect.getsource(ins)
    missing += [f"micro_sam.instance_segmentation generator attribute self.{n}"
                for n in GENERATOR_STATE_ATTRIBUTES if not re.search(rf"self\.{n}\b", source)]
    # float32_training_on_cpu: torch_em's trainer must still choose its epoch functions by self.mixed_precision
    from torch_em.trainer import DefaultTrainer

    if not re.search(r"if self\.mixed_precision:", inspect.getsource(DefaultTrainer.fit)):
        missing.append("torch_em.trainer.DefaultTrainer.fit's use of self.mixed_precision")
    return missing


@contextmanager
def float32_training_on_cpu() -> Iterator[None]:
    """Within the block, torch_em trainers built for the CPU train in float32.

    micro-sam's ``train_sam`` builds its trainer with ``mixed_precision=True``, which torch_em turns into bfloat16
    autocast on a CPU. Without native bfloat16 (AVX2 CPUs: most laptops, this project's test machine) PyTorch runs
    bfloat16 convolutions in a reference kernel: a 3x3 convolution of 64 channels at 256x256 took 28 s instead of
    0.23 s in float32 here, which makes an iteration of micro-sam's decoder training take many minutes. torch_em
    (>= 0.10) has ``mixed_precision_dtype``, micro-sam 1.8 does not pass it on; so the trainer is switched to
    single precision after it is built (GPUs keep micro-sam's mixed precision). The patch is on the class while
    the block runs (a trainer built meanwhile in another thread on a CPU gets float32 as well)."""
    from unittest import mock

    from torch_em.trainer import DefaultTrainer

    original = DefaultTrainer.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.device.type == "cpu":
            self.mixed_precision = False
            self.scaler = None

    with mock.patch.object(DefaultTrainer, "__init__", init):
        yield


def micro_sam_util() -> ModuleType:
    """``micro_sam.util``, imported without napari where this process has not loaded napari yet.

    micro-sam's util takes napari's progress bar when napari can be imported and tqdm otherwise; nothing we run
    shows napari's bar, and importing napari costs about 0.9 s of a cold ``microsam-fiji segment``'s 7 s of
    imports (measured with ``python -X importtime``). Inside napari (already loaded) nothing changes; napari can
    still be imported afterwards.

    Returns:
        The ``micro_sam.util`` module."""
    if "micro_sam.util" in sys.modules or "napari" in sys.modules:
        return importlib.import_module("micro_sam.util")
    sys.modules["napari"] = None  # type: ignore[assignment]  # makes ``from napari.utils import ...`` fail at once
    try:
        return importlib.import_module("micro_sam.util")
    finally:
        if sys.modules.get("napari", 0) is None:
            del sys.modules["napari"]
