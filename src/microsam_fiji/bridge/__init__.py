"""Fiji/ImageJ bridge: ImagePlus <-> numpy, labels <-> ImageJ ROIs, the macro command ``micro-sam APG``."""
from . import session
from .api import MacroError, run_macro, run_macro_file, segment_imageplus, to_roi_manager
from .imageplus import from_imageplus, to_imageplus
from .session import run_macro_unattended
