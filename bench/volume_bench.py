"""3D objects from a z-stack: our ``segment(volume, volume=True)`` vs micro-sam's ``automatic_3d_segmentation``, and a
threshold re-run on the whole volume.

    python bench/volume_bench.py                         # stardist img3d, all 31 slices, 1 warm-up + 3 timed runs
    python bench/volume_bench.py --slices 4 --runs 1     # a quick look (a smoke run on a busy machine)

Both sides run on the same volume, the same model object (its predictor and instance decoder: the same backend)
and start from nothing: our embedding cache is cleared before each of our timed runs, micro-sam computes its
embeddings in each call (no ``embedding_path``). micro-sam's side is its ``automatic_3d_segmentation`` with its
own APG generator (``get_instance_segmentation_generator(..., segmentation_mode="apg")``), ours is APG with the
fast engine, both merged by micro-sam's ``merge_instance_segmentation_3d``. Same warm-up and number of timed runs
per side, alternating which goes first; median and min-max printed, the ratio is of the medians. The re-run is our
call with other thresholds on the cached volume (target: at most 15 % of a first call). The load average is printed
before and after: numbers taken under load are no measurement. Exit status 1 when the two sides' instances differ
(same count, at least one, every object IoU >= 0.99 both ways) or a re-run encoded a plane."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

RERUN_TARGET = 0.15


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def spread(values: list[float]) -> str:
    arr = np.asarray(values)
    return f"{np.median(arr):8.2f} s ({arr.min():.2f}-{arr.max():.2f})"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}), {os.cpu_count()} cores"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT / "tests" / "data" / "img3d.tif", help="a ZYX TIFF")
    parser.add_argument("--slices", type=int, default=None, help="the first N slices only (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs per side (default 1)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default=None, help="default: the device's")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import tifffile
    import torch
    from micro_sam.instance_segmentation import get_instance_segmentation_generator
    from micro_sam.multi_dimensional_segmentation import automatic_3d_segmentation

    from microsam_fiji import load_model, segment

    from helpers.instance_match import assert_same_instances

    warnings.simplefilter("ignore")
    volume = tifffile.imread(args.image)
    volume = volume[: args.slices] if args.slices else volume
    model = load_model("demo", device=args.device, backend=args.backend)
    generator = get_instance_segmentation_generator(model.predictor, is_tiled=False, decoder=model.decoder,
                                                    segmentation_mode="apg")

    def ours():
        model.cache.clear()  # a first call: every plane encoded
        return segment(volume, model, volume=True)

    def micro_sams():
        return automatic_3d_segmentation(volume, model.predictor, generator, verbose=False)

    print(f"{args.image.name}: {volume.shape[0]} slices of {volume.shape[1]}x{volume.shape[2]} px; demo model "
          f"(vit_t), backend {model.backend}, device {model.device}, torch threads {torch.get_num_threads()}; "
          f"{args.warmup} warm-up + {args.runs} timed run(s) per side, alternating which goes first")
    print(f"before: {load()}", flush=True)
    sides = {"micro-sam": micro_sams, "ours": ours}
    times: dict[str, list[float]] = {name: [] for name in sides}
    labels: dict[str, np.ndarray] = {}
    for run in range(args.warmup + args.runs):
        order = list(sides) if run % 2 == 0 else list(sides)[::-1]
        for name in order:
            labels[name], seconds = timed(sides[name])
            if run >= args.warmup:
                times[name].append(seconds)
        print(f"  run {run + 1}{' (warm-up)' if run < args.warmup else ''} done, {load()}", flush=True)

    ok = True
    try:
        assert_same_instances(labels["micro-sam"], labels["ours"])
        agreement = f"same instances ({len(np.unique(labels['ours'])) - 1} objects, every IoU >= 0.99)"
    except AssertionError as err:
        ok, agreement = False, f"DIFFERENT INSTANCES: {err}"
    medians = {name: float(np.median(values)) for name, values in times.items()}
    print(f"  micro-sam automatic_3d_segmentation {spread(times['micro-sam'])}")
    print(f"  ours, volume=True                   {spread(times['ours'])}   "
          f"{medians['micro-sam'] / medians['ours']:.2f}x faster")
    print(f"  agreement: {agreement}")

    # tuning: the same volume again with other thresholds, every plane from the cache
    segment(volume, model, volume=True)  # the cache holds the volume (a timed run above may have been micro-sam's)
    misses = model.cache.misses
    reruns = [timed(lambda: segment(volume, model, volume=True, center=0.4, foreground=0.6))[1]
              for _ in range(args.runs)]
    encoded = model.cache.misses - misses
    ratio = float(np.median(reruns)) / medians["ours"]
    print(f"  re-run with other thresholds        {spread(reruns)}   {100 * ratio:.0f} % of a first call "
          f"(target <= {100 * RERUN_TARGET:.0f} %), planes encoded: {encoded}")
    print(f"after: {load()}")
    return 0 if ok and encoded == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
