"""The ImageJ command ``micro-sam APG``, callable from any macro once a bridge session runs::

    run("micro-sam APG", "model=[/path/model.zip] mode=apg foreground=0.5 center=0.5 boundary=0.5 min_size=25 replace");

It segments the current image (2D, RGB, or the current plane of a z/t stack: the whole stack, slice by slice,
with ``stack``), inside its area selection if it has one, and adds one ROI per object to the ROI Manager. What
the command does is :func:`microsam_fiji.command.execute.execute`, shared with the ImageJ plugin's worker
(:mod:`microsam_fiji.worker`), which serves the same command in a Fiji started the usual way.

Why a ``CommandListener``: ImageJ 1.x sends every ``run()`` (macros, menus, ``IJ.run``) through ``ij.Executer``,
which offers the command to its static listeners before looking it up in the menus; a listener returning null
consumes it. A JPype proxy of ``ij.CommandListener`` therefore adds a command without compiling or installing
Java, identically in plain ImageJ and in Fiji (both have the ImageJ 1.x layer), and it runs on the macro's own
thread, where ``Macro.getOptions()`` and the macro's current image and (batch-mode) ROI Manager are visible.
Plain ImageJ builds its command table on the first ``run()``, which needs a display (``xvfb-run`` on servers).

Errors never leave as a Python or Java stack trace: the message goes to the running macro's
``Interpreter.abort(message)``, which stops the macro the way ImageJ's own macro errors do (its "Macro Error"
box; no box when the macro runs with ``setIgnoreErrors(true)``, e.g. :func:`microsam_fiji.imagej.run_macro`,
which raises the message instead). Outside a macro the message goes to ``IJ.error``. The JVM and the loaded
models stay for the next call."""
from __future__ import annotations

import logging

from microsam_fiji.command.execute import COMMAND, check_options, error_message, execute
from microsam_fiji.command.prompt import COMMAND as PROMPT_COMMAND
from microsam_fiji.core.errors import UserError
from microsam_fiji.models.cache import ModelCache

_LOG = logging.getLogger(__name__)

_registered: dict[str, object] = {}


def run_command(options: str | None, models: ModelCache, command: str = COMMAND) -> int:
    """Do what ``run("micro-sam APG", options)`` or ``run("micro-sam Prompt", options)`` asks on the current image
    (:func:`~microsam_fiji.command.execute.execute` / :func:`~microsam_fiji.command.prompt.execute_prompt`), then
    put the ROIs into the ROI Manager, named after the ones it holds (:func:`~microsam_fiji.rois.naming.
    for_manager`, as the plugin's worker names them); the warnings go to the Log. Returns the number of ROIs."""
    from jpype import JClass

    from microsam_fiji.command.prompt import check_prompt_options, execute_prompt
    from microsam_fiji.core.tiff_io import labels_for_imagej
    from microsam_fiji.imagej.api import add_to_roi_manager, java_rois_to_roifile, target_roi_manager
    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    prompt = command == PROMPT_COMMAND
    opts = check_prompt_options(options) if prompt else check_options(options)
    imp = JClass("ij.WindowManager").getCurrentImage()
    if imp is None:
        raise UserError("no image is open: open the image and make a selection on it first" if prompt else
                        "no image is open: open or select the image to segment first")
    rm = target_roi_manager()
    manager = java_rois_to_roifile([r for r in rm.getRoisAsArray() if r is not None])
    read = lambda: from_imageplus(imp)  # noqa: E731 - read after the options and the model are checked
    current_plane, hyperstack = int(imp.getCurrentSlice()) - 1, bool(imp.isHyperStack())
    if prompt:
        selection = java_rois_to_roifile([imp.getRoi()] if imp.getRoi() is not None else [])
        result = execute_prompt(opts, read, selection, manager, models, current_plane=current_plane,
                                hyperstack=hyperstack)
    else:
        result = execute(opts, read, models, hyperstack=hyperstack, selection=current_selection(imp),
                         current_plane=current_plane)
    IJ = JClass("ij.IJ")
    for message in result.warnings:
        IJ.log(f"{command}: {message}")  # e.g. the image was rescaled: where the user looks
    RoiDecoder = JClass("ij.io.RoiDecoder")
    named, table = result.for_manager([r.name for r in manager if r.name])
    rois = [RoiDecoder(roi.tobytes(), f"{roi.name}.roi").getRoi() for roi in named]
    add_to_roi_manager(rm, rois, imp, replace=opts.replace)
    if table is not None:
        show_objects_table(table, append=prompt)
    if opts.show:
        shown = to_imageplus(labels_for_imagej(result.labels), result.label_axes, result.calibration,
                             title=f"{imp.getTitle()}-{'prompted' if prompt else 'labels'}")
        shown.show()
    IJ.showStatus(f"{command}: {result.count} objects" + (f" (encoded {result.encoded})" if prompt else ""))
    return result.count


