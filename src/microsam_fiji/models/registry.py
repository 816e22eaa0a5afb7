"""micro-sam's model registry (``vit_b_lm``, ...): names, what each holds, and loading one (downloads: needs
network)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.user_cache import cache_root
from microsam_fiji.models.model import Model, resolve_device
from microsam_fiji.models.network import is_network_error, no_network
from microsam_fiji.models.zoo_id import zoo_id_of_url

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def registry_names() -> list[str]:
    """Every name in micro-sam's registry (decoder halves included), from :func:`registry_entries`' list.

    Returns:
        the names, sorted."""
    return sorted(name for entry in registry_entries() for name in
                  ([entry.name, f"{entry.name}_decoder"] if entry.has_decoder else [entry.name]))


@dataclass
class RegistryEntry:
    """A model micro-sam's registry can download: its Model Zoo id (where it is published there) and whether it
    has an instance decoder (APG / AIS)."""

    name: str
    zoo_id: str | None
    has_decoder: bool


@dataclass
class RegistryModel(RegistryEntry):
    """A registry model and where micro-sam's cache holds it, if it does."""

    cached: Path | None = None


def registry_entries() -> list[RegistryEntry]:
    """micro-sam's registry as a list, read from micro-sam once per installed micro-sam version and kept in the
    package's cache folder (:func:`..core.user_cache.cache_root`): the registry is fixed within a micro-sam
    release, and reading it imports ``micro_sam.util`` (torch, torchvision: ~10 s on a 2-core CPU) — which
    ``install-fiji``, listing the names for the plugin's dialog, otherwise spent on each run.

    Returns:
        the models, sorted by name; decoder halves (``vit_b_lm_decoder``) are their model's ``has_decoder``."""
    from importlib.metadata import version

    kept = cache_root() / f"micro-sam-{version('micro_sam')}-registry.json"
    entries = _read_entries(kept)
    if entries is None:
        entries = _entries_from_micro_sam()
        _keep_entries(kept, entries)
    return entries


def _entries_from_micro_sam() -> list[RegistryEntry]:
    from microsam_fiji.core.micro_sam_compat import micro_sam_util

    registry = micro_sam_util().models()
    return [RegistryEntry(name=name, zoo_id=zoo_id_of_url(registry.urls.get(name, "")),
                          has_decoder=f"{name}_decoder" in registry.registry)
            for name in sorted(registry.registry)
            if not name.endswith("_decoder")]  # the decoder half of another entry, not a model by itself


def _read_entries(path: Path) -> list[RegistryEntry] | None:
    """The kept list, or None where it is missing or not one this function wrote (then micro-sam is asked)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        entries = [RegistryEntry(name=r["name"], zoo_id=r["zoo_id"], has_decoder=r["has_decoder"]) for r in rows]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    # names only of the registry's kind: install-fiji writes them into the plugin's settings file, where a line
    # break or '=' would become a setting of its own
    well_formed = all(isinstance(e.name, str) and _NAME.fullmatch(e.name) and isinstance(e.has_decoder, bool)
                      and (e.zoo_id is None or isinstance(e.zoo_id, str) and _NAME.fullmatch(e.zoo_id))
                      for e in entries)
    return entries if entries and well_formed else None


def _keep_entries(path: Path, entries: list[RegistryEntry]) -> None:
    """Write the list atomically (two processes may write it at once); an unwritable cache only costs time."""
    from microsam_fiji.core.tiff_io import atomic_write

    text = json.dumps([vars(e) for e in entries], indent=1)
    try:
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except OSError:
        pass


def registry_models() -> list[RegistryModel]:
    """The registry's models and where micro-sam's cache holds each (``microsam-fiji models``).

    Returns:
        the models, sorted by name."""
    from microsam_fiji.core.micro_sam_compat import micro_sam_util

    registry = micro_sam_util().models()
    rows = []
    for entry in registry_entries():
        files = [Path(registry.abspath) / n for n in (entry.name, f"{entry.name}_decoder") if n in registry.registry]
        cached = files[0] if files and all(f.exists() for f in files) else None
        rows.append(RegistryModel(name=entry.name, zoo_id=entry.zoo_id, has_decoder=entry.has_decoder,
                                  cached=cached))
    return rows


def models_with_decoder() -> str:
    """micro-sam registry names with an instance decoder, with their Model Zoo ids: for error messages."""
    return ", ".join(f"{m.name} ({m.zoo_id})" if m.zoo_id else m.name for m in registry_entries() if m.has_decoder)



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
