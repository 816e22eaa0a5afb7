"""micro-sam's model registry (``vit_b_lm``, ...): names, what each holds, and loading one (downloads: needs
network)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.models.model import Model, resolve_device
from microsam_fiji.models.network import is_network_error, no_network
from microsam_fiji.models.zoo_id import zoo_id_of_url


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
    """A micro-sam registry model (downloaded and hash-checked by micro-sam's registry, cached), read as every
    checkpoint is read here: weights only, no code in the files runs (:func:`..checkpoint.read_state`).

    Args:
        name: a registry name with an instance decoder (``vit_b_lm``).
        device: where the model runs.

    Returns:
        The model."""
    from microsam_fiji.core.micro_sam_compat import micro_sam_util
    from microsam_fiji.models.checkpoint import model_from_state, read_state, sam_state

    names = registry_names()
    if name not in names:
        raise UserError(f"unknown model '{name}': pass a checkpoint file, a Model Zoo package (.zip) or id, or a "
                        f"micro-sam model name ({models_with_decoder()})")
    registry = micro_sam_util().models()
    if f"{name}_decoder" not in registry.registry:  # said before a download of a model APG cannot use
        raise UserError(f"micro-sam model '{name}' has no instance decoder: APG and AIS need one, e.g. "
                        f"'{name[:5]}_lm'")
    device = resolve_device(device)
    try:
        checkpoint = registry.fetch(name, progressbar=True)
        decoder = registry.fetch(f"{name}_decoder", progressbar=True)
    except Exception as err:
        if is_network_error(err):
            raise no_network(f"micro-sam model '{name}'") from None
        raise
    state = {"model_state": sam_state(read_state(checkpoint)), "decoder_state": read_state(decoder)}
    return model_from_state(state, name[:5], device, name, name)
