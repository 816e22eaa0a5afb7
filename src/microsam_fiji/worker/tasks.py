"""What the ImageJ plugin asks of its worker. Each request runs as one Appose task: the plugin sends the script
``from microsam_fiji.worker.tasks import handle; handle(task, request)`` with the request as input.

Requests (``request["action"]``):

* ``hello``: version handshake (``plugin_version``: the jar's); outputs the worker's version, pid, and each
  command's dialog fields and Help rows from the one table of options (:mod:`microsam_fiji.command.options`).
  A jar of another version is refused with the command that reinstalls it.
* ``segment``: ``options`` (the macro's option string, parsed by :mod:`microsam_fiji.command.options`, the one
  grammar, run by :func:`microsam_fiji.command.execute.execute`), ``image`` (the plugin's raw pixels,
  :mod:`microsam_fiji.worker.raw_image`), ``scratch`` (a folder the
  plugin removes afterwards), ``preview`` (no outputs written), ``selection`` (a .roi file of the image's area
  selection, or "": the command segments inside it), ``current_plane`` (0-based stack index: the plane segmented
  without ``stack``), ``manager_names`` (the names the ROI Manager holds). Outputs: ``rois`` (a RoiSet.zip in
  scratch for ImageJ's RoiDecoder, named for the ROI Manager: the plugin adds them as they are), ``count``,
  ``replace``, ``replaces``, ``show`` (a label TIFF in scratch, or ""), ``table`` (the objects' measurements as
  CSV in scratch, for the ResultsTable ``table_title``; "" for a preview), ``count`` (objects: a 3D object once),
  ``encoded`` (image encoder runs: 0 when the embeddings were cached), ``seconds``, ``warnings`` (lines for the
  Log).
* ``prompt``: ``micro-sam Prompt`` (see :func:`prompt`): the selection and the ROI Manager's ROIs as prompts on
  the same image; outputs as for ``segment``.
* ``train``: ``micro-sam Train`` (see :func:`train`): fine-tuning on a folder or on the open images and their ROIs.

Progress goes out as Appose updates; a cancel request stops the task at the next progress point (the loaded
model and cached embeddings stay). While a task runs, a heartbeat (an update without message or counts) goes out
every :data:`HEARTBEAT_S` seconds, so the plugin can tell a worker that is busy between progress points (it waits
for the cancel's answer) from one that is hung (no message at all for long: it is stopped). Failures are one
line (:class:`~microsam_fiji.core.errors.UserError` text, or a summary of an unexpected error whose traceback goes
to the worker's log)."""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.progress import Cancelled, reporting
from microsam_fiji.core.version import package_version

_LOG = logging.getLogger(__name__)
_config: dict = {"default_model": None, "device": None}
_caches: list = []
HEARTBEAT_S = 2.0


def configure(default_model: str | None = None, device: str | None = None) -> None:
    """The default model and device the plugin's settings name (``plugins/micro-sam-fiji.properties``)."""
    _config.update(default_model=default_model or None, device=device or None)
    _caches.clear()


def models():
    """The worker's model cache (one per process, as in the in-process session)."""
    if not _caches:
        from microsam_fiji.models.cache import ModelCache

        _caches.append(ModelCache(default_model=_config["default_model"], device=_config["device"]))
    return _caches[0]


def handle(task, request: dict) -> None:
    """Run one request; exactly one of outputs / ``task.fail`` / ``task.cancel`` reports its end."""
    action = str(request.get("action", ""))

    def report(stage: str, current, total) -> None:
        if task.cancel_requested:
            raise Cancelled()
        task.update(stage, current, total)

    done = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(task, done), name="micro-sam heartbeat", daemon=True)
    beat.start()
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
        command = {"prompt": "micro-sam Prompt", "train": "micro-sam Train"}.get(action, "micro-sam APG")
        _LOG.exception("%s: %s failed", command, action)
        print(f"{command}: {action} failed", file=sys.stderr)
        from microsam_fiji.command.execute import error_message

        task.fail(error_message(err, log="the worker log"))
    finally:
        done.set()  # a late beat after the task's end is dropped by the plugin (the task is closed)
        beat.join()


