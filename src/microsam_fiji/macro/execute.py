"""The ``micro-sam APG`` command, written once for every transport.

``run("micro-sam APG", options)`` reaches Python two ways, and both call :func:`execute` with the macro's option
string unparsed and the image they read:

* in process (:mod:`microsam_fiji.imagej.listener`): ImageJ runs inside Python (JPype); the image comes from
  the current ``ImagePlus``, the ROIs go into the ROI Manager through ImageJ's ``RoiDecoder``;
* the plugin's worker (:mod:`microsam_fiji.plugin.tasks`): the image comes as the plugin's raw pixels, the
  ROIs go back as a RoiSet.zip that the plugin decodes with the same ``RoiDecoder``;

and ``fiji-scripts/segment_with_cli.ijm`` hands the same string to ``microsam-fiji macro``, which calls it too.
So every transport parses one grammar (:mod:`.options`), checks in one order (options, outputs, parameter
values, then the model, then the image), traces the ROIs once and writes the outputs the same way; what differs
is only where the image comes from and where the ROIs go."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from roifile import ImagejRoi

from microsam_fiji.core.errors import UserError, one_line
from microsam_fiji.core.params import check_mode, resolve_params
from microsam_fiji.core.progress import report
from microsam_fiji.core.tiff_io import Calibration, LoadedImage, write_labels
from microsam_fiji.engines.segment import run
from microsam_fiji.macro.options import MacroOptions, check_outputs, for_mode, parse_options
from microsam_fiji.models.cache import ModelCache
from microsam_fiji.models.model import Model
from microsam_fiji.rois.encode import labels_to_rois
from microsam_fiji.rois.positions import stack_positions
from microsam_fiji.rois.roiset import write_rois

COMMAND = "micro-sam APG"


@dataclass
class CommandResult:
    """What one call of the command produced, before a transport shows it.

    ``rois``: one ``roifile.ImagejRoi`` per object and plane, named ``cell-0001``..., positioned in the stack;
    ``labels``: the label image (stack axes + YX, ``label_axes``); ``encoded``: image encoder runs (0 when the
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

    @property
    def count(self) -> int:
        """The number of ROIs (one per object and plane: ids are unique across a stack)."""
        return len(self.rois)


def check_options(options: str | MacroOptions | None, *, preview: bool = False) -> MacroOptions:
    """Parse and check everything that can be checked without a model or an image: bad input fails first.

    Args:
        options: the macro's option string (or options already parsed).
        preview: a dialog preview, which writes no outputs (their paths are not checked).

    Returns:
        The parsed options."""
    opts = options if isinstance(options, MacroOptions) else parse_options(options)
    if not preview:
        check_outputs(opts)
    resolve_params(check_mode(opts.mode or "apg"), opts.params, strict=False)
    return opts


def execute(options: str | MacroOptions | None, image: LoadedImage | Callable[[], LoadedImage],
            models: ModelCache, *, preview: bool = False, hyperstack: bool | None = None) -> CommandResult:
    """Run ``run("micro-sam APG", options)`` on ``image``: the one implementation of the command.

    Args:
        options: the macro's option string, unparsed (or :class:`MacroOptions`).
        image: the image, or a function that reads it (called after the options are checked and the model is
            loaded, so bad options never wait for a big image).
        models: where models are loaded once and kept (the transport's).
        preview: no outputs written (``rois=`` / ``labels=`` ignored).
        hyperstack: whether the image is an ImageJ hyperstack (ROI positions (c, z, t)); None: by its axes.

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
    encoded_before = model.cache.misses
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = run(loaded.data, model, mode, axes=loaded.axes, tile_shape=opts.tile_shape, halo=opts.halo,
                     engine=opts.engine, **for_mode(mode, opts.params))
    models.last_apg = (opts.model, opts.tile_shape, opts.halo)
    stack_axes = "".join(a for a in loaded.axes if a in "ZT")
    planes, positions = stack_positions(result.labels, stack_axes, hyperstack=hyperstack)
    rois = labels_to_rois(planes, result.scores, positions=positions)  # traced once, for every output
    label_axes = stack_axes + "YX"
    if not preview:
        if opts.rois:
            write_rois(opts.rois, rois)
        if opts.labels:
            write_labels(opts.labels, result.labels, loaded.calibration, axes=label_axes)
    return CommandResult(options=opts, model=model, labels=result.labels, scores=result.scores, rois=rois,
                         label_axes=label_axes, calibration=loaded.calibration,
                         encoded=model.cache.misses - encoded_before, seconds=round(time.perf_counter() - start, 3),
                         warnings=sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)}))


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
