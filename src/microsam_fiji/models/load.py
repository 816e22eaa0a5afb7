"""``load_model``: one dispatcher over the model sources, one module each (bioimageio.core's ``backends/`` shape):
:mod:`.demo`, :mod:`.checkpoint`, :mod:`.package` (local or a Model Zoo id / URL), :mod:`.registry`."""
from __future__ import annotations

import os
import re
from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.models.backends import apply_backend, choose_backend
from microsam_fiji.models.checkpoint import load_checkpoint
from microsam_fiji.models.demo import DEMO_CHECKPOINT, DEMO_NAME
from microsam_fiji.models.model import MODEL_TYPES, Model, resolve_device
from microsam_fiji.models.package import load_package, looks_like_package
from microsam_fiji.models.registry import load_registry_model, registry_names
from microsam_fiji.models.zoo_id import zoo_reference


def load_model(source: str | os.PathLike | Model | None = None, model_type: str | None = None,
               device: str | None = None, backend: str | None = None) -> Model:
    """Return a segmenter from ``source``:

    * ``None`` or ``"demo"``: the small demo model shipped inside this package (a pipeline demo only);
    * a Model Zoo package (``.zip``, or a folder / ``rdf.yaml`` of an unpacked one) exported by this project
      or by micro-sam (``micro_sam.bioimageio.export_sam_model``, with an instance decoder);
    * a micro-sam finetuning checkpoint (``{"model_state", "decoder_state"}``); ``model_type`` is inferred
      from the weights unless given;
    * a micro-sam registry name such as ``vit_b_lm``, downloaded by micro-sam (needs network);
    * a Model Zoo id (``diplomatic-bug``) or URL (bioimage.io page, ``https://.../rdf.yaml``), downloaded by
      bioimageio.spec (needs network the first time).

    ``backend`` runs the image encoder and instance decoder with ``torch`` or ``onnx`` (ONNX Runtime; None:
    ``$MICROSAM_FIJI_BACKEND``, else ``onnx`` on a CPU): :mod:`microsam_fiji.models.backends`.

    Args:
        source: see above.
        model_type: ``vit_t``/``vit_b``/``vit_l``/``vit_h`` for a checkpoint (None: from its weights).
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (None: a GPU where there is one).
        backend: ``torch`` or ``onnx`` (None: see above).

    Returns:
        The loaded :class:`Model`.
    """
    if isinstance(source, Model):
        return source
    if model_type is not None and model_type not in MODEL_TYPES:
        raise UserError(f"unknown model type '{model_type}': use one of {', '.join(MODEL_TYPES)}")
    check_device(device)
    device = resolve_device(device)
    backend, explicit = choose_backend(backend, device)  # a bad name is refused before the weights are read
    model = _load(source, model_type, device)
    apply_backend(model, backend, explicit)
    return model


def _load(source: str | os.PathLike | None, model_type: str | None, device: str) -> Model:
    if source is None or str(source) == DEMO_NAME:
        return load_checkpoint(DEMO_CHECKPOINT, model_type, device, source_name=DEMO_NAME)
    path = Path(source).expanduser()
    if path.exists():
        if looks_like_package(path):
            return load_package(path, device=device)
        if path.is_dir():
            raise UserError(f"'{path}' is a folder but not a Model Zoo package (no rdf.yaml): pass a checkpoint "
                            "file or a package")
        return load_checkpoint(path, model_type, device)
    text = str(source)
    if text not in registry_names() and zoo_reference(text) is not None:
        return load_package(text, device=device)
    if os.sep in text or "/" in text or Path(text).suffix:
        raise UserError(f"model file '{text}' not found: check the path")
    return load_registry_model(text, device)


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(device: str | None) -> None:
    """Refuse, in one line, a device this machine does not have: ``mps`` without Apple's GPU, ``cuda`` without
    CUDA, ``cuda:N`` beyond the GPUs there are, or a name torch does not know here.

    Args:
        device: ``None``/``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Raises:
        UserError: naming the devices to use instead."""
    if device is None:
        return
    text = str(device).strip().lower()
    if not _DEVICE.match(text):
        raise UserError(f"unknown device '{device}': use cpu, cuda, cuda:N or mps")
    if text in ("auto", "cpu"):
        return
    import torch

    cuda = torch.cuda.is_available()
    instead = "--device cpu" + (" or --device cuda" if cuda else "")
    if text == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError(f"device 'mps' asked for, but this machine has no Apple GPU (MPS exists on macOS with "
                            f"Apple silicon only): use {instead}")
        return
    if not cuda:
        raise UserError(f"device '{device}' asked for, but no CUDA GPU is available: use --device cpu")
    count = torch.cuda.device_count()
    if ":" in text and int(text.split(":")[1]) >= count:
        raise UserError(f"device '{device}' asked for, but this machine has {count} CUDA GPU{'s' if count > 1 else ''}"
                        f" (cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}): use one of them")
