"""Segment many images in one call: bad files reported and skipped, atomic outputs, resume by stamp, a
summary table, and optionally Dask workers (``workers=N`` on this machine, ``scheduler=ADDRESS`` on a cluster).

``segment_many`` is the Python entry point; ``microsam-fiji segment`` is the same path on the command line."""
from microsam_fiji.batch.api import segment_many
from microsam_fiji.batch.settings import Settings
from microsam_fiji.batch.summary import Row, Summary

__all__ = ["Row", "Settings", "Summary", "segment_many"]
