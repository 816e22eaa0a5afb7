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


def run_command(options: str | None, models: ModelCache) -> int:
    """Do what ``run("micro-sam APG", options)`` asks, on the current image (:func:`~microsam_fiji.command.execute.
    execute`), then put the ROIs into the ROI Manager; returns the number of ROIs."""
    from jpype import JClass

    from microsam_fiji.core.tiff_io import labels_for_imagej
    from microsam_fiji.imagej.api import add_to_roi_manager, target_roi_manager
    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    opts = check_options(options)
    imp = JClass("ij.WindowManager").getCurrentImage()
    if imp is None:
        raise UserError("no image is open: open or select the image to segment first")
    result = execute(opts, lambda: from_imageplus(imp), models, hyperstack=bool(imp.isHyperStack()),
                     selection=current_selection(imp), current_plane=int(imp.getCurrentSlice()) - 1)
    IJ = JClass("ij.IJ")
    for message in result.warnings:
        IJ.log(f"{COMMAND}: {message}")  # e.g. the image was rescaled: where the user looks
    RoiDecoder = JClass("ij.io.RoiDecoder")
    rois = [RoiDecoder(roi.tobytes(), f"{roi.name}.roi").getRoi() for roi in result.rois]
    add_to_roi_manager(target_roi_manager(), rois, imp, replace=opts.replace)
    if opts.show:
        shown = to_imageplus(labels_for_imagej(result.labels), result.label_axes, result.calibration,
                             title=f"{imp.getTitle()}-labels")
        shown.show()
    IJ.showStatus(f"{COMMAND}: {result.count} objects")
    return result.count


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
    """The command's dialog, for a click on Plugins > micro-sam APG (a macro never sees it): the options it
    returns are recorded by the Macro Recorder. None when cancelled."""
    from jpype import JArray, JClass, JString

    from microsam_fiji.core.params import default_params

    apg = default_params("apg")
    gd = JClass("ij.gui.GenericDialog")(COMMAND)
    gd.addStringField("Model (empty: default)", "", 40)
    gd.addChoice("Mode", JArray(JString)(["apg", "ais"]), "apg")
    fields = [("foreground", "foreground_threshold", 2), ("center", "center_distance_threshold", 2),
              ("boundary", "boundary_distance_threshold", 2), ("min_size", "min_size", 0),
              ("nms", "nms_threshold", 2)]
    for key, name, digits in fields:
        gd.addNumericField(f"{key} ({name})", float(apg[name]), digits)
    gd.addCheckbox("Replace the ROIs in the ROI Manager", False)
    planes = 1 if imp is None else int(imp.getNSlices()) * int(imp.getNFrames())
    if planes > 1:  # as ImageJ's filters ask "Process all N slices?"; recorded as `stack`
        gd.addCheckbox(f"Stack: process all {planes} planes (else the current one)", False)
    gd.showDialog()
    if gd.wasCanceled():
        return None
    model = str(gd.getNextString()).strip()
    parts = [f"model=[{model}]"] if model else []
    parts.append(f"mode={gd.getNextChoice()}")
    for key, _, digits in fields:
        value = float(gd.getNextNumber())
        parts.append(f"{key}={int(value)}" if digits == 0 else f"{key}={value:g}")
    if gd.getNextBoolean():
        parts.append("replace")
    if planes > 1 and gd.getNextBoolean():
        parts.append("stack")
    return " ".join(parts)


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
                    from microsam_fiji.imagej.prompt_command import run_prompt_command

                    options = JClass("ij.Macro").getOptions()
                    run_prompt_command(None if options is None else str(options), models)
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
    for command, placeholder in ((COMMAND, "microsam_fiji.MicroSamAPG"), (PROMPT_COMMAND, "microsam_fiji.MicroSamPrompt")):
        if Menus.getCommands().get(command) is None:
            Menus.installPlugin(placeholder, Menus.PLUGINS_MENU, command, "", IJ.getInstance())
