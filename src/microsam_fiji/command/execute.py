"""The ``micro-sam APG`` command, written once for every transport.

``run("micro-sam APG", options)`` reaches Python two ways, and both call :func:`execute` with the macro's option
string unparsed and the image they read:

* in process (:mod:`microsam_fiji.imagej.listener`): ImageJ runs inside Python (JPype); the image comes from
  the current ``ImagePlus``, the ROIs go into the ROI Manager through ImageJ's ``RoiDecoder``;
* the plugin's worker (:mod:`microsam_fiji.worker.tasks`): the image comes as the plugin's raw pixels, the
  ROIs go back as a RoiSet.zip that the plugin decodes with the same ``RoiDecoder``;

and ``fiji-scripts/segment_with_cli.ijm`` hands the same string to ``microsam-fiji macro``, which calls it too.
So every transport parses one grammar (:mod:`.options`), checks in one order (options, outputs, parameter
values, then the model, then the image), traces the ROIs once and writes the outputs the same way; what differs
is only where the image comes from and where the ROIs go.

Two things of the image's state come with it, as ImageJ's own commands honour them:

* the **current plane** (``current_plane``): a stack is segmented whole only with the ``stack`` flag (what
  ImageJ's filters record after "Process all N slices?"); without it, and always in a preview, only the current
  plane is segmented. Its ROIs carry that plane's stack position and the label image is that one plane;
* the **selection** (``selection``): an area selection (rectangle, oval, polygon, freehand, traced, composite;
  point and line selections are ignored) restricts the command to it: the selection's bounding box is cropped
  and segmented, each object keeps only its pixels inside the selection, and objects left smaller than
  ``min_size`` there are dropped (so an object cut by the selection's edge stays as its inside part; the ids are
  numbered again from 1). ROIs and labels come back in full-image coordinates (labels zero outside)."""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from roifile import ROI_TYPE, ImagejRoi

from microsam_fiji.command.options import (
    MacroOptions,
    check_outputs,
    for_mode,
    parse_options,
)
from microsam_fiji.core.errors import UserError, one_line
from microsam_fiji.core.images import ChannelWarning, guess_axes, intensity_image
from microsam_fiji.core.params import check_mode, resolve_params
from microsam_fiji.core.progress import report
from microsam_fiji.core.tiff_io import Calibration, LoadedImage, write_labels
from microsam_fiji.engines.measurements import ObjectTable, measure_labels
from microsam_fiji.engines.segment import segment_with_scores
from microsam_fiji.models.cache import ModelCache
from microsam_fiji.models.model import Model
from microsam_fiji.rois.encode import labels_to_rois
from microsam_fiji.rois.naming import for_manager
from microsam_fiji.rois.positions import stack_positions
from microsam_fiji.rois.roiset import write_rois

COMMAND = "micro-sam APG"
OBJECTS_TABLE = "micro-sam objects"  # the ResultsTable of the objects' measurements: a macro selects it by this title


@dataclass
class CommandResult:
    """What one call of the command produced, before a transport shows it.

    ``rois``: one ``roifile.ImagejRoi`` per object and plane, named ``cell-0001``..., positioned in the stack (a 3D
    object: one ROI per slice, all named alike); ``labels``: the label image (stack axes + YX, ``label_axes``);
    ``table``: the per-object measurements (None for a preview); ``encoded``: image encoder runs (0 when the
    embeddings were cached); ``warnings``: what the user should read (an image rescaled, ...), one line each."""

    options: MacroOptions
    model: Model
    labels: np.ndarray
    scores: dict[int, float]
    rois: list[ImagejRoi]
    label_axes: str
    calibration: Calibration
    encoded: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    table: ObjectTable | None = None

    @property
    def count(self) -> int:
        """The number of objects (a 3D object counts once, however many slices it spans)."""
        ids = np.unique(self.labels)
        return int((ids > 0).sum())

    def for_manager(self, existing: list[str]) -> tuple[list[ImagejRoi], ObjectTable | None]:
        """The ROIs named for a ROI Manager that holds ``existing`` (:func:`~microsam_fiji.rois.naming.
        for_manager`), and the table with the same names: what both transports add.

        Args:
            existing: the names the ROI Manager holds.

        Returns:
            The ROIs and the table, renamed alike."""
        rois = for_manager(self.rois, existing, self.options.replace)
        if self.table is None or "name" not in self.table.columns:
            return rois, self.table
        renamed = {old.name: new.name for old, new in zip(self.rois, rois)}
        columns = dict(self.table.columns)
        columns["name"] = [renamed.get(name, name) for name in columns["name"]]
        return rois, dataclasses.replace(self.table, columns=columns)


