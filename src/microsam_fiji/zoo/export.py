"""Export a micro-sam finetuning checkpoint as a BioImage Model Zoo package (spec 0.5) that runs APG.

The package's tensor path is one image in, one tensor of instance maps out (foreground, center distances,
boundary distances): the end-to-end UNETR of ``architecture.py``, runnable by bioimageio.core, ilastik and
deepImageJ. What APG needs beyond it (SAM's prompt encoder and mask decoder) is an attachment, and the APG / AIS
parameters live under ``config.micro_sam``, so ``microsam_fiji.load_model(package)`` rebuilds the full
micro-sam segmenter from the package alone (see ``models/package.py``).

This module puts the steps together; each has its own module: ``source`` (the checkpoint), ``test_data`` (test
image and tensors), ``evaluation`` (accuracy against ground truth), ``weights`` (every weight format),
``reproduction`` (each format against micro-sam), ``cover``, ``documentation``, ``metadata`` (names, people,
upload fields) and ``description`` (rdf.yaml)."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.zoo import card, metadata
from microsam_fiji.zoo.card import write_cover
from microsam_fiji.zoo.description import (
    default_description,
    describe,
    micro_sam_config,
    package_tags,
)
from microsam_fiji.zoo.documentation import documentation as documentation_text
from microsam_fiji.zoo.postprocessing import write_macro
from microsam_fiji.zoo.reproduction import (
    check_formats,
    micro_sam_maps,
    read_test_labels,
    scores,
)
from microsam_fiji.zoo.test_data import (
    as_tensor,
    is_built_in,
    read_test_image,
    write_test_files,
)
from microsam_fiji.zoo.weights import (
    WEIGHT_FORMATS,
    convert_formats,
    package_weights,
    quiet_converter_logs,
    read_publisher_files,
    standalone_warnings,
    write_weight_files,
)


@dataclass
class ExportReport:
    """What export measured, also written into the package's documentation."""

    path: Path
    """The package written."""
    weight_formats: list[str]
    """The weight formats it holds."""
    max_abs_diff: dict[str, float]
    """Per weight format run: largest difference of the package's output to micro-sam's decoder maps."""
    n_objects: int
    """Objects the package's default mode found in the test image."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Weight format asked for but left out -> why."""
    warnings: list[str] = field(default_factory=list)
    """What consumers of the package should know (e.g. weights that need micro-sam)."""


