"""ImageJ inside this Python process (JPype): ImagePlus <-> numpy, labels <-> Java ROIs, macros, and the
``micro-sam APG`` command served in process."""
from microsam_fiji.imagej import session
from microsam_fiji.imagej.api import segment_imageplus, to_roi_manager
from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus
from microsam_fiji.imagej.macros import (
           MacroError,
           run_macro,
           run_macro_file,
           run_macro_unattended,
)

__all__ = ["MacroError", "from_imageplus", "run_macro", "run_macro_file", "run_macro_unattended", "segment_imageplus",
           "session", "to_imageplus", "to_roi_manager"]
