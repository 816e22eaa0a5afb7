"""The ``micro-sam Prompt`` command: objects from ImageJ selections (points, boxes, areas) with μSAM's prompt
functions, on the embeddings ``micro-sam APG`` cached for the same image; one implementation for every
transport, beside :mod:`.execute` and sharing its checks and outputs.

``run("micro-sam Prompt", "prompts=selection|roi-manager model=[…] replace rois=[…] labels=[…] show")``: the
transport reads the image and the prompt ROIs (:mod:`.prompt_rois`), this module segments and writes; the new
objects are named ``cell-<id>`` with ids after the ones already in the ROI Manager (``first_id``)."""
from __future__ import annotations

import time
import warnings
from typing import Callable

import numpy as np
from roifile import ImagejRoi

from microsam_fiji.command.execute import CommandResult
from microsam_fiji.command.options import MacroOptions, check_outputs, parse_options
from microsam_fiji.command.prompt_rois import prompts_from_rois
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.progress import report
from microsam_fiji.core.tiff_io import LoadedImage, write_labels
from microsam_fiji.engines.measurements import measure_labels
from microsam_fiji.engines.prompted import segment_from_prompts
from microsam_fiji.models.cache import ModelCache
from microsam_fiji.rois.encode import labels_to_rois
from microsam_fiji.rois.naming import is_our_object, next_id
from microsam_fiji.rois.positions import stack_positions
from microsam_fiji.rois.roiset import write_rois

COMMAND = "micro-sam Prompt"


def check_prompt_options(options: str | MacroOptions | None) -> MacroOptions:
    """Parse and check what needs no model or image (bad input fails first).

    Args:
        options: the macro's option string (or options already parsed).

    Returns:
        The parsed options."""
    opts = options if isinstance(options, MacroOptions) else parse_options(options, command="prompt")
    check_outputs(opts)
    return opts


def prompt_rois(rois: list[ImagejRoi], source: str) -> list[ImagejRoi]:
    """The ROIs that prompt: the selection as it is, or the ROI Manager's ROIs that are not our objects."""
    if source == "roi-manager":
        if not rois:
            raise UserError("the ROI Manager is empty: add point, rectangle or area ROIs to it as prompts")
        rois = [roi for roi in rois if not is_our_object(roi)]
        if not rois:
            raise UserError("the ROI Manager holds no prompts (only objects of micro-sam): add point, rectangle or "
                            "area ROIs to it")
    elif not rois:
        raise UserError("no selection: make a point, rectangle or area selection on the object first (or use "
                        "prompts=roi-manager)")
    return rois


