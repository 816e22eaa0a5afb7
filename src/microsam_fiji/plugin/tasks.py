"""What the ImageJ plugin asks of its worker. Each request runs as one Appose task: the plugin sends the script
``from microsam_fiji.plugin.tasks import handle; handle(task, request)`` with the request as input.

Requests (``request["action"]``):

* ``hello``: version handshake (``plugin_version``: the jar's); outputs the worker's version, pid and the dialog's
  default parameters. A jar of another version is refused with the command that reinstalls it.
* ``segment``: ``options`` (the macro's option string, parsed by :mod:`microsam_fiji.bridge.options`, the one
  grammar), ``image`` (the plugin's raw pixels, :mod:`microsam_fiji.bridge.raw_image`), ``scratch`` (a folder the
  plugin removes afterwards), ``preview`` (no outputs written). Outputs: ``rois`` (a RoiSet.zip in scratch for
  ImageJ's RoiDecoder), ``count``, ``replace``, ``show`` (a label TIFF in scratch, or ""), ``encoded`` (image
  encoder runs: 0 when the embeddings were cached), ``seconds``.

Progress goes out as Appose updates; a cancel request stops the task at the next progress point (the loaded
model and cached embeddings stay). Failures are one line (:class:`~microsam_fiji.errors.UserError` text, or a
summary of an unexpected error whose traceback goes to the worker's log)."""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

from ..errors import UserError
from ..progress import Cancelled, reporting

_LOG = logging.getLogger(__name__)
_config: dict = {"default_model": None, "device": None}
_sessions: list = []


def configure(default_model: str | None = None, device: str | None = None) -> None:
    _config.update(default_model=default_model or None, device=device or None)
    _sessions.clear()


def session():
    """The worker's model cache (one per process, as in the in-process bridge)."""
    if not _sessions:
        from ..bridge.session import Session

        _sessions.append(Session(default_model=_config["default_model"], device=_config["device"]))
    return _sessions[0]


def version() -> str:
    from ..cli import package_version

    return package_version()


def handle(task, request: dict) -> None:
    """Run one request; exactly one of outputs / ``task.fail`` / ``task.cancel`` reports its end."""
    action = str(request.get("action", ""))

    def report(stage: str, current, total) -> None:
        if task.cancel_requested:
            raise Cancelled()
        task.update(stage, current, total)

    try:
        if action not in _ACTIONS:
            raise UserError(f"unknown request '{action}': the plugin and the worker differ; reinstall the plugin")
        with reporting(report):
            task.outputs.update(_ACTIONS[action](request))
    except Cancelled:
        task.cancel()
    except UserError as err:
        task.fail(str(err))
    except Exception as err:  # noqa: BLE001 - one line to ImageJ, the traceback to the log
        _LOG.exception("micro-sam APG: %s failed", action)
        print(f"micro-sam APG: {action} failed", file=sys.stderr)
        from ..bridge.macro_command import error_message

        task.fail(error_message(err).replace("see the Python console", "see the worker log"))


def hello(request: dict) -> dict:
    from ..params import ALIASES, default_params

    ours = version()
    theirs = str(request.get("plugin_version", ""))
    if theirs != ours:
        folder = Path(str(request.get("plugin_folder", "<Fiji.app>/plugins")))
        cli = Path(sys.executable).with_name("microsam-fiji")
        raise UserError(f"the micro-sam APG plugin ({theirs or 'unknown version'}) and its Python worker ({ours}) "
                        f"differ: run '{cli} install-fiji {folder.parent}' again")
    apg = default_params("apg")
    return {"version": ours, "pid": os.getpid(), "python": sys.executable,
            "defaults": {short: apg[name] for short, name in ALIASES.items() if name in apg}}


def segment(request: dict) -> dict:
    from ..bridge.api import stack_positions
    from ..bridge.options import check_outputs, for_mode, parse_options
    from ..bridge.raw_image import read_raw_image
    from ..bridge.rois import write_roiset
    from ..params import check_mode, resolve_params
    from ..progress import report
    from ..segment import run
    from ..tiff_io import write_labels

    start = time.perf_counter()
    opts = parse_options(request.get("options"))
    preview = bool(request.get("preview"))
    if not preview:
        check_outputs(opts)
    # bad values fail before a model is loaded
    resolve_params(check_mode(opts.mode or "apg"), opts.params, strict=False)
    work = session()
    if work.model_key(opts.model or work.default_model) not in work.models:
        report("loading the model")
    model = work.model(opts.model)
    mode = check_mode(opts.mode or model.default_mode)
    meta = dict(request.get("image") or {})
    loaded = read_raw_image(meta)
    encoded_before = model.cache.misses
    with work.lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = run(loaded.data, model, mode, axes=loaded.axes, tile_shape=opts.tile_shape, halo=opts.halo,
                     engine=opts.engine, **for_mode(mode, opts.params))
    stack_axes = "".join(a for a in loaded.axes if a in "ZT")
    planes, positions = stack_positions(result.labels, stack_axes, hyperstack=bool(meta.get("hyperstack")))
    scratch = Path(str(request.get("scratch") or ""))
    if not scratch.is_dir():
        raise UserError(f"the plugin's scratch folder '{scratch}' is missing: run again")
    rois = write_roiset(scratch / "rois.zip", planes, scores=result.scores, positions=positions)
    shown = ""
    if not preview:
        label_axes = stack_axes + "YX"
        if opts.rois:
            write_roiset(opts.rois, planes, scores=result.scores, positions=positions)
        if opts.labels:
            write_labels(opts.labels, result.labels, loaded.calibration, axes=label_axes)
        if opts.show:
            shown = str(write_labels(scratch / "labels.tif", result.labels, loaded.calibration, axes=label_axes))
    return {"rois": str(rois), "count": _count(result.labels), "replace": opts.replace,
            "show": shown, "encoded": model.cache.misses - encoded_before, "model": model.source,
            "seconds": round(time.perf_counter() - start, 3),
            # what the user should know about the result (an image rescaled, ...): the plugin logs these lines
            "warnings": sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})}


def _count(labels) -> int:
    import numpy as np

    return int(np.count_nonzero(np.unique(labels)))


_ACTIONS = {"hello": hello, "segment": segment}
