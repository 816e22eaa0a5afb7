"""Run a batch on Dask (``dask.distributed``): a local cluster of worker processes, or a running scheduler.

Images travel as paths and the workers write the outputs (a shared file system on a cluster). A worker plugin
loads the model once per worker, on its first image (a lock: one load however many threads), and keeps it for
the rest of the batch; the model's own lock lets one image at a time use it (a SAM predictor holds per-image
state). When a worker dies, the scheduler re-runs its
images on another worker; outputs are written atomically under fixed names and each image's row is taken once,
so nothing is lost or duplicated."""
from __future__ import annotations

import logging
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Callable, cast

from distributed import WorkerPlugin

from microsam_fiji.batch.job import segment_image
from microsam_fiji.batch.plan import Job
from microsam_fiji.batch.settings import Settings
from microsam_fiji.batch.summary import FAILED, Row
from microsam_fiji.core.errors import UserError, one_line
from microsam_fiji.core.machine import cpu_cores


class ModelPlugin(WorkerPlugin):
    """Holds one loaded model per worker; ``loads`` counts how often it was loaded (the bench checks: once)."""

    def __init__(self, name: str, settings: Settings, torch_threads: int | None = None):
        self.name = name
        self.settings = settings
        self.torch_threads = torch_threads

    def setup(self, worker) -> None:
        self.lock = threading.Lock()
        self.model = None
        self.loads = 0
        self.load_seconds = 0.0
        self.device = self.settings.device
        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)
        if self.device == "cuda":  # several GPUs: worker i takes GPU i (modulo their number)
            import torch

            count = torch.cuda.device_count()
            index = worker.name if isinstance(worker.name, int) else None
            if count > 1 and index is not None:
                self.device = f"cuda:{index % count}"

    def teardown(self, worker) -> None:
        self.model = None

    def get_model(self):
        if self.model is None:
            from microsam_fiji.models.load import load_model

            s = self.settings
            start = time.perf_counter()
            self.model = load_model(s.model, model_type=s.model_type, device=self.device, backend=s.backend)
            self.loads += 1
            self.load_seconds += time.perf_counter() - start
        return self.model


def _segment_on_worker(plugin_name: str, job: Job, settings: Settings, key: dict
                       ) -> tuple[Row, dict, list[str]]:
    """The row; when the image started and ended on which worker (wall clock: the bench derives the scheduling
    overhead between images from it); and the image's warnings, which the client warns again."""
    from distributed import get_worker

    worker = get_worker()
    plugin = cast(ModelPlugin, worker.plugins[plugin_name])
    with plugin.lock:
        model = plugin.get_model()
    started = time.time()
    # the image's warnings (series, alpha, rescaling, ...) go back with its row: a worker process's own stderr
    # is not where the user looks (one task per worker at a time here: the global warnings state is ours)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        row = segment_image(job, model, settings, key)
    said = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
    return row, {"worker": worker.address, "started": started, "finished": time.time()}, said


def _loads(dask_worker, plugin_name: str) -> tuple[int, float]:
    plugin = dask_worker.plugins.get(plugin_name)
    return getattr(plugin, "loads", 0), getattr(plugin, "load_seconds", 0.0)


CONNECT_S = 30.0


def _bounded(connect, scheduler: str):
    """``connect()`` with a deadline: Client's own timeout covers the TCP connect, not a service that accepts the
    connection and never answers Dask's handshake (a web server on the port), which would hang the batch."""
    result: dict = {}

    def attempt():
        try:
            result["client"] = connect()
        except BaseException as err:  # noqa: BLE001 - handed to the caller, raised there
            result["error"] = err

    thread = threading.Thread(target=attempt, daemon=True)  # daemon: a hung handshake does not keep us alive
    thread.start()
    thread.join(CONNECT_S)
    if thread.is_alive():
        raise UserError(f"no Dask scheduler answered at '{scheduler}' within {CONNECT_S:.0f} s (something listens "
                        "there, but it is not a Dask scheduler): pass the address 'dask scheduler' prints, e.g. "
                        "tcp://host:8786")
    if "error" in result:
        raise result["error"]
    return result["client"]


def _client(workers: int | None, scheduler: str | None, settings: Settings):
    """A Client plus what to close after the batch, and the torch threads for a cluster we start ourselves."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            if Path(scheduler).expanduser().is_file():  # a scheduler file (see workers.check_scheduler)
                return _bounded(lambda: Client(scheduler_file=str(Path(scheduler).expanduser()), timeout="20s"),
                                scheduler), None, None
            return _bounded(lambda: Client(scheduler, timeout="20s"), scheduler), None, None
        except UserError:
            raise
        except (OSError, TimeoutError, ValueError) as err:
            raise UserError(f"cannot reach the Dask scheduler at '{scheduler}' ({one_line(err)}): start one with "
                            "'dask scheduler' and pass the address it prints, e.g. tcp://host:8786") from None
    if settings.device is None or settings.device.startswith("cuda"):
        from microsam_fiji.models.model import resolve_device

        resolve_device(settings.device)  # no GPU for --device cuda: one line now, not one per worker
    workers = workers or 1  # capped at the machine by run_batch (workers.worker_limit)
    threads = max(1, cpu_cores() // workers)
    # one task slot per worker (the model is used by one image at a time); torch gets the worker's cores
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster, threads


def run_dask(todo: list[tuple[int, Job]], settings: Settings, key: dict, done: Callable[[int, Row], None], *,
             workers: int | None = None, scheduler: str | None = None, timings: list | None = None
             ) -> dict[str, int]:
    """Segment ``todo`` on Dask, calling ``done(index, row)`` as images finish; return model loads per worker.
    ``timings`` (a list) receives per image: worker, started, finished, received; per worker its model-load
    seconds (``load_seconds``); and the seconds to connect or start the cluster (``startup_seconds``)."""
    if not todo:
        return {}
    from distributed import as_completed

    start = time.perf_counter()
    client, cluster, threads = _client(workers, scheduler, settings)
    if timings is not None:
        timings.append({"startup_seconds": time.perf_counter() - start})
    plugin_name = f"microsam-fiji-model-{uuid.uuid4().hex[:8]}"  # one per batch: batches may share a cluster
    try:
        client.register_plugin(ModelPlugin(plugin_name, settings, threads), name=plugin_name)
        futures = {}
        for index, job in todo:
            future = client.submit(_segment_on_worker, plugin_name, job, settings, key,
                                   key=f"microsam-segment-{plugin_name[-8:]}-{index}", pure=False)
            futures[future] = (index, job)
        try:
            for future in as_completed(futures):
                index, job = futures[future]
                try:
                    row, timing, said = future.result()
                    for message in said:
                        warnings.warn(message, UserWarning, stacklevel=2)  # as the local runner shows them
                    if timings is not None:
                        timings.append({**timing, "image": job.given, "seconds": row.seconds,
                                        "received": time.time()})
                except UserError:  # the model itself cannot be loaded: every image would fail alike
                    raise
                except Exception as err:  # noqa: BLE001 - e.g. KilledWorker: the image took down workers allowed-failures times
                    row = Row(image=job.given, engine=settings.engine or "", model=str(settings.model or "demo"),
                              status=FAILED, error=f"the Dask workers failed on it ({one_line(err)})")
                done(index, row)
        finally:
            client.cancel(list(futures))
        loads = client.run(_loads, plugin_name=plugin_name)
        client.unregister_worker_plugin(plugin_name)  # frees the model on a long-lived cluster
        if timings is not None:
            timings.extend({"worker": w, "load_seconds": s} for w, (_, s) in loads.items())
        return {worker: n for worker, (n, _) in loads.items()}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
