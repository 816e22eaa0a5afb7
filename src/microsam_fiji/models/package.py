"""Load a Model Zoo package back into a full micro-sam segmenter: a local zip / folder / rdf.yaml, a Model Zoo
id (``diplomatic-bug``) or a URL, resolved by bioimageio.spec (which downloads and caches remote files).

Two kinds of package hold what APG needs:

* exported by ``microsam-fiji export``: the SAM checkpoint is rebuilt from the package alone: image encoder +
  UNETR decoder from the ``pytorch_state_dict`` weights, prompt encoder + mask decoder from the attachment, each
  checked against the sha256 recorded in the package; APG / AIS defaults come from ``config.micro_sam``;
* exported by micro-sam itself (``micro_sam.bioimageio.export_sam_model``, the ``PredictorAdaptor``
  architecture; all micro-sam models on the Model Zoo): the weights are micro-sam's checkpoint
  (``model_state`` + ``decoder_state``, or the SAM state with the decoder as the ``*_decoder.pt``
  attachment); APG / AIS run with micro-sam's defaults."""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from microsam_fiji.core.errors import UserError, first_line
from microsam_fiji.models.model import Model, resolve_device
from microsam_fiji.models.network import is_network_error
from microsam_fiji.models.network import no_network as no_network_error
from microsam_fiji.models.package_config import MicroSamConfig
from microsam_fiji.models.zoo_id import zoo_reference

PACKAGE_SUFFIXES = (".zip",)
# bioimageio.spec 0.5.12 rejects every model description under pydantic 2.14 (an upstream issue; pyproject.toml
# pins pydantic below it): what a consumer who installed bioimageio.core alone is told to install
PYDANTIC_PIN = "pydantic<2.14"



PACKAGE_DESCRIPTIONS = ("rdf.yaml", "bioimageio.yaml")
MICRO_SAM_ARCHITECTURE = "PredictorAdaptor"  # micro_sam/bioimageio/predictor_adaptor.py
MICRO_SAM_DECODER_SUFFIX = "_decoder.pt"  # its decoder attachment, e.g. vit_b_decoder.pt


@dataclass
class PackageContents:
    """What a package holds for micro-sam: its description, ``config.micro_sam`` and the checked state dicts."""

    descr: Any
    """The package's bioimage.io model description (None where only the state dicts matter)."""
    config: MicroSamConfig
    """Its ``config.micro_sam``; a mapping given here is read with :meth:`MicroSamConfig.from_dict`."""
    weights: dict
    """The ``pytorch_state_dict`` weights: SAM image encoder + UNETR decoder, under the config's prefixes."""
    sam_parts: dict
    """The SAM attachment's state: prompt encoder and mask decoder, with micro-sam's key names."""

    def __post_init__(self):
        # a config.micro_sam straight from an rdf.yaml (or from the exporter) is accepted as it is written
        if isinstance(self.config, Mapping):
            self.config = MicroSamConfig.from_dict(self.config)


def _description_source(path: Path) -> Path:
    if path.is_dir():
        for name in PACKAGE_DESCRIPTIONS:
            if (path / name).exists():
                return path / name
        raise UserError(f"folder '{path}' has no rdf.yaml: pass a Model Zoo package (.zip or unpacked folder)")
    if path.suffix.lower() == ".zip" and not zipfile.is_zipfile(path):
        raise UserError(f"'{path.name}' is not a valid zip file (corrupted or incomplete download): "
                        "download or export the package again")
    if zipfile.is_zipfile(path):
        _check_zip_members(path)
    elif not path.name.endswith((".yaml", ".yml")):
        raise UserError(f"'{path.name}' is not a Model Zoo package (neither a zip nor an rdf.yaml): pass the "
                        "package zip, its unpacked folder or its rdf.yaml")
    return path