def execute_prompt(options: str | MacroOptions | None, image: LoadedImage | Callable[[], LoadedImage],
                   selection: list[ImagejRoi], manager: list[ImagejRoi], models: ModelCache, *,
                   current_plane: int = 0, hyperstack: bool | None = None) -> CommandResult:
    """Run ``run("micro-sam Prompt", options)``: the objects that ``rois`` prompt for.

    Args:
        options: the macro's option string, unparsed (or :class:`MacroOptions`).
        image: the image, or a function that reads it.
        selection: the current selection (a composite selection as one ROI; empty: none).
        manager: the ROI Manager's ROIs: the prompts with ``prompts=roi-manager``; the new objects' ids follow
            the ids of the objects already there, so names stay unique.
        models: the transport's loaded models (APG's embeddings for the image are reused from them).
        current_plane: the current stack plane (0-based): where a ROI without a position prompts.
        hyperstack: whether the image is an ImageJ hyperstack (ROI positions (c, z, t)).

    Returns:
        The :class:`~microsam_fiji.command.execute.CommandResult` (``rois=`` / ``labels=`` written).

    Raises:
        UserError: one line naming the fix; nothing was written."""
    start = time.perf_counter()
    opts = check_prompt_options(options)
    source = opts.prompts or "selection"
    given = prompt_rois(list(manager if source == "roi-manager" else selection), source)
    first_id = next_id(list(manager))
    # no model= / tile=: those of the last APG call, whose result the prompt corrects (its embeddings are cached)
    last_model, last_tile, last_halo = models.last_apg
    model_source = opts.model or last_model
    tile_shape, halo = (opts.tile_shape, opts.halo) if opts.tile_shape else (last_tile, opts.halo or last_halo)
    if not models.is_loaded(model_source):
        report("loading the model")
    model = models.model(model_source)
    loaded = image() if callable(image) else image
    from microsam_fiji.core.images import guess_axes, intensity_image, to_planes

    data, axes = loaded.data, loaded.axes or guess_axes(loaded.data.shape)
    notes: list[str] = []
    if "C" in axes:  # the channel APG segmented (by default the current one), so that its embeddings are reused
        n_channels = int(data.shape[axes.index("C")])
        channel = opts.channel or int(current_plane) % n_channels + 1
        current_plane = int(current_plane) // n_channels  # the plane in the stack without channels
        if not 1 <= channel <= n_channels:
            raise UserError(f"channel {channel} is out of range: the image has {n_channels} channel"
                            f"{'s' if n_channels > 1 else ''} (1-based, as in ImageJ)")
        data = np.take(data, channel - 1, axis=axes.index("C"))
        axes = axes.replace("C", "")
        if n_channels > 1:
            notes.append(f"prompted on channel {channel} of {n_channels}")
    planes = to_planes(data, axes)
    stack_axes = "".join(a for a in axes if a in "ZT")
    objects = prompts_from_rois(given, planes.label_shape, stack_axes, current_plane)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = segment_from_prompts(data, model, prompts=objects, axes=axes, tile_shape=tile_shape,
                                      halo=halo, propagate_objects=opts.propagate)
    labels = np.where(result.labels > 0, result.labels + np.uint32(first_id - 1), 0).astype(np.uint32)
    scores = {k + first_id - 1: v for k, v in result.scores.items()}
    planes_out, positions = stack_positions(labels, stack_axes, hyperstack=hyperstack)
    # a propagated object is one object through the stack: one name on every slice, told apart by position
    new_rois = labels_to_rois(planes_out, scores, positions=positions, slice_suffix=not opts.propagate,
                              calibration=loaded.calibration)
    label_axes = stack_axes + "YX"
    notes += _propagation_notes(labels, objects, first_id) if opts.propagate else []
    # the new objects' rows, for the objects table (a propagated object is measured in 3D)
    table = measure_labels(labels, label_axes, intensity_image(data, axes), loaded.calibration, scores,
                           volume=opts.propagate and "Z" in stack_axes)
    if opts.rois:
        write_rois(opts.rois, new_rois)
    if opts.labels:
        write_labels(opts.labels, labels, loaded.calibration, axes=label_axes)
    return CommandResult(options=opts, model=model, labels=labels, scores=scores, rois=new_rois,
                         label_axes=label_axes, calibration=loaded.calibration, encoded=result.encoded,
                         seconds=round(time.perf_counter() - start, 3),
                         warnings=sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
                         + notes, table=table)


def _propagation_notes(labels: np.ndarray, objects: list, first_id: int) -> list[str]:
    """How far each propagated object went, and why it stopped there (one line each, for the Log): micro-sam's
    ``segment_mask_in_volume`` goes on slice by slice while a slice's mask overlaps the previous one by IoU
    ``PROPAGATION["iou_threshold"]`` or more."""
    from microsam_fiji.engines.prompted import PROPAGATION

    stack = labels.reshape((-1,) + labels.shape[-2:])
    n = len(stack)
    notes = []
    for index, obj in enumerate(objects):
        label = first_id + index
        present = np.flatnonzero((stack == label).any(axis=(1, 2)))
        name = f"cell-{label:04d}"
        if present.size == 0:
            notes.append(f"{name}: no object on slice {obj.plane + 1}, nothing to propagate")
            continue
        low, high = int(present[0]) + 1, int(present[-1]) + 1
        ends = [f"slice {z} (the stack's end)" if z in (1, n) else f"slice {z}" for z in sorted({low, high})]
        why = (f"it stops where the next slice's mask is empty or overlaps the previous one by less than IoU "
               f"{PROPAGATION['iou_threshold']}")
        if low == high:
            notes.append(f"{name}: stayed on slice {low} of {n}: the neighbouring slices' masks did not continue it "
                         f"({why}); prompt it on another slice, or check the stack's order")
        else:
            notes.append(f"{name}: propagated from slice {obj.plane + 1} through slices {low}-{high} of {n} "
                         f"(ends: {' and '.join(ends)}; {why})")
    return notes