def check_options(options: str | MacroOptions | None, *, preview: bool = False) -> MacroOptions:
    """Parse and check everything that can be checked without a model or an image: bad input fails first.

    Args:
        options: the macro's option string (or options already parsed).
        preview: a dialog preview, which writes no outputs (their paths are not checked).

    Returns:
        The parsed options."""
    from microsam_fiji.engines.volume import check_merge_options

    opts = options if isinstance(options, MacroOptions) else parse_options(options)
    if not preview:
        check_outputs(opts)
    resolve_params(check_mode(opts.mode or "apg"), opts.params, strict=False)
    check_merge_options(opts.volume, opts.gap_closing, opts.min_z_extent)
    return opts


def execute(options: str | MacroOptions | None, image: LoadedImage | Callable[[], LoadedImage],
            models: ModelCache, *, preview: bool = False, hyperstack: bool | None = None,
            selection: ImagejRoi | np.ndarray | None = None, current_plane: int | None = None) -> CommandResult:
    """Run ``run("micro-sam APG", options)`` on ``image``: the one implementation of the command.

    Args:
        options: the macro's option string, unparsed (or :class:`MacroOptions`).
        image: the image, or a function that reads it (called after the options are checked and the model is
            loaded, so bad options never wait for a big image).
        models: where models are loaded once and kept (the transport's).
        preview: no outputs written (``rois=`` / ``labels=`` ignored).
        hyperstack: whether the image is an ImageJ hyperstack (ROI positions (c, z, t)); None: by its axes.
        selection: the image's selection: a ``roifile.ImagejRoi`` (area types restrict the command to it, point
            and line selections are ignored) or a boolean (Y, X) mask; None: the whole image.
        current_plane: the image's current plane, 0-based in ImageJ's stack order (channel fastest, then slice,
            then frame: ``getCurrentSlice() - 1``); segmented alone unless the options say ``stack`` or ``3d`` (a
            preview: always). None: the first plane. Its channel is the one segmented where the options name none.

    Returns:
        The :class:`CommandResult`; ``rois=[...]`` and ``labels=[...]`` are already written (atomically).

    Raises:
        UserError: one line naming the fix; nothing was written."""
    start = time.perf_counter()
    opts = check_options(options, preview=preview)
    if not models.is_loaded(opts.model):
        report("loading the model")
    model = models.model(opts.model)
    mode = check_mode(opts.mode or model.default_mode)
    loaded = image() if callable(image) else image
    data, axes, plane = loaded.data, loaded.axes or guess_axes(loaded.data.shape), None
    n_channels = int(data.shape[axes.index("C")]) if "C" in axes else 1
    channel = opts.channel
    if channel is None and n_channels > 1:  # the image's current channel, as ImageJ's own commands take it
        channel = int(current_plane or 0) % n_channels + 1
    volume = opts.volume and not preview  # a preview shows the current plane, in 2D
    if not (opts.stack or volume) or preview:  # ImageJ's convention: a stack whole only when asked
        data, axes, plane = one_plane(data, axes, current_plane or 0, hyperstack)
    full = data
    mask = selection_mask(selection, data.shape[axes.index("Y")], data.shape[axes.index("X")])
    box = _bounds(mask) if mask is not None else None
    notes = [f"segmented channel {channel} of {n_channels}"] if n_channels > 1 else []
    if mask is not None and box is not None:
        data = _crop(data, axes, box)
        top, bottom, left, right = box
        # a leftover selection (roiManager("select", i) leaves one) silently restricting a call is a trap: say it
        notes.append(f"restricted to the selection: {right - left}x{bottom - top} pixels at x={left}, y={top} "
                     f"({int(mask.sum())} pixels inside); Edit > Selection > Select None segments the whole image")
    encoded_before = model.cache.misses
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = segment_with_scores(data, model, mode, axes=axes, tile_shape=opts.tile_shape, halo=opts.halo,
                                     engine=opts.engine, volume=volume, gap_closing=opts.gap_closing,
                                     min_z_extent=opts.min_z_extent, channel=channel if n_channels > 1 else None,
                                     **for_mode(mode, opts.params))
    models.last_apg = (opts.model, opts.tile_shape, opts.halo)
    labels, scores = result.labels, result.scores
    if mask is not None and box is not None:
        min_size = resolve_params(mode, for_mode(mode, opts.params), strict=False).get("min_size", 0)
        labels, scores = inside_selection(labels, scores, mask, box, int(min_size or 0))
    stack_axes = "".join(a for a in axes if a in "ZT")
    if plane is not None:  # one plane of a stack: every ROI on that plane
        rois = labels_to_rois(labels, scores, positions=plane, calibration=loaded.calibration)
    else:  # traced once, for every output; a 3D object is one name on every slice
        planes, positions = stack_positions(labels, stack_axes, hyperstack=hyperstack)
        rois = labels_to_rois(planes, scores, positions=positions, calibration=loaded.calibration,
                              slice_suffix=not volume)
    label_axes = stack_axes + "YX"
    table = None
    if not preview:
        intensity = intensity_image(full, axes, channel if n_channels > 1 else None)
        table = measure_labels(labels, label_axes, intensity, loaded.calibration, scores, volume=volume)
        if opts.rois:
            write_rois(opts.rois, rois)
        if opts.labels:
            write_labels(opts.labels, labels, loaded.calibration, axes=label_axes)
    caught_lines = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)
                           and not issubclass(w.category, ChannelWarning)})  # the channel: said in notes
    return CommandResult(options=opts, model=model, labels=labels, scores=scores, rois=rois,
                         label_axes=label_axes, calibration=loaded.calibration,
                         encoded=model.cache.misses - encoded_before, seconds=round(time.perf_counter() - start, 3),
                         warnings=notes + caught_lines, table=table)


