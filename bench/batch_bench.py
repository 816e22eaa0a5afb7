"""Many images, three ways, in one run: in this process, ``--workers 2`` (a local Dask cluster) and an external
``dask scheduler`` + 2 ``dask worker`` processes on 127.0.0.1.

    python bench/batch_bench.py [--images 8] [--size 256]

Prints per path: wall time and images per minute (model loading and cluster start-up included: what a user
waits for; the external cluster is started before timing, as a running cluster would be; both printed apart),
the model loads per worker (target: one each), and for the two Dask paths the per-image overhead of the distributed
path: on each worker the gap between one image's end and the next one's start (scheduling, the path and result
travelling) plus the delay until the client has the result, relative to an image's own time (target <= 5 %). Checks that
all three give identical labels (exit status 1 otherwise). With N workers on C cores each worker's torch uses
C/N threads: on a 2-core machine expect the Dask paths to match, not beat, the in-process rate."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]


def make_images(folder: Path, count: int, size: int) -> None:
    """Distinct crops of the stardist test image (flips and rotations when it runs out: no two pixel-identical)."""
    image = tifffile.imread(ROOT / "tests" / "data" / "img2d.tif")
    folder.mkdir(parents=True)
    step = max(1, (image.shape[0] - size) // 2)
    corners = [(y, x) for y in range(0, image.shape[0] - size + 1, step)
               for x in range(0, image.shape[1] - size + 1, step)]
    for i in range(count):
        y, x = corners[i % len(corners)]
        crop = np.rot90(image[y:y + size, x:x + size], k=(i // len(corners)) % 4)
        if (i // len(corners)) >= 4:
            crop = crop[::-1]
        tifffile.imwrite(folder / f"img{i:03d}.tif", np.ascontiguousarray(crop))


def overhead(timings: list[dict]) -> tuple[float, float]:
    """Mean per-image distributed overhead (s) and the mean image time (s), from the runner's timings."""
    per_worker = defaultdict(list)
    delays = []
    for t in timings:
        if "started" in t:
            per_worker[t["worker"]].append((t["started"], t["finished"]))
            delays.append(t["received"] - t["finished"])
    gaps = []
    for spans in per_worker.values():
        spans.sort()
        gaps += [max(0.0, nxt[0] - prev[1]) for prev, nxt in zip(spans, spans[1:])]
    seconds = [t["seconds"] for t in timings if t.get("seconds") is not None]
    return float(np.mean(gaps or [0.0]) + np.mean(delays or [0.0])), float(np.mean(seconds))


def start_cluster(folder: Path, workers: int, threads: int) -> tuple[list[subprocess.Popen], Path]:
    dask = Path(sys.executable).parent / "dask"
    scheduler_file = folder / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    log = open(folder / "dask.log", "w")
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)], stdout=log, stderr=log, env=env,
                              start_new_session=True)]
    while not scheduler_file.exists():
        time.sleep(0.2)
    for _ in range(workers):
        procs.append(subprocess.Popen([str(dask), "worker", "--scheduler-file", str(scheduler_file), "--nthreads",
                                       "1", "--no-dashboard", "--host", "127.0.0.1"], stdout=log, stderr=log,
                                      env=env, start_new_session=True))
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file), timeout="60s") as client:
        client.wait_for_workers(workers, timeout=300)
    return procs, scheduler_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8, help="images per path (default 8)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    from microsam_fiji.batch.api import segment_many

    cores = os.cpu_count() or 1
    print(f"{args.images} images of {args.size}x{args.size}, demo model, device {args.device}, {cores} cores")
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    images = work / "images"
    make_images(images, args.images, args.size)
    common = dict(model="demo", device=args.device, rois=True)
    results = {}

    def timed(name, **kwargs):
        start = time.perf_counter()
        summary = segment_many(images, work / name, **common, **kwargs)
        wall = time.perf_counter() - start
        assert not summary.failed, summary.failed
        results[name] = (wall, summary)
        loads = summary.model_loads
        line = (f"{name:>18}: {wall:7.1f} s  {60 * args.images / wall:6.2f} images/min  "
                f"model loads {sorted(loads.values())} ({len(loads)} {'worker' if len(loads) == 1 else 'workers'})")
        if summary.timings:
            extra, image_time = overhead(summary.timings)
            startup = sum(t.get("startup_seconds", 0.0) for t in summary.timings)
            load = max(t.get("load_seconds", 0.0) for t in summary.timings)
            line += (f"  overhead {extra * 1000:.0f} ms/image = {100 * extra / image_time:.2f} % of "
                     f"{image_time:.1f} s; cluster start {startup:.1f} s, model load {load:.1f} s")
        else:
            line += f"  {np.mean([r.seconds for r in summary.rows]):.1f} s/image"
        print(line, flush=True)

    timed("in process")
    timed(f"--workers {args.workers}", workers=args.workers)
    procs, scheduler_file = start_cluster(work, args.workers, max(1, cores // args.workers))
    try:
        timed("--scheduler", scheduler=str(scheduler_file))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    base_wall = results["in process"][0]
    for name, (wall, _) in results.items():
        print(f"{name:>18}: {base_wall / wall:.2f} x the in-process rate")
    same = True
    for path in sorted(images.iterdir()):
        ref = tifffile.imread(work / "in process" / f"{path.stem}_labels.tif")
        for name in results:
            same &= bool(np.array_equal(ref, tifffile.imread(work / name / f"{path.stem}_labels.tif")))
    print("labels identical on all paths" if same else "LABELS DIFFER between paths")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
