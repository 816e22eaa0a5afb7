"""Load a ready segmenter from a micro-sam checkpoint, a micro-sam registry name or a Model Zoo package
(local, or a Model Zoo id / URL)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .embedding_cache import EmbeddingCache
from .errors import UserError

DEMO_CHECKPOINT = Path(__file__).parent / "demo" / "demo-nuclei-vit_t.pt"
DEMO_NAME = "demo"
MODEL_TYPES = ("vit_t", "vit_b", "vit_l", "vit_h")
PACKAGE_SUFFIXES = (".zip",)
PACKAGE_DESCRIPTIONS = ("rdf.yaml", "bioimageio.yaml")
# Model Zoo ids are two or more lowercase words joined by hyphens ("diplomatic-bug"), optionally /version
ZOO_ID = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)+(/[0-9][0-9.]*)?")
ZOO_SITE_ID = re.compile(r"(?:[?&]id=|/artifacts/)([a-z][a-z0-9]*(?:-[a-z0-9]+)+)")
# the Model Zoo's file store, as in micro-sam's registry URLs: .../bioimage.io/<id>/<version>/files/...
ZOO_FILE_URL = re.compile(r"/bioimage\.io/([a-z][a-z0-9]*(?:-[a-z0-9]+)+)/")


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
    cache: EmbeddingCache = field(default_factory=EmbeddingCache)

    def __repr__(self) -> str:
        return f"Model(model_type={self.model_type!r}, source={self.source!r}, device={self.device!r})"


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{device}' asked for, but no CUDA GPU is available: use --device cpu")
    return device


def infer_model_type(model_state: dict) -> str:
    """vit_t / vit_b / vit_l / vit_h from the image encoder's weight shapes (as micro-sam itself decides)."""
    from .micro_sam_compat import validate_model_type

    try:
        return validate_model_type(model_state)
    except KeyError:
        raise UserError("cannot tell the model type from the checkpoint's weights: pass --model-type") from None


def _looks_like_package(path: Path) -> bool:
    if path.is_dir():
        return any((path / name).exists() for name in PACKAGE_DESCRIPTIONS)
    return path.suffix.lower() in PACKAGE_SUFFIXES or path.name.endswith(PACKAGE_DESCRIPTIONS)


def load_model(source: str | os.PathLike | Model | None = None, model_type: str | None = None,
               device: str | None = None) -> Model:
    """Return a segmenter from ``source``:

    * ``None`` or ``"demo"``: the small demo model shipped inside this package (a pipeline demo only);
    * a Model Zoo package (``.zip``, or a folder / ``rdf.yaml`` of an unpacked one) exported by this project
      or by micro-sam (``micro_sam.bioimageio.export_sam_model``, with an instance decoder);
    * a micro-sam finetuning checkpoint (``{"model_state", "decoder_state"}``); ``model_type`` is inferred
      from the weights unless given;
    * a micro-sam registry name such as ``vit_b_lm``, downloaded by micro-sam (needs network);
    * a Model Zoo id (``diplomatic-bug``) or URL (bioimage.io page, ``https://.../rdf.yaml``), downloaded by
      bioimageio.spec (needs network the first time).
    """
    if isinstance(source, Model):
        return source
    if model_type is not None and model_type not in MODEL_TYPES:
        raise UserError(f"unknown model type '{model_type}': use one of {', '.join(MODEL_TYPES)}")
    device = resolve_device(device)
    if source is None or str(source) == DEMO_NAME:
        return load_checkpoint(DEMO_CHECKPOINT, model_type, device, source_name=DEMO_NAME)
    path = Path(source).expanduser()
    if path.exists():
        if _looks_like_package(path):
            from .packaging.load import load_package

            return load_package(path, device=device)
        if path.is_dir():
            raise UserError(f"'{path}' is a folder but not a Model Zoo package (no rdf.yaml): pass a checkpoint "
                            "file or a package")
        return load_checkpoint(path, model_type, device)
    text = str(source)
    if text not in registry_names() and zoo_reference(text) is not None:
        from .packaging.load import load_package

        return load_package(text, device=device)
    if os.sep in text or "/" in text or Path(text).suffix:
        raise UserError(f"model file '{text}' not found: check the path")
    return load_registry_model(text, device)


def zoo_reference(text: str) -> str | None:
    """What bioimageio.spec should load for ``text`` when it names a Model Zoo model (an id, a bioimage.io page
    or any http(s) URL of a package or rdf.yaml), else None."""
    text = text.strip()
    if re.match(r"https?://", text):
        site = ZOO_SITE_ID.search(text)
        if re.match(r"https?://(www\.)?bioimage\.io/", text) and site:
            return site.group(1)  # the website's page of a model: its id
        return text
    if ZOO_ID.fullmatch(text):
        return text
    return None


def zoo_id_of_url(url: str) -> str | None:
    match = ZOO_FILE_URL.search(url)
    return match.group(1) if match else None


