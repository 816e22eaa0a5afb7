"""The package's bioimage.io description (rdf.yaml, spec 0.5): what it cites, its tags, its files and its
``config`` (the reproduction tolerance and ``config.micro_sam``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from microsam_fiji.models.package_config import MicroSamConfig
from microsam_fiji.zoo.tensors import input_tensor, output_tensor
from microsam_fiji.zoo.weights import hashed_file, state_dict_weights

DEFAULT_TAGS = ("micro-sam", "segment-anything", "instance-segmentation", "automatic-prompt-generation",
                "microscopy", "2d", "pytorch")
# roles of the files attached, where the export has them
ATTACHMENTS = ("sam", "test_image_license", "postprocessing_macro")


def default_description(model_type: str, mode: str) -> str:
    """The one-line description when the exporter gives none (the Model Zoo allows 128 characters); it opens with
    the whole-image rule, the first thing a consumer reads (the spec cannot forbid tiling)."""
    return (f"Whole images only, no tiles: micro-sam {model_type} foreground/distance maps for any tool; "
            f"full {mode.upper()} with micro-sam")[:128]


def package_tags(tags: Sequence[str]) -> list[str]:
    """``DEFAULT_TAGS`` then the exporter's ``tags``, each once, in that order."""
    return list(dict.fromkeys([*DEFAULT_TAGS, *tags]))


def micro_sam_config(model_type: str, mode: str, apg: Mapping, ais: Mapping,
                     use_conv_transpose: bool | None = None) -> dict[str, Any]:
    """``config.micro_sam`` of a package exported now, as rdf.yaml holds it.

    Args:
        model_type: The SAM encoder type.
        mode: The package's default mode (``apg`` or ``ais``).
        apg: The APG parameters to store (resolved: every one).
        ais: The AIS parameters to store.
        use_conv_transpose: The decoder's architecture argument (None where it does not matter).

    Returns:
        :meth:`MicroSamConfig.to_dict` of the config, with the installed micro-sam's version.
    """
    from importlib.metadata import version

    return MicroSamConfig(model_type=model_type, micro_sam_version=version("micro_sam"), default_mode=mode,
                          apg=dict(apg), ais=dict(ais), use_conv_transpose=use_conv_transpose).to_dict()


def describe(*, name: str, description: str, channels: int, files: Mapping[str, Path], config: Mapping,
             authors: list, license: str, tags: Sequence[str], architecture_kwargs: Mapping, weights=None,
             upload_fields: Mapping | None = None, cite: Sequence = (), covers: Sequence[Path] = (),
             card=None):
    """The package's ``ModelDescr``.

    Args:
        name: The package name (checked).
        description: Its one-line description.
        channels: The input's channels (1 or 3).
        files: The package's files by role: those of :func:`microsam_fiji.zoo.weights.write_weight_files` and
            :func:`microsam_fiji.zoo.test_data.write_test_files`, and ``documentation`` and ``cover``.
        config: ``config.micro_sam`` (see :func:`micro_sam_config`).
        authors: bioimageio Authors.
        license: An SPDX licence id (checked).
        tags: Every tag (see :func:`package_tags`).
        architecture_kwargs: The architecture's arguments.
        weights: A ``WeightsDescr``; None for the pytorch_state_dict weights alone (the converters start there).
        upload_fields: Further ``ModelDescr`` fields (maintainers, uploader, version, ...).
        cite: ``CiteEntry`` objects (see :func:`microsam_fiji.zoo.card.citations`).
        covers: The publisher's covers, after the generated one.
        card: ``config.bioimageio`` (see :func:`microsam_fiji.zoo.card.bioimageio_config`); default: the
            reproduction tolerance alone.

    Returns:
        The description; bioimageio.spec validates it on construction.
    """
    from bioimageio.spec.model import v0_5 as spec

    from microsam_fiji.zoo.card import bioimageio_config
    from microsam_fiji.zoo.postprocessing import deepimagej_config

    return spec.ModelDescr(
        name=name,
        description=description,
        authors=authors,
        cite=list(cite),
        license=spec.LicenseId(license),
        tags=list(tags),
        documentation=spec.FileDescr(source=files["documentation"]),
        covers=[spec.FileDescr(source=c) for c in (files["cover"], *covers)],
        inputs=[input_tensor(channels, files)],
        outputs=[output_tensor(files)],
        attachments=[hashed_file(files[key]) for key in ATTACHMENTS if key in files],
        **(upload_fields or {}),
        weights=weights if weights is not None else spec.WeightsDescr(
            pytorch_state_dict=state_dict_weights(files, architecture_kwargs)),
        config=spec.Config(  # type: ignore[call-arg]  # the spec's Config takes extra keys (micro_sam)
            bioimageio=card if card is not None else bioimageio_config(model_type=str(
                architecture_kwargs.get("model_type", "vit_b"))),
            micro_sam=dict(config),
            **({"deepimagej": deepimagej_config()} if "postprocessing_macro" in files else {}),
        ),
    )
