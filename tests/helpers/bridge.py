"""ImageJ inside the test process (JPype, a display when $DISPLAY is set) for the in-process command's tests:
starting it, macros, images and ROIs; the fixtures (``bridge``, ``model``, ``nuclei``, ``rm``, ...) are in
conftest.py."""
from __future__ import annotations

import numpy as np


def nuclei_crop(stardist_image) -> np.ndarray:
    """128x128 of real nuclei (16 in the ground truth): a new image costs one encoder run, APG stays quick."""
    return stardist_image[384:512, 0:128].copy()


def imagej_with_display():
    """Start ImageJ for tests that need the ROI Manager or macro ``run()``; without a display, Java or ij.jar:
    a failure under CI=true, else a skip (conftest.require_imagej)."""
    from microsam_fiji.imagej.jvm import start_imagej

    from helpers.imagej import require_imagej

    require_imagej(display=True)
    assert not start_imagej()["headless"]


def start_session(default_model=None):
    from microsam_fiji.imagej import session

    return session.start(default_model=default_model)


def clean_roi_manager():
    """The (visible) ROI Manager every macro of the test uses, emptied."""
    from jpype import JClass

    rm = JClass("ij.plugin.frame.RoiManager").getRoiManager()
    rm.reset()
    return rm


def rois_as_labels(rois, shape) -> np.ndarray:
    from microsam_fiji.imagej.api import java_rois_to_roifile
    from microsam_fiji.rois.decode import rois_to_labels

    return rois_to_labels(java_rois_to_roifile(rois), shape)


def showing_dialogs() -> list[str]:
    """Titles of dialogs (modal or not) and error/exception windows on screen."""
    from jpype import JClass

    Dialog = JClass("java.awt.Dialog")
    Frame = JClass("java.awt.Frame")
    out = []
    for w in JClass("java.awt.Window").getWindows():
        if not w.isShowing():
            continue
        if isinstance(w, Dialog) or (isinstance(w, Frame) and str(w.getTitle()) in ("Exception", "Macro Error")):
            out.append(str(w.getTitle()))
    return out


def write_tiff(path, data, axes: str | None = None) -> str:
    import tifffile

    tifffile.imwrite(path, data, imagej=True, metadata={"axes": axes} if axes else {})
    return str(path)


def open_image(path: str) -> str:
    return f'close("*"); open("{path}");'


def macro(code: str):
    from microsam_fiji.imagej import run_macro

    return run_macro(code)