def _read_checkpoint(path: Path):
    from .micro_sam_compat import load_checkpoint as read_micro_sam_checkpoint

    try:
        return read_micro_sam_checkpoint(str(path))
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise UserError(f"'{path}' is not a readable PyTorch checkpoint ({type(err).__name__}): pass a micro-sam "
                        "finetuning checkpoint (.pt) or a Model Zoo package (.zip)") from None


def load_checkpoint(path: str | os.PathLike, model_type: str | None = None, device: str | None = None,
                    source_name: str | None = None) -> Model:
    from micro_sam.instance_segmentation import get_decoder
    from micro_sam.util import get_sam_model

    path = Path(path)
    device = resolve_device(device)
    state, model_state = _read_checkpoint(path)
    if "decoder_state" not in state:
        raise UserError(
            f"checkpoint '{path.name}' has no instance decoder ('decoder_state'): APG and AIS need a model trained "
            "with one, e.g. a micro-sam finetuning checkpoint or a *_lm model"
        )
    inferred = infer_model_type(model_state)
    model_type = model_type or inferred
    if model_type[:5] != inferred:
        raise UserError(f"--model-type {model_type} does not match the checkpoint, whose weights are {inferred}: "
                        f"use --model-type {inferred} or leave it out")
    predictor = get_sam_model(model_type=model_type, checkpoint_path=str(path), device=device)
    decoder = get_decoder(predictor.model.image_encoder, state["decoder_state"], device)
    return Model(predictor=predictor, decoder=decoder, model_type=model_type,
                 source=source_name or str(path), device=str(device))


def registry_names() -> list[str]:
    from micro_sam.util import get_model_names

    return sorted(get_model_names())


@dataclass
class RegistryModel:
    """A model micro-sam's registry can download: its Model Zoo id (where it is published there), whether it
    has an instance decoder (APG / AIS) and where micro-sam's cache holds it, if it does."""

    name: str
    zoo_id: str | None
    has_decoder: bool
    cached: Path | None


def registry_models() -> list[RegistryModel]:
    from micro_sam.util import models

    registry = models()
    rows = []
    for name in registry_names():
        if name.endswith("_decoder"):  # the decoder half of another entry, not a model by itself
            continue
        decoder = f"{name}_decoder"
        files = [Path(registry.abspath) / n for n in (name, decoder) if n in registry.registry]
        cached = files[0] if files and all(f.exists() for f in files) else None
        rows.append(RegistryModel(name=name, zoo_id=zoo_id_of_url(registry.urls.get(name, "")),
                                  has_decoder=decoder in registry.registry, cached=cached))
    return rows


def models_with_decoder() -> str:
    """micro-sam registry names with an instance decoder, with their Model Zoo ids: for error messages."""
    return ", ".join(f"{m.name} ({m.zoo_id})" if m.zoo_id else m.name for m in registry_models() if m.has_decoder)


def load_registry_model(name: str, device: str | None = None) -> Model:
    from micro_sam.instance_segmentation import get_predictor_and_decoder

    names = registry_names()
    if name not in names:
        raise UserError(f"unknown model '{name}': pass a checkpoint file, a Model Zoo package (.zip) or id, or a "
                        f"micro-sam model name ({models_with_decoder()})")
    device = resolve_device(device)
    try:
        predictor, decoder = get_predictor_and_decoder(model_type=name, device=device)
    except ValueError as err:
        if "decoder" in str(err):
            raise UserError(f"micro-sam model '{name}' has no instance decoder: APG and AIS need one, e.g. "
                            f"'{name[:5]}_lm'") from None
        raise
    except Exception as err:
        if is_network_error(err):
            raise UserError(f"no network: cannot download micro-sam model '{name}'; pass a local checkpoint or "
                            "package (--model PATH)") from None
        raise
    return Model(predictor=predictor, decoder=decoder, model_type=name[:5], source=name, device=str(device))


# bioimageio.spec reports a failed id lookup as a ValueError whose text holds the resolver's error
NETWORK_ERROR_TEXTS = ("Name or service not known", "Temporary failure in name resolution", "Network is unreachable",
                       "No route to host", "Connection refused", "Failed to establish a new connection",
                       "(or unavailable) id map")


def is_network_error(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a failed download: micro-sam (pooch, requests) and bioimageio.spec
    (httpx) raise different kinds."""
    import socket
    import urllib.error

    kinds: tuple[type[BaseException], ...] = (OSError, socket.error, urllib.error.URLError)
    for module, name in (("requests", "exceptions.RequestException"), ("httpx", "TransportError")):
        try:
            import importlib

            found = importlib.import_module(module)
            for part in name.split("."):
                found = getattr(found, part)
            kinds += (found,)
        except (ImportError, AttributeError):  # pooch normally brings requests, bioimageio.spec httpx
            pass
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, kinds) and not isinstance(err, (FileNotFoundError, PermissionError)):
            return True
        if any(text in str(err) for text in NETWORK_ERROR_TEXTS):
            return True
        err = err.__cause__ or err.__context__
    return False