def export_package(checkpoint: str | os.PathLike, out: str | os.PathLike, *, name: str,
                   model_type: str | None = None, test_image=None, apg_params: Mapping[str, Any] | None = None,
                   ais_params: Mapping[str, Any] | None = None, mode: str = "apg",
                   authors: Sequence[str] | None = None, license: str = "CC-BY-4.0", tags: Sequence[str] = (),
                   description: str | None = None, weight_formats: Sequence[str] = WEIGHT_FORMATS,
                   progress=None, **upload) -> Path:
    """Write a Model Zoo package (zip) of a micro-sam finetuning ``checkpoint``.

    Weight formats that cannot be made or do not reproduce micro-sam are left out and reported (see
    :func:`export_package_report`).

    Args:
        checkpoint: A micro-sam finetuning checkpoint (.pt) with an instance decoder (``decoder_state``).
        out: The package to write (.zip); written atomically, so a failed export leaves no partial file.
        name: The package name: 5 to 128 letters, digits, spaces and ``_+-()``.
        model_type: The SAM encoder type (``vit_t`` ... ``vit_h``); default: inferred from the weights.
        test_image: A path or a 2D / RGB array (default: a built-in nuclei crop); the package's test tensors,
            cover and documented validation come from it, and it fixes the declared channels (gray or RGB).
        apg_params: Overrides of micro-sam's APG defaults, stored as the package's defaults (names as for
            :func:`microsam_fiji.segment_with_scores`).
        ais_params: Overrides of micro-sam's AIS defaults, as ``apg_params``.
        mode: The package's default mode, ``apg`` or ``ais``.
        authors: ``"NAME; github_user=USER; affiliation=...; orcid=...; email=..."`` each (default: the user's
            login name, which validate flags).
        license: An SPDX licence id.
        tags: Tags beyond the default ones.
        description: The one-line description (default: one naming the model type and mode).
        weight_formats: Formats to include, from ``WEIGHT_FORMATS``; ``pytorch_state_dict`` is required.
        progress: Called with a short message at each slow step.
        **upload: For the Model Zoo upload: ``maintainers`` (like ``authors``), ``uploader``
            (``"EMAIL; NAME"``), ``version``, ``git_repo``, ``training_data`` (a Model Zoo dataset id) and
            ``test_labels`` (ground truth for the test image: mSA and object counts in the documentation's
            Validation section), and for the model card ``documentation`` (a Markdown file of yours, added to
            the generated documentation), ``covers`` (more cover images), ``cite`` (``"TEXT; doi=..."`` or
            ``"TEXT; url=..."`` each) and ``training`` (``"epochs=...; batch_size=...; ..."``, see
            :data:`microsam_fiji.zoo.card.TRAINING_KEYS`).

    Returns:
        The path of the package written (``out``).

    Raises:
        UserError: an option or the checkpoint is unusable, or the packaged network does not reproduce
            micro-sam's output.
    """
    return export_package_report(checkpoint, out, name=name, model_type=model_type, test_image=test_image,
                                 apg_params=apg_params, ais_params=ais_params, mode=mode, authors=authors,
                                 license=license, tags=tags, description=description,
                                 weight_formats=weight_formats, progress=progress, **upload).path


def _check_output(out: Path, weight_formats: Sequence[str]) -> None:
    if out.suffix.lower() != ".zip":
        raise UserError(f"output '{out}' must end in .zip (a Model Zoo package is a zip file)")
    unknown = set(weight_formats) - set(WEIGHT_FORMATS)
    # the other formats are converted from the pytorch_state_dict weights, and APG loads those
    if unknown or "pytorch_state_dict" not in weight_formats:
        raise UserError(f"weight formats {sorted(weight_formats)}: choose from {', '.join(WEIGHT_FORMATS)}, "
                        "pytorch_state_dict included")


def export_package_report(checkpoint, out, *, name, model_type=None, test_image=None, apg_params=None,
                          ais_params=None, mode="apg", authors=None, license="CC-BY-4.0", tags=(),
                          description=None, weight_formats=WEIGHT_FORMATS, progress=None, maintainers=None,
                          uploader=None, version=None, git_repo=None, training_data=None,
                          test_labels=None, documentation=None, covers=(), cite=(), training=None) -> ExportReport:
    """:func:`export_package`, returning what was measured as well.

    Args:
        checkpoint, out, name, model_type, test_image, apg_params, ais_params, mode, authors, license, tags,
        description, weight_formats, progress: As for :func:`export_package`.
        maintainers, uploader, version, git_repo, training_data, test_labels, documentation, covers, cite,
            training: The ``upload`` options of :func:`export_package`.

    Returns:
        The :class:`ExportReport`: the package's path, its weight formats, each format's difference to
        micro-sam, the objects found in the test image and the formats left out.

    Raises:
        UserError: as :func:`export_package`.
    """
    # bioimageio.spec would ask GitHub about every github_user and ping every URL while the description is
    # built: export works offline, as validate does (the Model Zoo checks them on upload). Set before
    # bioimageio.spec reads its settings (an explicit ValidationContext(perform_io_checks=False) is no substitute:
    # 0.5.12 then demands every file in its known_files)
    os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")
    return _export(checkpoint, out, name=name, model_type=model_type, test_image=test_image,
                   apg_params=apg_params, ais_params=ais_params, mode=mode, authors=authors, license=license,
                   tags=tags, description=description, weight_formats=weight_formats, progress=progress,
                   maintainers=maintainers, uploader=uploader, version=version, git_repo=git_repo,
                   training_data=training_data, test_labels=test_labels, documentation=documentation,
                   covers=covers, cite=cite, training=training)