def show_objects_table(table, append: bool = False) -> None:
    """The objects' measurements in ImageJ's ResultsTable ``micro-sam objects`` (what a macro selects by title):
    replaced by an APG call, appended to by a prompt (its objects join the table), as the plugin does.

    Args:
        table: the :class:`~microsam_fiji.engines.measurements.ObjectTable`.
        append: add the rows to the open table instead of replacing it."""
    import tempfile
    from pathlib import Path

    from jpype import JClass

    from microsam_fiji.command.execute import OBJECTS_TABLE

    ResultsTable = JClass("ij.measure.ResultsTable")
    with tempfile.TemporaryDirectory(prefix="microsam-objects-") as tmp:
        new = ResultsTable.open(str(table.write_csv(Path(tmp) / "objects.csv")))
    shown = ResultsTable.getResultsTable(OBJECTS_TABLE) if append else None
    if shown is None:
        new.show(OBJECTS_TABLE)
        return
    for row in range(new.size()):  # as the plugin appends (Rois.showTable): numbers as numbers, text as text
        shown.incrementCounter()
        for heading in new.getHeadings():
            number = new.getValue(heading, row)
            if number != number:  # NaN: a text column (name, unit) or an empty cell
                shown.addValue(heading, new.getStringValue(heading, row))
            else:
                shown.addValue(heading, number)
    shown.show(OBJECTS_TABLE)


def current_selection(imp):
    """The image's area selection as a ``roifile.ImagejRoi`` (ImageJ's own RoiEncoder bytes), or None (no
    selection, or a point or line selection, which does not restrict the command)."""
    from microsam_fiji.imagej.api import java_rois_to_roifile

    roi = imp.getRoi()
    if roi is None or not bool(roi.isArea()):
        return None
    return java_rois_to_roifile([roi])[0]


def _report(message: str, command: str = COMMAND) -> None:
    """Stop the running macro with ``message`` the way ImageJ's own macro errors do; outside a macro, IJ.error."""
    from jpype import JClass, JException

    full = f"{command}: {message}"
    interp = JClass("ij.macro.Interpreter").getInstance()
    if interp is None:
        JClass("ij.IJ").error(command, message)
        return
    try:
        interp.abort(full)
    except JException as err:
        # abort() without ignoreErrors shows the error box, then throws "Macro canceled" to unwind the macro;
        # the interpreter is already marked done, so swallowing it here only avoids a Java stack trace window
        if str(err.getMessage()) != str(JClass("ij.Macro").MACRO_CANCELED):
            _LOG.error("reporting a macro error failed: %s", err)


def ask_options(imp=None) -> str | None:
    """The command's dialog, for a click on Plugins > micro-sam APG (a macro never sees it), made from the one
    table of options (:func:`~microsam_fiji.command.options.dialog_fields`, as the plugin's dialog): the options
    it returns are recorded by the Macro Recorder. None when cancelled."""
    from jpype import JArray, JClass, JString

    from microsam_fiji.command.options import dialog_fields

    slices = 1 if imp is None else int(imp.getNSlices())
    planes = 1 if imp is None else slices * int(imp.getNFrames())
    channels = 1 if imp is None else int(imp.getNChannels())
    has = {"always": True, "stack": planes > 1, "zstack": slices > 1, "channels": channels > 1}
    fields = [f for f in dialog_fields("apg") if has.get(f["shown"], False)]
    gd = JClass("ij.gui.GenericDialog")(COMMAND)
    for f in fields:
        label = f["label"].replace("{planes}", str(planes)).replace("{slices}", str(slices))
        if f["kind"] == "choice":
            gd.addChoice(label, JArray(JString)(f["choices"]), str(f["default"] or f["choices"][0]))
        elif f["kind"] == "channel":  # the current channel first chosen, as ImageJ's own commands take it
            gd.addChoice(label, JArray(JString)([str(c) for c in range(1, channels + 1)]), str(int(imp.getC())))
        elif f["kind"] in ("number", "integer") and f["default"] is None:
            gd.addStringField(label, "", 6)  # empty: micro-sam's own choice
        elif f["kind"] in ("number", "integer"):
            gd.addNumericField(label, float(f["default"] or 0), int(f["digits"]))
        elif f["kind"] == "flag":
            gd.addCheckbox(label, False)
        else:  # model (empty: the default), file, pair, text
            gd.addStringField(label, "" if f["default"] is None else str(f["default"]), 30)
    gd.showDialog()
    if gd.wasCanceled():
        return None
    parts = []
    for f in fields:
        key = f["key"]
        if f["kind"] in ("choice", "channel"):
            parts.append(f"{key}={gd.getNextChoice()}")
        elif f["kind"] in ("number", "integer") and f["default"] is None:
            value = str(gd.getNextString()).strip()
            if value:
                parts.append(f"{key}={value}")
        elif f["kind"] in ("number", "integer"):
            number = float(gd.getNextNumber())
            parts.append(f"{key}={int(round(number))}" if f["kind"] == "integer" else f"{key}={number:g}")
        elif f["kind"] == "flag":
            if gd.getNextBoolean():
                parts.append(key)
        else:
            value = str(gd.getNextString()).strip()
            if value:
                parts.append(f"{key}={quoted(value)}")
    return " ".join(parts)


