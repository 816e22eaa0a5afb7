"""Fiji/ImageJ bridge: ImagePlus <-> numpy, labels <-> ImageJ ROIs, the macro command ``micro-sam APG``."""
