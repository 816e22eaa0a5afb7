"""Label images <-> ImageJ ROIs in pure Python (roifile): exact both ways, no JVM."""
from microsam_fiji.rois.decode import rois_to_labels
from microsam_fiji.rois.encode import labels_to_rois, roi_name
from microsam_fiji.rois.positions import stack_positions
from microsam_fiji.rois.roiset import read_roiset, write_rois, write_roiset

__all__ = ["labels_to_rois", "read_roiset", "roi_name", "rois_to_labels", "stack_positions", "write_roiset",
           "write_rois"]