def quoted(value: str) -> str:
    """A value as ImageJ's macro options hold it: in [...] with spaces, in '...' when it has a ']'.

    Args:
        value: the text of a field.

    Returns:
        ``value``, ``[value]`` or ``'value'``."""
    if "]" in value and "'" not in value:
        return f"'{value}'"
    return f"[{value}]" if " " in value or "[" in value else value


def _options_for_this_call() -> str | None | bool:
    """Macro options; from a menu click (no macro, no options, a display) the dialog's, then recorded.
    False when the dialog was cancelled."""
    from jpype import JClass

    options = JClass("ij.Macro").getOptions()
    interactive = (options is None and JClass("ij.macro.Interpreter").getInstance() is None
                   and not JClass("java.awt.GraphicsEnvironment").isHeadless())
    if not interactive:
        return None if options is None else str(options)
    options = ask_options(JClass("ij.WindowManager").getCurrentImage())
    if options is None:
        return False
    Recorder = JClass("ij.plugin.frame.Recorder")
    if Recorder.record:
        Recorder.record("run", COMMAND, options)
    return options


def _make_listener(models: ModelCache):
    from jpype import JClass, JImplements, JOverride

    @JImplements("ij.CommandListener")
    class MicroSamCommand:
        @JOverride
        def commandExecuting(self, command):
            name = None if command is None else str(command)
            if name not in (COMMAND, PROMPT_COMMAND):
                return command
            try:
                if name == PROMPT_COMMAND:
                    options = JClass("ij.Macro").getOptions()
                    run_command(None if options is None else str(options), models, PROMPT_COMMAND)
                else:
                    options = _options_for_this_call()
                    if options is not False:
                        run_command(options, models)
            except BaseException as err:  # noqa: BLE001 - nothing may escape into ImageJ as a stack trace
                if not isinstance(err, UserError):
                    _LOG.exception("%s failed", name)
                try:
                    _report(error_message(err), name)
                except BaseException:  # noqa: BLE001
                    _LOG.exception("%s: could not report the error", name)
            return None

    return MicroSamCommand()


def register(models: ModelCache) -> None:
    """Add the command to ImageJ (once per process; later sessions replace the earlier listener)."""
    from jpype import JClass

    Executer = JClass("ij.Executer")
    old = _registered.pop("listener", None)
    if old is not None:
        Executer.removeCommandListener(old)
    listener = _make_listener(models)
    Executer.addCommandListener(listener)
    _registered["listener"] = listener


def install_menu_item() -> None:
    """Put the command into Plugins > micro-sam APG of a plain ImageJ window (the listener consumes it before
    ImageJ would look for the placeholder class)."""
    from jpype import JClass

    IJ = JClass("ij.IJ")
    Menus = JClass("ij.Menus")
    if IJ.getInstance() is None or Menus.getCommands() is None:
        return
    for command, placeholder in ((COMMAND, "microsam_fiji.MicroSamAPG"),
                                 (PROMPT_COMMAND, "microsam_fiji.MicroSamPrompt")):
        if Menus.getCommands().get(command) is None:
            Menus.installPlugin(placeholder, Menus.PLUGINS_MENU, command, "", IJ.getInstance())
