"""Segment one image of a batch: read, segment, write outputs and stamp; never raise for a bad image.

Both runners call :func:`segment_image`: in this process, or on a Dask worker (hence plain arguments)."""
from __future__ import annotations

import os
import time

import numpy as np

from microsam_fiji.batch.plan import Job
from microsam_fiji.batch.settings import Settings
from microsam_fiji.batch.stamp import claim, image_identity, write_stamp
from microsam_fiji.batch.summary import DONE, FAILED, Row
from microsam_fiji.core.errors import UserError, one_line


def image_axes(file_axes: str, shape: tuple[int, ...], given: str | None, path: str) -> str | None:
    """``--axes`` where given (it must fit the image), else the file's own axes unless they are ambiguous."""
    if given:
        if len(given) != len(shape):
            raise UserError(f"--axes {given} has {len(given)} letters but '{path}' has {len(shape)} axes (shape "
                            f"{shape}): give one letter per axis")
        return given
    if file_axes and len(set(file_axes)) != len(file_axes):
        # tifffile names the extra axes of a plain multi-page TIFF 'Q' (we read it as Z): two of them mean the
        # file does not say which axis is time and which is depth
        example = {4: "TZYX", 5: "TZCYX"}.get(len(shape), "TZYX")
        raise UserError(f"the axes of '{path}' (shape {shape}) are ambiguous: pass --axes, e.g. --axes {example}")
    return file_axes or None


def label_axes(image_axes: str | None, ndim: int) -> str | None:
    if not image_axes:
        return None
    axes = "".join(a for a in image_axes if a not in "CS")
    return axes if len(axes) == ndim else None


def segment_image(job: Job, model, settings: Settings, key: dict) -> Row:
    from microsam_fiji.core.tiff_io import read_image, write_labels
    from microsam_fiji.engines.measurements import measure_objects
    from microsam_fiji.engines.segment import segment_with_scores

    start = time.perf_counter()
    row = Row(image=job.given, engine=settings.engine or "", model=str(model.source))
    try:
        # before reading: a file changed meanwhile is segmented again on the next run (a missing one: read_image
        # says so)
        identity = image_identity(job.image) if os.path.isfile(job.image) else None
        loaded = read_image(job.image)
        axes = image_axes(loaded.axes, loaded.data.shape, settings.axes, job.given)
        result = segment_with_scores(loaded.data, model, settings.mode, axes=axes, tile_shape=settings.tile_shape,
                     halo=settings.halo, tile_threshold=settings.tile_threshold, engine=settings.engine,
                     volume=settings.volume, gap_closing=settings.gap_closing,
                     min_z_extent=settings.min_z_extent, channel=settings.channel, **settings.params)
        table = measure_objects(result, loaded.data, loaded.calibration, axes=axes)
        claim(job)  # the outputs are ours before the first is written (see stamp.py)
        write_labels(job.labels, result.labels, loaded.calibration, axes=label_axes(axes, result.labels.ndim))
        if job.rois:
            from microsam_fiji.rois.roiset import write_roiset

            # 3D objects: one name per object on all its slices (as propagate's)
            write_roiset(job.rois, result.labels, scores=result.scores, slice_suffix=not result.volume)
        if job.objects:
            table.write_csv(job.objects)
        row.objects = int(np.count_nonzero(np.unique(result.labels)))
        row.seconds = time.perf_counter() - start
        row.labels, row.rois = job.labels, job.rois or ""
        write_stamp(job, key, {"objects": row.objects, "seconds": row.seconds, "engine": row.engine,
                               "model": row.model, "mode": result.mode}, identity)
    except MemoryError:
        row.status, row.error = FAILED, ("out of memory: segment it alone, in tiles (--tile-shape) or on a larger "
                                         "machine")
    except Exception as err:  # noqa: BLE001 - one bad image must not end the batch: it is reported in its row
        row.status, row.error = FAILED, one_line(err)
    if row.status == FAILED:
        row.seconds = time.perf_counter() - start
    else:
        row.status = DONE
    return row