def _check_zip_members(path: Path) -> None:
    """A zip that is no package says what it is (empty, an ImageJ ROI set, a zip without rdf.yaml); a member
    that claims more than this machine can hold (a zip bomb) is refused before anything is read."""
    from microsam_fiji.core.machine import check_holdable

    with zipfile.ZipFile(path) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
    names = [i.filename for i in infos]
    largest = max(infos, key=lambda i: i.file_size, default=None)
    if largest is not None:
        check_holdable(largest.file_size, f"'{path.name}': member '{largest.filename}' "
                       f"({largest.compress_size:,} bytes packed) expands to",
                       "not a package this machine can read (a zip bomb or a damaged file); get the package "
                       "from its source again")
    hint = "pass a Model Zoo package (from 'microsam-fiji export' or bioimage.io)"
    if not names:
        raise UserError(f"'{path.name}' is an empty zip file, not a Model Zoo package: {hint}")
    if not any(Path(n).name in PACKAGE_DESCRIPTIONS for n in names):
        if all(n.lower().endswith(".roi") for n in names):
            raise UserError(f"'{path.name}' is an ImageJ ROI set (RoiSet.zip), not a Model Zoo package: {hint} "
                            "(ROI sets convert to labels with 'microsam-fiji labels')")
        raise UserError(f"'{path.name}' is a zip without rdf.yaml, not a Model Zoo package: {hint}")


def located(entry) -> str:
    """A bioimageio validation error or warning as ``field.path: message``."""
    return f"{'.'.join(map(str, entry.loc))}: {entry.msg}" if entry.loc else entry.msg


def is_remote(source) -> bool:
    """A Model Zoo id or URL rather than a local file (see :func:`microsam_fiji.models.load.zoo_reference`)."""

    return not isinstance(source, Path) and zoo_reference(str(source)) is not None


def package_name(source) -> str:
    return str(source) if is_remote(source) else Path(source).expanduser().name


def no_network(source, err: BaseException) -> UserError | None:
    """The one-line "no network" error when ``err`` comes from a failed download of ``source``."""

    if not is_network_error(err):
        return None
    return no_network_error(f"Model Zoo model '{source}'")


def pydantic_pin_problem() -> str | None:
    """What a consumer is told when the installed pydantic is one bioimageio.spec 0.5.12 fails with (2.14 and later
    reject every model description, ours and micro-sam's: an upstream issue).

    Returns:
        One sentence naming the installed versions and the working pin (``PYDANTIC_PIN``), or None.
    """
    import re
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed, spec_version = version("pydantic"), version("bioimageio.spec")
    except PackageNotFoundError:
        return None
    if tuple(int(p) for p in re.findall(r"\d+", installed)[:2]) < (2, 14):
        return None
    return (f"pydantic {installed} is installed, with which bioimageio.spec {spec_version} rejects model descriptions "
            f"(an upstream issue): pip install '{PYDANTIC_PIN}'")


def _load_remote_description(source: str):
    from bioimageio.spec import ValidationContext, load_description


    try:
        # no progress bar for the small rdf.yaml (it would print one even when the download fails); the
        # weights, read later, keep theirs
        with ValidationContext(progressbar=False, perform_io_checks=False):
            return load_description(zoo_reference(source), perform_io_checks=False, format_version="latest")
    except Exception as err:  # noqa: BLE001 - bioimageio.spec wraps download failures in ValueError and others
        offline = no_network(source, err)
        if offline is not None:
            raise offline from None
        raise UserError(f"cannot load Model Zoo model '{source}': {first_line(err)}") from None


def read_description(path: str | os.PathLike):
    """The package's bioimage.io model description (spec 0.5), or a UserError saying why there is none.
    ``path``: a local package, or a Model Zoo id or URL (downloaded by bioimageio.spec)."""
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_5

    if is_remote(path):
        descr = _load_remote_description(str(path))
        path = Path(str(path).rstrip("/").split("/")[-1] or str(path))
    else:
        path = Path(path).expanduser()
        if not path.exists():
            raise UserError(f"package '{path}' not found: check the path")
        source = _description_source(path)
        try:
            descr = load_description(source, perform_io_checks=False, format_version="latest")
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"cannot read package '{path.name}' ({first_line(err)}): download or export it "
                            "again") from None
        except Exception as err:  # noqa: BLE001 - bioimageio.spec reports broken YAML and the like in many ways
            raise UserError(f"'{path.name}' is not a readable Model Zoo package: {first_line(err)}") from None
    if isinstance(descr, InvalidDescr):
        errors = descr.validation_summary.errors
        reason = first_line(located(errors[0])) if errors else "invalid description"
        pin = pydantic_pin_problem()
        raise UserError(f"'{path.name}' is not a valid Model Zoo package: {reason}" + (f" ({pin})" if pin else ""))
    if not isinstance(descr, v0_5.ModelDescr):
        raise UserError(f"'{path.name}' describes a {descr.type}, not a model: pass a model package")
    return descr