def _export(checkpoint, out, *, name, model_type, test_image, apg_params, ais_params, mode, authors, license,
            tags, description, weight_formats, progress, maintainers, uploader, version, git_repo, training_data,
            test_labels, documentation, covers, cite, training) -> ExportReport:
    import time

    from microsam_fiji.core.params import check_mode, resolve_params
    from microsam_fiji.core.writable import check_writable
    from microsam_fiji.engines.segment import segment_with_scores
    from microsam_fiji.models.backends import apply_backend
    from microsam_fiji.models.checkpoint import load_checkpoint
    from microsam_fiji.training.provenance import export_defaults

    say: Callable[[str], None] = progress or (lambda msg: None)
    out = Path(out)
    _check_output(out, weight_formats)
    check_writable(out, "package")
    # every option and input is checked before the slow steps (loading and running the model)
    name, license, mode = metadata.check_name(name), metadata.check_license(license), check_mode(mode)
    description = metadata.check_description(description)
    apg, ais = resolve_params("apg", apg_params), resolve_params("ais", ais_params)
    plane, origin = read_test_image(test_image)
    built_in_image = is_built_in(test_image)
    truth = read_test_labels(test_labels, plane.shape[:2])
    authors_descr = metadata.authors(authors)
    # a checkpoint from finetune says how it was trained: what the user did not give comes from there
    fine_tuned = export_defaults(checkpoint)
    training_data = training_data or fine_tuned.data_source
    upload_fields = metadata.upload_fields(maintainers, uploader, version, git_repo, training_data)
    publisher = read_publisher_files(documentation, covers)
    cite_entries = card.citations(model_type or "", cite)  # checks --cite; redone below with the model type
    training_fields = {**fine_tuned.card_fields, **card.training_details(training)}
    data_source = metadata.training_data_source(training_data)
    if data_source:
        training_fields["training_data_source"] = data_source
    state, model_state, model_type = read_source(Path(checkpoint), model_type)
    cite_entries = card.citations(model_type, cite)
    quiet_converter_logs()

    say("running micro-sam on the test image")
    model = load_checkpoint(checkpoint, model_type, device="cpu")
    apply_backend(model, "torch")  # the reference is micro-sam's own torch computation
    started = time.perf_counter()
    expected = micro_sam_maps(model, plane)[None]
    seconds = time.perf_counter() - started
    labels = segment_with_scores(plane, model, mode, tile_threshold=None, **(apg if mode == "apg" else ais)).labels
    n_objects = int(len(np.unique(labels[labels > 0])))
    measured = scores(labels, truth) if truth is not None else None
    conv_transpose = uses_conv_transpose(state["decoder_state"])
    config = micro_sam_config(model_type, mode, apg, ais, use_conv_transpose=conv_transpose)
    weights_state = package_weights(model_state, state["decoder_state"])
    model_card = card.bioimageio_config(
        model_type=model_type, parameter_count=int(sum(v.numel() for v in weights_state.values())),
        seconds=seconds, shape=plane.shape, scores=measured, training=training_fields)

    with tempfile.TemporaryDirectory(prefix="microsam-export-") as tmp_name:
        tmp = Path(tmp_name)
        files = {**write_weight_files(tmp, model_state, state["decoder_state"], model_type),
                 **write_test_files(tmp, plane, expected, built_in_image),
                 "cover": write_cover(tmp / "cover.png", plane, labels),
                 "documentation": tmp / "documentation.md",
                 "postprocessing_macro": write_macro(tmp, config)}
        image = as_tensor(plane)
        common = dict(name=name, description=description or default_description(model_type, mode),
                      channels=image.shape[1], files=files, config=config, authors=authors_descr,
                      upload_fields=upload_fields, license=license, tags=package_tags(tags),
                      architecture_kwargs={"model_type": model_type[:5], "use_conv_transpose": conv_transpose},
                      cite=cite_entries, covers=publisher["covers"], card=model_card)
        # the documentation reports what the checks below measure: a placeholder until then
        files["documentation"].write_text("(written after validation)\n")
        weights, skipped = convert_formats(describe(**common), weight_formats, tmp, say)
        diffs = check_formats(_with_weights(common, weights), weights, image, expected, skipped, say)
        files["documentation"].write_text(documentation_text(
            name=name, model_type=model_type, mode=mode, apg=apg, ais=ais, origin=origin, shape=plane.shape,
            n_objects=n_objects, diffs=diffs, skipped=skipped, channels=image.shape[1], scores=measured,
            built_in_image=built_in_image, training_data=training_data) + fine_tuned.documentation
            + publisher["documentation"])
        say("writing the package")
        _write_zip(_with_weights(common, weights), out)
    return ExportReport(path=out, weight_formats=list(weights), max_abs_diff=diffs, n_objects=n_objects,
                        skipped=skipped, warnings=standalone_warnings(list(weights)))