def one_plane(data: np.ndarray, axes: str, index: int, hyperstack: bool | None = None
              ) -> tuple[np.ndarray, str, int | tuple[int, int, int] | None]:
    """The plane ``index`` (0-based in ImageJ's stack order: channel fastest, then slice, then frame) of a stack.

    Args:
        data: the image.
        axes: its ImageJ letters.
        index: ``ImagePlus.getCurrentSlice() - 1`` (out of range: clipped).
        hyperstack: whether ImageJ shows the image as a hyperstack (the ROI position is then (c, z, t)).

    Returns:
        The plane (its channels kept), its axes and its ROI position; an image of one plane comes back as it is,
        with position None."""
    sizes = {a: int(data.shape[axes.index(a)]) for a in "CZT" if a in axes}
    n_c, n_z, n_t = sizes.get("C", 1), sizes.get("Z", 1), sizes.get("T", 1)
    if n_z * n_t <= 1:
        return data, axes, None
    index = min(max(int(index), 0), n_c * n_z * n_t - 1)
    take = {"Z": (index // n_c) % n_z, "T": index // (n_c * n_z)}
    stack_axes = "".join(a for a in axes if a in "ZT")
    stack_shape = tuple(sizes[a] for a in stack_axes)
    _, positions = stack_positions(np.zeros(stack_shape + (1, 1), np.uint8), stack_axes, hyperstack=hyperstack)
    flat = int(np.ravel_multi_index(tuple(take[a] for a in stack_axes), stack_shape))
    plane = data[tuple(take[a] if a in take else slice(None) for a in axes)]
    return plane, "".join(a for a in axes if a not in take), positions[flat]


_AREA_SELECTIONS = (ROI_TYPE.RECT, ROI_TYPE.OVAL, ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED)


def selection_mask(selection: ImagejRoi | np.ndarray | None, height: int, width: int) -> np.ndarray | None:
    """The pixels of ``selection`` (as ImageJ's ``Roi.getMask()`` fills it) in a ``height`` x ``width`` image.

    Args:
        selection: an ImageJ selection, a boolean (Y, X) mask, or None.
        height: the image's height.
        width: the image's width.

    Returns:
        A boolean mask, or None for no selection and for point and line selections (no region).

    Raises:
        UserError: the selection covers no pixel of the image, or the mask has another size."""
    if selection is None:
        return None
    if isinstance(selection, ImagejRoi):
        if not (selection.composite or selection.roitype in _AREA_SELECTIONS):
            return None  # points, lines: not a region to segment in
        from microsam_fiji.rois.decode import RoisOutsideWarning, rois_to_labels

        # the selection is the same on every plane: its own stack position does not matter
        flat = dataclasses.replace(selection, position=0, c_position=0, z_position=0, t_position=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RoisOutsideWarning)  # a selection reaching beyond the image: cut
            mask = rois_to_labels([flat], (height, width)) > 0
    else:
        mask = np.asarray(selection, dtype=bool)
        if mask.shape != (height, width):
            raise UserError(f"the selection mask is {mask.shape[-2:]} but the image is {height}x{width}: give a "
                            "mask of the image's size")
    if not mask.any():
        raise UserError("the selection covers no pixel of the image: select a region inside the image, or remove "
                        "the selection (Edit > Selection > Select None)")
    return mask


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """top, bottom, left, right (bottom and right exclusive) of the True pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _crop(data: np.ndarray, axes: str, box: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = box
    cut = {"Y": slice(top, bottom), "X": slice(left, right)}
    return np.ascontiguousarray(data[tuple(cut.get(a, slice(None)) for a in axes)])


def inside_selection(labels: np.ndarray, scores: dict[int, float], mask: np.ndarray,
                     box: tuple[int, int, int, int], min_size: int = 0) -> tuple[np.ndarray, dict[int, float]]:
    """The labels of the cropped ``box`` back in the full image: each object keeps its pixels inside ``mask``;
    objects left with fewer than ``min_size`` pixels (or none) there are dropped; ids numbered again from 1.

    Args:
        labels: the labels of the crop ((..., h, w): one or more planes).
        scores: id -> score of ``labels``' objects.
        mask: the selection in the full image (H, W).
        box: where the crop lies (top, bottom, left, right).
        min_size: the smallest object kept (pixels inside the selection, per object).

    Returns:
        The full-size labels (zero outside the selection) and the scores under the new ids."""
    top, bottom, left, right = box
    kept = np.where(mask[top:bottom, left:right], labels, 0)
    ids, counts = np.unique(kept, return_counts=True)
    keep = ids[(ids > 0) & (counts >= max(min_size, 1))]
    lut = np.zeros(int(kept.max()) + 1 if kept.size else 1, dtype=labels.dtype)
    lut[keep] = np.arange(1, keep.size + 1, dtype=labels.dtype)
    full = np.zeros(labels.shape[:-2] + mask.shape, dtype=labels.dtype)
    full[..., top:bottom, left:right] = lut[kept]
    new_scores = {int(lut[old]): score for old, score in scores.items() if 0 < old < lut.size and lut[old]}
    return full, new_scores


def error_message(err: BaseException, log: str = "the Python console") -> str:
    """One readable line for any failure inside the command.

    Args:
        err: what was raised.
        log: where the transport wrote the traceback of an unexpected error (named in the line).

    Returns:
        The line the macro's abort (or the CLI) shows."""
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, OSError) and getattr(err, "filename", None):
        return f"could not write '{err.filename}' ({err.strerror or type(err).__name__}): choose another place"
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, MemoryError) or "out of memory" in text.lower() or "OutOfMemoryError" in text:
        return ("out of memory while segmenting: close other images, segment a smaller image or region, or use "
                "smaller tiles (tile=[512,512])")
    return f"segmentation failed ({one_line(err)}); see {log}"