def micro_sam_config(descr, name: str = "package") -> MicroSamConfig:
    """The package's ``config.micro_sam``, or a UserError when it has none (see :meth:`MicroSamConfig.from_dict`)."""
    extra = descr.config.model_extra or {}
    return MicroSamConfig.from_dict(extra.get("micro_sam"), name)


def remote_source(file_descr) -> str | None:
    """Where a package's file is downloaded from: a package may name its files by URL.

    Args:
        file_descr: A bioimageio file description (weights, attachment, ...).

    Returns:
        The http(s) URL, or None for a file inside the package.
    """
    source = str(file_descr.source)
    return source if source.startswith(("http://", "https://")) else None


def _cached(file_descr) -> bool:
    """Whether bioimageio.spec's download cache holds the file (then no network is needed): it reuses a download
    by the sha256 the package records, and downloads a file without one every time."""
    if file_descr.sha256 is None:
        return False
    try:
        from bioimageio.spec import settings
        from genericache import ContentDigest  # bioimageio.spec's cache

        entry = settings.disk_cache.get(digest=ContentDigest.parse(hexdigest=str(file_descr.sha256)))
    except Exception:  # noqa: BLE001 - a cache it cannot read: the download decides
        return False
    if entry is None:
        return False
    getattr(entry, "close", lambda: None)()  # an open file of the cache
    return True


def _checked_bytes(file_descr, label: str, name: str, require_hash: bool = True) -> bytes:
    """The file's bytes after comparing them with the sha256 the package records (micro-sam's own exports
    record none: ``require_hash=False`` reads them as they are)."""
    from microsam_fiji.models.network import host_unreachable

    source = Path(str(file_descr.source)).name
    url = remote_source(file_descr)
    if url is not None and not _cached(file_descr) and host_unreachable(url):
        raise no_network_error(f"the {label} file of '{name}' from {url}")
    mismatch = UserError(f"'{name}': '{source}' does not match its recorded sha256 (the file was changed or "
                         "corrupted): export or download the package again")
    if file_descr.sha256 is None and require_hash:
        raise UserError(f"'{name}' records no sha256 for '{source}': re-export it with 'microsam-fiji export'")
    try:
        data = file_descr.get_reader().read()
    except Exception as err:  # noqa: BLE001 - bioimageio.spec's reader checks the hash itself when it can
        if "sha256" in str(err).lower():
            raise mismatch from None
        if isinstance(err, zipfile.BadZipFile) or "crc" in str(err).lower():
            raise UserError(f"'{name}': its {label} file '{source}' is damaged ({first_line(err, 120)}): "
                            "download or export the package again") from None
        offline = no_network(name, err)
        if offline is not None:
            raise (no_network_error(f"the {label} file of '{name}' from {url}") if url else offline) from None
        raise UserError(f"'{name}' lacks its {label} file '{source}': the package is incomplete; export or "
                        "download it again") from None
    if file_descr.sha256 is not None and hashlib.sha256(data).hexdigest() != str(file_descr.sha256):
        raise mismatch
    return data


def _torch_state(data: bytes, source: str, name: str) -> dict:
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for bytes that are no state dict
        raise UserError(f"'{name}': '{source}' is not a readable PyTorch state dict ({type(err).__name__})") \
            from None


def read_package(path: str | os.PathLike, descr=None) -> PackageContents:
    """Description, micro-sam config and hash-checked state dicts of a package (no model is built)."""
    name = package_name(path)
    descr = descr if descr is not None else read_description(path)
    config = micro_sam_config(descr, name)
    weights_descr = descr.weights.pytorch_state_dict
    if weights_descr is None:
        raise UserError(f"'{name}' has no pytorch_state_dict weights, which APG needs: re-export the package")
    attachment = next((a for a in descr.attachments
                       if Path(str(a.source)).name == config.sam_attachment), None)
    if attachment is None:
        raise UserError(f"'{name}' lacks the attachment '{config.sam_attachment}' (SAM prompt encoder and "
                        "mask decoder) that APG needs: re-export the package")
    weights = _torch_state(_checked_bytes(weights_descr, "weights", name), "weights", name)
    sam_parts = _torch_state(_checked_bytes(attachment, "attachment", name), config.sam_attachment, name)
    return PackageContents(descr=descr, config=config, weights=weights, sam_parts=sam_parts)