def _with_weights(common: dict, weights: dict):
    """The description holding the weight formats of ``weights`` (built anew, so that bioimageio.spec validates
    it as a whole)."""
    from bioimageio.spec.model import v0_5 as spec

    return describe(weights=spec.WeightsDescr(**weights), **common)


def _write_zip(descr, out: Path) -> None:
    """bioimageio.spec's packager writes ``descr`` and its files; atomically, so that ``out`` is whole or absent."""
    from bioimageio.spec import save_bioimageio_package

    from microsam_fiji.core.tiff_io import atomic_write

    atomic_write(out, lambda tmp_zip: save_bioimageio_package(descr, output_path=Path(tmp_zip)))


# --- source ----------------------------------------------------------------------------------------------------------
# The export's source: a micro-sam finetuning checkpoint with an instance decoder, read and checked.

def read_source(checkpoint: Path, model_type: str | None) -> tuple[dict, dict, str]:
    """Read the checkpoint to export and settle its model type.

    Args:
        checkpoint: A micro-sam finetuning checkpoint (.pt) with a ``decoder_state``.
        model_type: The SAM encoder type the user named, or None to infer it from the weights.

    Returns:
        (the whole checkpoint state, its SAM ``model_state``, the model type: ``model_type`` or the inferred one).

    Raises:
        UserError: the file is missing, has no instance decoder, or its weights are not ``model_type``'s.
    """
    from microsam_fiji.models.checkpoint import infer_model_type, read_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"checkpoint '{checkpoint}' not found: pass a micro-sam finetuning checkpoint (.pt)")
    state, model_state = read_checkpoint(checkpoint)
    if "decoder_state" not in state:
        raise UserError(f"checkpoint '{checkpoint.name}' has no instance decoder ('decoder_state'): APG needs a "
                        "model trained with one (micro-sam finetuning with the UNETR decoder)")
    inferred = infer_model_type(model_state)
    # a suffix (vit_b_lm) names a registry model, not another architecture: compare the encoder type alone
    if model_type is not None and model_type[:5] != inferred:
        raise UserError(f"--model-type {model_type} does not match the checkpoint, whose weights are {inferred}: "
                        f"use --model-type {inferred} or leave it out")
    return state, model_state, model_type or inferred


def uses_conv_transpose(decoder_state: Mapping) -> bool:
    """Whether the UNETR decoder of ``decoder_state`` upsamples with transposed convolutions (an argument of the
    packaged architecture), decided as ``micro_sam.instance_segmentation.get_unetr`` decides it."""
    return any(".block." in k for k in decoder_state if k.startswith("decoder.samplers"))