def _heartbeat(task, done: threading.Event) -> None:
    """Sends an empty update every HEARTBEAT_S seconds until ``done``: the plugin's sign that the worker lives.

    Args:
        task: the Appose task.
        done: set when the task has ended.
    """
    while not done.wait(HEARTBEAT_S):
        try:
            task.update()
        except Exception:  # noqa: BLE001 - stdout gone: the worker is ending anyway
            return


def hello(request: dict) -> dict:
    from microsam_fiji.command.options import COMMANDS, dialog_fields, help_rows

    ours = package_version()
    theirs = str(request.get("plugin_version", ""))
    if theirs != ours:
        folder = Path(str(request.get("plugin_folder", "<Fiji.app>/plugins")))
        cli = Path(sys.executable).with_name("microsam-fiji")
        raise UserError(f"the micro-sam APG plugin ({theirs or 'unknown version'}) and its Python worker ({ours}) "
                        f"differ: run '{cli} install-fiji {folder.parent}' again")
    # the dialogs and the Help page are made from the one table of options: the Java side holds none of it
    return {"version": ours, "pid": os.getpid(), "python": sys.executable,
            "dialog": {command: dialog_fields(command) for command in COMMANDS},
            "help": {command: help_rows(command) for command in COMMANDS}}


def _scratch(request: dict) -> Path:
    """The folder the plugin made for this call (and removes afterwards)."""
    scratch = Path(str(request.get("scratch") or ""))
    if not scratch.is_dir():
        raise UserError(f"the plugin's scratch folder '{scratch}' is missing: run again")
    return scratch


def _reply(result, request: dict, scratch: Path, show: bool) -> dict:
    """What either command sends back: the ROIs as a RoiSet.zip for ImageJ's RoiDecoder, named for the plugin's
    ROI Manager (``manager_names``: the names it holds) and, where the Prompt Tool refines an object
    (``replacing``: its name), which ROI the result replaces; the label image to open when ``show``; the counts
    the plugin's ``lastResult`` reports. The plugin adds what it gets: the names are decided here."""
    from microsam_fiji.command.execute import OBJECTS_TABLE
    from microsam_fiji.core.tiff_io import write_labels
    from microsam_fiji.rois.roiset import write_rois

    existing = [str(n) for n in request.get("manager_names") or []]
    replacing = str(request.get("replacing") or "")
    replaces = replacing if (replacing in existing and len(result.rois) == 1 and not result.options.replace) else ""
    named, table = (result.rois, result.table) if replaces else result.for_manager(existing)
    rois = write_rois(scratch / "rois.zip", named)
    # the objects' measurements, for ImageJ's ResultsTable "micro-sam objects" (the plugin reads the CSV)
    table_path = "" if table is None else str(table.write_csv(scratch / "objects.csv"))
    shown = ""
    if show:
        shown = str(write_labels(scratch / "labels.tif", result.labels, result.calibration, axes=result.label_axes))
    return {"rois": str(rois), "count": result.count, "replace": result.options.replace, "replaces": replaces,
            "show": shown, "table": table_path, "table_title": OBJECTS_TABLE,
            "encoded": result.encoded, "model_loads": models().model_loads, "model": result.model.source,
            "seconds": result.seconds,
            # what the user should know about the result (an image rescaled, ...): the plugin logs these lines
            "warnings": result.warnings}


def segment(request: dict) -> dict:
    """The command on the plugin's image (:func:`~microsam_fiji.command.execute.execute`); the ROIs go back as a
    RoiSet.zip in the plugin's scratch folder, for ImageJ's RoiDecoder."""
    from microsam_fiji.command.execute import execute
    from microsam_fiji.rois.roiset import read_roiset
    from microsam_fiji.worker.raw_image import read_raw_image

    scratch = _scratch(request)
    meta = dict(request.get("image") or {})
    preview = bool(request.get("preview"))
    selection = str(request.get("selection") or "")
    result = execute(request.get("options"), lambda: read_raw_image(meta), models(), preview=preview,
                     hyperstack=bool(meta.get("hyperstack")),
                     selection=read_roiset(selection)[0] if selection else None,
                     current_plane=int(request.get("current_plane") or 0))
    return _reply(result, request, scratch, show=result.options.show and not preview)


