"""``micro-sam Prompt`` served in process: the current selection or the ROI Manager's ROIs as prompts on the
current image (:func:`microsam_fiji.command.prompt.execute_prompt`), the new objects into the ROI Manager."""
from __future__ import annotations

from microsam_fiji.command.prompt import COMMAND, execute_prompt
from microsam_fiji.core.errors import UserError
from microsam_fiji.models.cache import ModelCache


def java_rois_as_roifile(rois) -> list:
    """Java ROIs as roifile's (ImageJ's own RoiEncoder bytes), for the transport-free command."""
    from microsam_fiji.imagej.api import java_rois_to_roifile

    return java_rois_to_roifile([r for r in rois if r is not None])


def run_prompt_command(options: str | None, models: ModelCache) -> int:
    """Do what ``run("micro-sam Prompt", options)`` asks on the current image; returns the number of new ROIs."""
    from jpype import JClass

    from microsam_fiji.command.prompt import check_prompt_options
    from microsam_fiji.core.tiff_io import labels_for_imagej
    from microsam_fiji.imagej.api import add_to_roi_manager, target_roi_manager
    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    opts = check_prompt_options(options)
    imp = JClass("ij.WindowManager").getCurrentImage()
    if imp is None:
        raise UserError("no image is open: open the image and make a selection on it first")
    rm = target_roi_manager()
    selection = java_rois_as_roifile([imp.getRoi()])
    manager = java_rois_as_roifile(list(rm.getRoisAsArray()))
    result = execute_prompt(opts, lambda: from_imageplus(imp), selection, manager, models,
                            current_plane=int(imp.getCurrentSlice()) - 1, hyperstack=bool(imp.isHyperStack()))
    RoiDecoder = JClass("ij.io.RoiDecoder")
    rois = [RoiDecoder(roi.tobytes(), f"{roi.name}.roi").getRoi() for roi in result.rois]
    add_to_roi_manager(rm, rois, imp, replace=opts.replace)
    if opts.show:
        to_imageplus(labels_for_imagej(result.labels), result.label_axes, result.calibration,
                     title=f"{imp.getTitle()}-prompted").show()
    JClass("ij.IJ").showStatus(f"{COMMAND}: {result.count} objects (encoded {result.encoded})")
    return result.count