def micro_sam_checkpoint(contents: PackageContents) -> dict:
    """The package's weights in micro-sam's finetuning-checkpoint layout."""
    enc, dec = contents.config.encoder_prefix, contents.config.decoder_prefix
    model_state = {"image_encoder." + k[len(enc):]: v for k, v in contents.weights.items() if k.startswith(enc)}
    model_state.update(contents.sam_parts)
    decoder_state = {k[len(dec):]: v for k, v in contents.weights.items()
                     if k.startswith(dec) and not k.startswith(enc)}
    return {"model_state": model_state, "decoder_state": decoder_state}


def is_micro_sam_export(descr) -> bool:
    """Written by micro-sam's own exporter (``micro_sam.bioimageio.export_sam_model``)."""
    weights = descr.weights.pytorch_state_dict
    return weights is not None and str(getattr(weights.architecture, "callable", "")) == MICRO_SAM_ARCHITECTURE


def _decoder_attachment(descr):
    return next((a for a in descr.attachments if Path(str(a.source)).name.endswith(MICRO_SAM_DECODER_SUFFIX)),
                None)


def micro_sam_export_checkpoint(descr, name: str) -> tuple[dict, str]:
    """(micro-sam finetuning checkpoint, model type) of a package micro-sam's exporter wrote; a UserError when
    it has no instance decoder."""
    from microsam_fiji.models.registry import models_with_decoder

    weights_descr = descr.weights.pytorch_state_dict
    source = Path(str(weights_descr.source)).name
    state = _torch_state(_checked_bytes(weights_descr, "weights", name, require_hash=False), source, name)
    if "model_state" in state:  # micro-sam >= 1.8 exports the finetuning checkpoint itself
        model_state, decoder_state = state["model_state"], state.get("decoder_state")
    else:  # earlier exports: the SAM state, the decoder only as an attachment
        model_state, decoder_state = state, None
    attachment = _decoder_attachment(descr)
    if decoder_state is None and attachment is not None:
        decoder_state = _torch_state(_checked_bytes(attachment, "decoder attachment", name, require_hash=False),
                                     Path(str(attachment.source)).name, name)
    if decoder_state is None:
        raise UserError(f"'{name}' is a micro-sam model without an instance decoder: APG and AIS need one; use a "
                        f"micro-sam model that has one ({models_with_decoder()})")
    model_type = str((weights_descr.architecture.kwargs or {}).get("model_type", ""))
    return {"model_state": model_state, "decoder_state": decoder_state}, model_type


def _model_from_checkpoint(checkpoint_state: dict, model_type: str | None, device, source: str) -> Model:
    from microsam_fiji.models.checkpoint import model_from_state

    return model_from_state(checkpoint_state, model_type or None, device, source, package_name(source))


def load_package(path: str | os.PathLike, device: str | None = None) -> Model:
    """A :class:`Model` from a Model Zoo package exported by ``microsam-fiji export`` or by micro-sam (zip,
    folder or its rdf.yaml; or a Model Zoo id or URL)."""
    remote = is_remote(path)
    source = str(path) if remote else str(Path(path).expanduser())
    name = package_name(path)
    descr = read_description(path)
    device = resolve_device(device)
    if is_micro_sam_export(descr):
        checkpoint, model_type = micro_sam_export_checkpoint(descr, name)
        return _model_from_checkpoint(checkpoint, model_type, device, source)
    contents = read_package(path, descr)
    model = _model_from_checkpoint(micro_sam_checkpoint(contents), contents.config.model_type, device, source)
    model.params = contents.config.params
    model.default_mode = contents.config.default_mode
    return model


def looks_like_package(path: Path) -> bool:
    if path.is_dir():
        return any((path / name).exists() for name in PACKAGE_DESCRIPTIONS)
    return path.suffix.lower() in PACKAGE_SUFFIXES or path.name.endswith(PACKAGE_DESCRIPTIONS)