def prompt(request: dict) -> dict:
    """``micro-sam Prompt`` on the plugin's image (:func:`~microsam_fiji.command.prompt.execute_prompt`):
    ``selection`` (a .roi file of the current selection, or a RoiSet.zip of several ROIs — the prompt tool's
    rectangle with its points —, or ""), ``manager`` (a RoiSet.zip of the ROI Manager, or ""), ``current_plane``
    (0-based); outputs as for ``segment``."""
    from microsam_fiji.command.prompt import execute_prompt
    from microsam_fiji.rois.roiset import read_roiset
    from microsam_fiji.worker.raw_image import read_raw_image

    scratch = _scratch(request)
    meta = dict(request.get("image") or {})
    selection, manager = (str(request.get(key) or "") for key in ("selection", "manager"))
    result = execute_prompt(request.get("options"), lambda: read_raw_image(meta),
                            read_roiset(selection) if selection else [], read_roiset(manager) if manager else [],
                            models(), current_plane=int(request.get("current_plane") or 0),
                            hyperstack=bool(meta.get("hyperstack")))
    return _reply(result, request, scratch, show=result.options.show)


def train(request: dict) -> dict:
    """``micro-sam Train`` (:func:`microsam_fiji.training.finetune`): ``options`` (``run("micro-sam Train", ...)``'s,
    parsed by the one table of options), and without ``images=[folder]`` the open images: ``images`` (the plugin's
    raw pixels, one description each) with ``rois`` (one RoiSet.zip each: the image's overlay, or for the current
    image the ROI Manager's ROIs), ``current_channels`` (each image's current channel). Progress goes to the status
    bar; Esc stops and keeps the best checkpoint so far. Outputs: ``out``, ``iterations``, ``minutes``,
    ``stopped``, ``msa_before``, ``msa_after``, ``model`` (the checkpoint, for the dialog's models)."""
    import xarray

    from microsam_fiji.command.options import parse_options
    from microsam_fiji.rois.roiset import read_roiset
    from microsam_fiji.training.finetune import finetune
    from microsam_fiji.worker.raw_image import read_raw_image

    opts = parse_options(request.get("options"), command="train")
    values = opts.values
    if not values.get("out"):
        raise UserError("no out=[...]: name the fine-tuned model to write, e.g. out=[/data/models/cells.pt]")
    images: Any
    labels: Any
    if values.get("images"):
        images, labels, channel = values["images"], opts.labels, opts.channel
    else:
        metas, zips = list(request.get("images") or []), list(request.get("rois") or [])
        if not metas:
            raise UserError("no images: open the annotated images (their ROIs in their overlay, or the current "
                            "image's in the ROI Manager), or give images=[folder]")
        images, labels, channel = [], [], opts.channel
        for meta, zipped in zip(metas, zips):
            loaded = read_raw_image(dict(meta))
            # the axes travel with the pixels (an xarray's dims): a hyperstack's channels and slices stay apart
            images.append(xarray.DataArray(loaded.data, dims=[a.lower() for a in loaded.axes]))
            labels.append(read_roiset(zipped) if zipped else [])
        if channel is None and request.get("current_channels"):
            channel = int(request["current_channels"][0])
    result = finetune(images, labels, values["out"], model=opts.model or None,
                      minutes=values["minutes"], n_iterations=values.get("iterations"),
                      patch_shape=values.get("patch"), val_fraction=values["validation"], channel=channel,
                      n_objects_per_batch=values.get("objects"), n_sub_iteration=values.get("prompt_rounds"),
                      evaluate=not values.get("no_evaluation"), resume=bool(values.get("resume")),
                      overwrite=bool(values.get("overwrite")), data_description=values.get("describe"))
    return {"out": str(result.checkpoint or ""), "model": str(result.checkpoint or ""),
            "iterations": result.iterations, "minutes": round(result.minutes, 2), "stopped": result.stopped,
            "msa_before": result.msa_before, "msa_after": result.msa_after}


_ACTIONS = {"hello": hello, "segment": segment, "prompt": prompt, "train": train}
