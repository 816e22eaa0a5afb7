"""Python API for notebook users of the bridge: what the ``micro-sam APG`` macro command does, as functions.

    from microsam_fiji import imagej
    imagej.session.start()                                  # ImageJ in this process (see imagej.session)
    rois = imagej.segment_imageplus(imp, center=0.4)        # list of ij.gui.Roi, nothing added anywhere
    rm = imagej.to_roi_manager(labels)                      # into the ROI Manager (kept unless replace=True)
    imagej.run_macro('run("micro-sam APG", "min_size=30");')

Label images become Java ROIs through one exact path: roifile encodes each ROI the way ImageJ writes ``.roi``
files (:func:`microsam_fiji.rois.encode.labels_to_rois`) and ImageJ's own ``ij.io.RoiDecoder`` decodes it."""
from __future__ import annotations

from microsam_fiji.imagej.jvm import jclass as _jclass
from microsam_fiji.models.cache import shared_cache
from microsam_fiji.rois.naming import continued_names
from microsam_fiji.rois.positions import stack_positions


def labels_to_java_rois(labels, scores: dict | None = None, name_prefix: str = "cell", *, stack_axes: str | None = None,
                        imp=None) -> list:
    """``ij.gui.Roi`` objects, one per object and plane (stack planes give the ROI position); see
    :func:`stack_positions` for ``stack_axes`` and ``imp``."""
    from microsam_fiji.rois.encode import labels_to_rois

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
    """Add Java ROIs to ``rm`` and turn on Show All on ``imp`` (ImageJ leaves it off after adding, so the user
    would see no outlines); existing ROIs stay unless ``replace``.

    Args:
        rm: an ``ij.plugin.frame.RoiManager``.
        rois: ``ij.gui.Roi`` objects.
        imp: the ``ij.ImagePlus`` they belong to (None: added without an image, Show All left as it is).
        replace: empty the ROI Manager first; otherwise names it already holds are continued
            (:func:`~microsam_fiji.rois.naming.continued_names`).

    Returns:
        ``rm``."""
    if replace:
        rm.reset()
    else:  # an earlier call's cell-0001 stays: this call's names continue the numbering
        existing = [str(r.getName()) for r in rm.getRoisAsArray() if r.getName() is not None]
        names = [str(roi.getName()) if roi.getName() is not None else "" for roi in rois]
        for roi, name, new in zip(rois, names, continued_names(existing, names)):
            if new != name:
                roi.setName(new)
    for roi in rois:
        if imp is not None:
            rm.add(imp, roi, -1)
        else:
            rm.addRoi(roi)
    if imp is not None and rois:
        selection = imp.getRoi()
        rm.runCommand(imp, "show all")  # as roiManager("Show All")
        if selection is not None and imp.getRoi() is None:
            imp.setRoi(selection)  # Show All drops the selection: the user's region stays for the next call
    return rm


def to_roi_manager(labels, rm=None, replace: bool = False, scores: dict | None = None, imp=None,
                   name_prefix: str = "cell", stack_axes: str | None = None):
    """Put one ROI per label into the ROI Manager (default: :func:`target_roi_manager`) and return it.

    Needs a display (the ROI Manager is a window). Existing ROIs are kept unless ``replace``."""
    rois = labels_to_java_rois(labels, scores, name_prefix, stack_axes=stack_axes, imp=imp)
    return add_to_roi_manager(rm if rm is not None else target_roi_manager(), rois, imp, replace)


def segment_imageplus_labels(imp, model=None, mode: str | None = None, **kwargs):
    """Segment an ``ij.ImagePlus`` with this process's models; returns (Segmentation, stack axes of the labels,
    the image as read)."""
    from microsam_fiji.engines.segment import segment_with_scores
    from microsam_fiji.imagej.imageplus import from_imageplus

    loaded = from_imageplus(imp)
    result = segment_with_scores(loaded.data, shared_cache().model(model), mode, axes=loaded.axes, **kwargs)
    stack_axes = "".join(a for a in loaded.axes if a in "ZT")
    return result, stack_axes, loaded


def segment_imageplus(imp, model=None, mode: str | None = "apg", *, name_prefix: str = "cell", **params) -> list:
    """Segment ``imp`` (APG by default) and return one ``ij.gui.Roi`` per object; works headless.

    Args:
        imp: an ``ij.ImagePlus`` (2D, RGB or a stack).
        model: a :class:`microsam_fiji.Model` or a source for :func:`microsam_fiji.load_model` (loaded once per
            process; None: the default model).
        mode: ``"apg"`` or ``"ais"``.
        name_prefix: ROI names are ``<prefix>-0001``, ...
        **params: as for :func:`microsam_fiji.segment`.

    Returns:
        The ``ij.gui.Roi`` objects, positioned in the stack; nothing is added to the ROI Manager."""
    result, stack_axes, _ = segment_imageplus_labels(imp, model, mode, **params)
    return labels_to_java_rois(result.labels, result.scores, name_prefix, stack_axes=stack_axes, imp=imp)
