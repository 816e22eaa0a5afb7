"""``segment_many``: the batch behind ``microsam-fiji segment``."""
from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from microsam_fiji.batch.plan import (
    check_writable,
    claim_jobs,
    expand_images,
    plan_jobs,
)
from microsam_fiji.batch.progress import Progress
from microsam_fiji.batch.settings import Settings
from microsam_fiji.batch.stamp import current_stamp, release
from microsam_fiji.batch.summary import (
    FAILED,
    SKIPPED,
    SUMMARY_NAME,
    Row,
    Summary,
    write_csv,
)
from microsam_fiji.batch.workers import check_scheduler, worker_limit
from microsam_fiji.core.errors import UserError

__all__ = ["SUMMARY_NAME", "run_batch", "segment_many"]


def segment_many(images: str | os.PathLike | Iterable[str | os.PathLike], out: str | os.PathLike, model=None,
                 mode: str | None = None, params: Mapping[str, Any] | None = None, *, model_type: str | None = None,
                 axes: str | None = None, tile_shape=None, halo=None, tile_threshold: int | None = None,
                 device: str | None = None, backend: str | None = None,
                 engine: str | None = None, rois: bool = True, overwrite: bool = False, workers: int | None = None,
                 scheduler: str | None = None, progress: bool | Callable[[Row], None] = False,
                 volume: bool = False, gap_closing: int | None = None, min_z_extent: int | None = None,
                 channel: int | None = None) -> Summary:
    """Segment every image (files, folders, glob patterns) into ``out`` and return the :class:`Summary`.

    Per image: ``<name>_labels.tif``, ``<name>_RoiSet.zip`` (unless ``rois=False``), ``<name>_objects.csv`` (one
    row per object: :mod:`microsam_fiji.engines.measurements`) and the stamp ``<name>.microsam.json``; for the
    batch: ``summary.csv`` (one row per image: image, objects, seconds, engine, model, status, error, labels,
    rois; the rows of earlier batches into ``out`` are kept, a rerun
    replaces its input's row). An unreadable image gets status ``error`` and the batch goes on. Images whose
    stamp shows the same model, settings and input file (its content hash, too) are skipped (status
    ``skipped``) unless ``overwrite``. An output never replaces a file that microsam-fiji did not write or the
    outputs of another input: the name takes a number instead (``x-2_labels.tif``) and a warning says so; a
    ``<name>_labels.tif`` beside an image of the batch is no input (see batch/plan.py). ``workers=N`` runs on a local
    Dask cluster of N processes (at most what the cores and free memory hold), ``scheduler=ADDRESS`` on
    a running Dask scheduler; otherwise in this process. ``volume=True``: 3D objects from z-stacks (with
    ``gap_closing`` / ``min_z_extent``, as for :func:`microsam_fiji.segment_with_scores`); ``channel``: the channel
    to segment (1-based) of multi-channel images. ``model``: a loaded :class:`Model` (in process
    only) or what :func:`microsam_fiji.load_model` accepts; ``params``: segmentation parameters by name;
    ``backend``: how the model's passes run (``torch`` / ``onnx``, :mod:`microsam_fiji.models.backends`).
    Every option is checked, and ``out`` tested for writing, before the model is loaded or an image read.
    A script that passes ``workers`` needs the ``if __name__ == "__main__":`` guard (the worker processes are
    spawned and import the script)."""
    from microsam_fiji.models.model import Model

    loaded = model if isinstance(model, Model) else None
    source = loaded.source if loaded is not None else (None if model is None else str(model))
    settings = Settings(model=source, model_type=None if loaded else model_type, mode=mode,
                        params=dict(params or {}), axes=axes, tile_shape=tile_shape, halo=halo,
                        tile_threshold=tile_threshold, device=loaded.device if loaded else device, engine=engine,
                        rois=rois, backend=loaded.backend if loaded else backend, volume=volume,
                        gap_closing=gap_closing, min_z_extent=min_z_extent, channel=channel)
    return run_batch(images, out, settings, loaded=loaded, overwrite=overwrite, workers=workers,
                     scheduler=scheduler, progress=progress)


def run_batch(images, out, settings: Settings, *, loaded=None, overwrite=False, workers=None, scheduler=None,
              progress: bool | Callable[[Row], None] = False) -> Summary:
    settings = settings.checked()
    if workers is not None and scheduler:
        raise UserError("--workers starts a local Dask cluster and --scheduler uses a running one: give one of them")
    if workers is not None and int(workers) < 1:
        raise UserError(f"--workers {workers}: give at least 1 worker process")
    if scheduler:
        check_scheduler(scheduler)
    elif settings.device is not None:  # here, not on a cluster's workers, which may have other devices
        from microsam_fiji.models.load import check_device

        check_device(settings.device)  # --device mps without Apple's GPU, cuda:3 of one GPU: one line, now
    if workers is not None:
        workers, capped = worker_limit(int(workers), settings.model)
        if capped:
            warnings.warn(capped, UserWarning, stacklevel=3)
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    out = Path(out).expanduser()
    paths = expand_images(list(images))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # claim_jobs plans again, under the folder's lock, and warns then
        check_writable(out, plan_jobs(paths, out, settings.rois))
    jobs = claim_jobs(paths, out, settings.rois)
    key = settings.stamp_key()

    rows: dict[int, Row] = {}
    todo = []
    for index, job in enumerate(jobs):
        stamp = None if overwrite else current_stamp(job, key)
        if stamp is None:
            todo.append((index, job))
        else:
            rows[index] = Row(image=job.given, objects=stamp.get("objects"), seconds=stamp.get("seconds"),
                              engine=stamp.get("engine", ""), model=stamp.get("model", ""), status=SKIPPED,
                              labels=job.labels, rois=job.rois or "")
    report = Progress(len(jobs), progress, skipped=[rows[i] for i in sorted(rows)])

    def done(index: int, row: Row) -> None:
        rows[index] = row
        report(row)

    loads: dict[str, int] = {}
    timings: list[dict] = []
    finished = False
    try:
        if workers is not None or scheduler:  # the workers load the model themselves, from its source
            from microsam_fiji.batch.dask_runner import run_dask

            loads = run_dask(todo, settings, key, done, workers=workers, scheduler=scheduler, timings=timings)
        else:
            from microsam_fiji.batch.local import run_local

            loads = run_local(todo, settings, key, done, model=loaded)
        finished = True
    finally:
        report.close()
        final = [rows.get(i) or Row(image=job.given, status=FAILED, error="not segmented: the batch stopped early")
                 for i, job in enumerate(jobs)]
        path = out / SUMMARY_NAME
        if finished or rows:  # not when the model failed to load: nothing was tried
            write_csv(path, final)
        _remove_leftovers([job for _, job in todo])
        for _, job in todo:
            release(job)  # the claim of an image the batch never reached (stopped early, model not loaded)
    return Summary(rows=final, path=path, model_loads=loads, timings=timings)


def _remove_leftovers(jobs) -> None:
    """Temporary files of writes that a killed worker or process never finished (see tiff_io.atomic_write)."""
    for job in jobs:
        for target in (*job.outputs(), job.stamp):
            target = Path(target)
            for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
                try:
                    tmp.unlink()
                except OSError:
                    pass
