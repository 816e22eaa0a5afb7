"""Load a Model Zoo package exported by ``microsam-fiji export`` back into a full micro-sam segmenter.

The SAM checkpoint is rebuilt from the package alone: image encoder + UNETR decoder from the
``pytorch_state_dict`` weights, prompt encoder + mask decoder from the attachment, each checked against the
sha256 recorded in the package; APG / AIS defaults come from ``config.micro_sam``."""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..models import PACKAGE_DESCRIPTIONS, Model


@dataclass
class PackageContents:
    """What a package holds for micro-sam: its description, ``config.micro_sam`` and the checked state dicts."""

    descr: Any
    config: dict
    weights: dict
    sam_parts: dict


def _description_source(path: Path) -> Path:
    if path.is_dir():
        for name in PACKAGE_DESCRIPTIONS:
            if (path / name).exists():
                return path / name
        raise UserError(f"folder '{path}' has no rdf.yaml: pass a Model Zoo package (.zip or unpacked folder)")
    if path.suffix.lower() == ".zip" and not zipfile.is_zipfile(path):
        raise UserError(f"'{path.name}' is not a valid zip file (corrupted or incomplete download): "
                        "download or export the package again")
    return path


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0][:300] if lines else "unknown reason"


def located(entry) -> str:
    """A bioimageio validation error or warning as ``field.path: message``."""
    return f"{'.'.join(map(str, entry.loc))}: {entry.msg}" if entry.loc else entry.msg


def read_description(path: str | os.PathLike):
    """The package's bioimage.io model description (spec 0.5), or a UserError saying why there is none."""
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_5

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"package '{path}' not found: check the path")
    source = _description_source(path)
    try:
        descr = load_description(source, perform_io_checks=False, format_version="latest")
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"cannot read package '{path.name}' ({_first_line(err)}): download or export it again") \
            from None
    except Exception as err:  # bioimageio.spec reports broken YAML and the like in many ways
        raise UserError(f"'{path.name}' is not a readable Model Zoo package: {_first_line(err)}") from None
    if isinstance(descr, InvalidDescr):
        errors = descr.validation_summary.errors
        reason = _first_line(located(errors[0])) if errors else "invalid description"
        raise UserError(f"'{path.name}' is not a valid Model Zoo package ({reason}): run "
                        "'microsam-fiji validate' on it for details")
    if not isinstance(descr, v0_5.ModelDescr):
        raise UserError(f"'{path.name}' describes a {descr.type}, not a model: pass a model package")
    return descr


def micro_sam_config(descr, name: str = "package") -> dict:
    extra = descr.config.model_extra or {}
    config = extra.get("micro_sam")
    if not isinstance(config, dict) or "model_type" not in config:
        raise UserError(f"'{name}' is a Model Zoo model without micro-sam APG metadata (config.micro_sam): use a "
                        "package made by 'microsam-fiji export', or run this model with bioimageio.core")
    return config


def _checked_bytes(file_descr, label: str, name: str) -> bytes:
    """The file's bytes after comparing them with the sha256 the package records."""
    source = Path(str(file_descr.source)).name
    mismatch = UserError(f"'{name}': '{source}' does not match its recorded sha256 (the file was changed or "
                         "corrupted): export or download the package again")
    if file_descr.sha256 is None:
        raise UserError(f"'{name}' records no sha256 for '{source}': re-export it with 'microsam-fiji export'")
    try:
        data = file_descr.get_reader().read()
    except Exception as err:  # bioimageio.spec's reader checks the hash itself when it can
        if "sha256" in str(err).lower():
            raise mismatch from None
        raise UserError(f"'{name}' lacks its {label} file '{source}': the package is incomplete; export or "
                        "download it again") from None
    if hashlib.sha256(data).hexdigest() != str(file_descr.sha256):
        raise mismatch
    return data


def _torch_state(data: bytes, source: str, name: str) -> dict:
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"'{name}': '{source}' is not a readable PyTorch state dict ({type(err).__name__})") \
            from None


def read_package(path: str | os.PathLike) -> PackageContents:
    """Description, micro-sam config and hash-checked state dicts of a package (no model is built)."""
    path = Path(path).expanduser()
    name = path.name
    descr = read_description(path)
    config = micro_sam_config(descr, name)
    weights_descr = descr.weights.pytorch_state_dict
    if weights_descr is None:
        raise UserError(f"'{name}' has no pytorch_state_dict weights, which APG needs: re-export the package")
    attachment = next((a for a in descr.attachments
                       if Path(str(a.source)).name == config.get("sam_attachment")), None)
    if attachment is None:
        raise UserError(f"'{name}' lacks the attachment '{config.get('sam_attachment')}' (SAM prompt encoder and "
                        "mask decoder) that APG needs: re-export the package")
    weights = _torch_state(_checked_bytes(weights_descr, "weights", name), "weights", name)
    sam_parts = _torch_state(_checked_bytes(attachment, "attachment", name), config["sam_attachment"], name)
    return PackageContents(descr=descr, config=config, weights=weights, sam_parts=sam_parts)


def micro_sam_checkpoint(contents: PackageContents) -> dict:
    """The package's weights in micro-sam's finetuning-checkpoint layout."""
    enc, dec = contents.config["encoder_prefix"], contents.config["decoder_prefix"]
    model_state = {"image_encoder." + k[len(enc):]: v for k, v in contents.weights.items() if k.startswith(enc)}
    model_state.update(contents.sam_parts)
    decoder_state = {k[len(dec):]: v for k, v in contents.weights.items()
                     if k.startswith(dec) and not k.startswith(enc)}
    return {"model_state": model_state, "decoder_state": decoder_state}


def package_params(config: dict, name: str = "package") -> tuple[dict[str, dict], str]:
    from ..params import check_mode, resolve_params

    try:
        params = {mode: resolve_params(mode, config.get(mode) or {}) for mode in ("apg", "ais")}
        mode = check_mode(config.get("default_mode", "apg"))
    except UserError as err:
        raise UserError(f"'{name}' has unusable micro-sam parameters: {err}") from None
    return params, mode


def load_package(path: str | os.PathLike, device: str | None = None) -> Model:
    """A :class:`Model` from a package exported by ``microsam-fiji export`` (zip, folder or its rdf.yaml)."""
    import torch

    from ..models import load_checkpoint, resolve_device

    path = Path(path).expanduser()
    contents = read_package(path)
    params, mode = package_params(contents.config, path.name)
    device = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="microsam-package-") as tmp:
        checkpoint = Path(tmp) / "checkpoint.pt"
        torch.save(micro_sam_checkpoint(contents), checkpoint)
        model = load_checkpoint(checkpoint, contents.config["model_type"], device, source_name=str(path))
    model.params = params
    model.default_mode = mode
    return model
