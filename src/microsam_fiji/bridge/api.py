"""Python API for notebook users of the bridge: what the ``micro-sam APG`` macro command does, as functions.

    from microsam_fiji import bridge
    bridge.session.start()                                  # ImageJ in this process (see bridge.session)
    rois = bridge.segment_imageplus(imp, center=0.4)        # list of ij.gui.Roi, nothing added anywhere
    rm = bridge.to_roi_manager(labels)                      # into the ROI Manager (kept unless replace=True)
    bridge.run_macro('run("micro-sam APG", "min_size=30");')

Label images become Java ROIs through one exact path: roifile encodes each ROI the way ImageJ writes ``.roi``
files (:func:`microsam_fiji.bridge.rois.labels_to_rois`) and ImageJ's own ``ij.io.RoiDecoder`` decodes it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .jvm import jclass as _jclass
from .session import current

_LABEL_STACK_AXES = {2: "", 3: "Z", 4: "TZ"}


class MacroError(UserError):
    """A macro stopped with an error; ``str(err)`` is ImageJ's message."""


def stack_positions(labels, stack_axes: str | None = None, imp=None, *, hyperstack: bool | None = None):
    """``labels`` as (Y,X) or (N,Y,X) plus the ImageJ stack position of each plane, for ``labels_to_rois``.

    ``stack_axes``: the ImageJ letters of the leading label axes ("Z", "T", "TZ"; default by dimension).
    Hyperstacks (z and t, or ``imp.isHyperStack()`` / ``hyperstack``) get (c, z, t) positions, other stacks the
    plane index."""
    labels = np.asarray(labels)
    if labels.ndim < 2:
        raise UserError(f"labels must be 2D or a stack of 2D planes, got shape {labels.shape}")
    stack_axes = _LABEL_STACK_AXES.get(labels.ndim) if stack_axes is None else stack_axes.upper()
    if stack_axes is None or len(stack_axes) != labels.ndim - 2 or set(stack_axes) - set("ZT"):
        raise UserError(f"cannot tell the stack axes of labels of shape {labels.shape}: pass stack_axes (e.g. 'TZ')")
    if not stack_axes:
        return labels, None
    if imp is not None:
        hyperstack = bool(imp.isHyperStack())
    elif hyperstack is None:
        hyperstack = len(stack_axes) == 2
    stack_shape = labels.shape[:-2]
    positions = []
    for index in range(int(np.prod(stack_shape))):
        where = dict(zip(stack_axes, np.unravel_index(index, stack_shape)))
        positions.append((0, int(where.get("Z", 0)) + 1, int(where.get("T", 0)) + 1) if hyperstack else index + 1)
    return labels.reshape((-1,) + labels.shape[-2:]), positions


def labels_to_java_rois(labels, scores: dict | None = None, name_prefix: str = "cell", *, stack_axes: str | None = None,
                        imp=None) -> list:
    """``ij.gui.Roi`` objects, one per object and plane (stack planes give the ROI position); see
    :func:`stack_positions` for ``stack_axes`` and ``imp``."""
    from .rois import labels_to_rois

    planes, positions = stack_positions(labels, stack_axes, imp)
    RoiDecoder = _jclass("ij.io.RoiDecoder")
    return [RoiDecoder(roi.tobytes(), f"{roi.name}.roi").getRoi()
            for roi in labels_to_rois(planes, scores, name_prefix=name_prefix, positions=positions)]


def java_rois_to_roifile(rois) -> list:
    """``roifile.ImagejRoi`` copies of Java ROIs (ImageJ's ``RoiEncoder`` bytes, decoded by roifile)."""
    import roifile

    RoiEncoder = _jclass("ij.io.RoiEncoder")
    return [roifile.ImagejRoi.frombytes(bytes(RoiEncoder.saveAsByteArray(r))) for r in rois]


def target_roi_manager():
    """The ROI Manager a macro's ``roiManager(...)`` sees: the open one, a running batch-mode macro's own, or a
    new window."""
    RoiManager = _jclass("ij.plugin.frame.RoiManager")
    rm = RoiManager.getInstance()
    return rm if rm is not None else RoiManager.getRoiManager()


def add_to_roi_manager(rm, rois, imp=None, replace: bool = False):
    """Add Java ROIs to ``rm``; existing ROIs stay unless ``replace``."""
    if replace:
        rm.reset()
    for roi in rois:
        if imp is not None:
            rm.add(imp, roi, -1)
        else:
            rm.addRoi(roi)
    return rm


def to_roi_manager(labels, rm=None, replace: bool = False, scores: dict | None = None, imp=None,
                   name_prefix: str = "cell", stack_axes: str | None = None):
    """Put one ROI per label into the ROI Manager (default: :func:`target_roi_manager`) and return it.

    Needs a display (the ROI Manager is a window). Existing ROIs are kept unless ``replace``."""
    rois = labels_to_java_rois(labels, scores, name_prefix, stack_axes=stack_axes, imp=imp)
    return add_to_roi_manager(rm if rm is not None else target_roi_manager(), rois, imp, replace)


def segment_imageplus_labels(imp, model=None, mode: str | None = None, **kwargs):
    """Segment an ``ij.ImagePlus`` with the session's models; returns (Segmentation, stack axes of the labels)."""
    from ..segment import run
    from .imageplus import from_imageplus

    session = current()
    loaded = from_imageplus(imp)
    model = session.model(model)
    with session.lock:
        result = run(loaded.data, model, mode, axes=loaded.axes, **kwargs)
    stack_axes = "".join(a for a in loaded.axes if a in "ZT")
    return result, stack_axes, loaded


def segment_imageplus(imp, model=None, mode: str | None = "apg", *, name_prefix: str = "cell", **params) -> list:
    """Segment ``imp`` (APG by default) and return one ``ij.gui.Roi`` per object; works headless.

    ``model``: a :class:`microsam_fiji.Model` or a source for :func:`microsam_fiji.load_model` (cached in the
    session; default: the session's default model). ``params``: as for :func:`microsam_fiji.segment`."""
    result, stack_axes, _ = segment_imageplus_labels(imp, model, mode, **params)
    return labels_to_java_rois(result.labels, result.scores, name_prefix, stack_axes=stack_axes, imp=imp)


def run_macro(code: str, arg: str = "") -> str | None:
    """Run ImageJ macro ``code`` in this thread and return its ``return`` value; an error of this macro raises
    :class:`MacroError` with ImageJ's message instead of opening ImageJ's error dialog.

    Macros it nests with ``runMacro()`` get interpreters of ImageJ's own, which show their errors (and a macro's
    ``exit("...")`` with ImageJ's window open) as dialogs that wait for a person: for runs without one, use
    :func:`microsam_fiji.bridge.session.run_macro_unattended`, which closes every dialog and raises its text."""
    from jpype import JException

    Interpreter = _jclass("ij.macro.Interpreter")
    interp = Interpreter()
    interp.setIgnoreErrors(True)
    try:
        result = interp.run(code, arg or "")
    except JException as err:  # a Java exception thrown by a macro function, not a macro error
        message = interp.getErrorMessage() or f"{err.getClass().getSimpleName()}: {err.getMessage()}"
        raise MacroError(str(message)) from None
    message = interp.getErrorMessage()
    if message is not None:
        raise MacroError(str(message))
    return None if result is None else str(result)


def run_macro_file(path: str | os.PathLike, arg: str = "") -> str | None:
    """:func:`run_macro` on a ``.ijm`` file (``getArgument()`` returns ``arg``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"macro file '{path}' not found: check the path")
    return run_macro(path.read_text(encoding="utf-8"), arg)
