"""Does fine-tuning help? APG's mean segmentation accuracy on held-out images of one kind, before and after
``microsam_fiji.finetune`` on K annotated images of that kind, with the default time budget, on this machine.

Data (not in the repository; fetch it once, see ``--help`` of ``--data``): Usiigaci's phase-contrast cells
(github ``oist/Usiigaci`` @ 9501d80c, MIT licence, ``Mask R-CNN/train/set1..set45`` and ``val/set46..set50``:
1022x1024 uint16 ``raw.tif`` + ``instances_ids.png`` instance labels; the val sets also as ImageJ
``RoiSet.zip``). The demo model fails on phase contrast (its README: mSA near 0 on that kind) and never saw the
val sets. Fine-tuning uses K images of the training split only; the val split is only measured (APG with each
model's defaults, mSA over IoU 0.5..0.95 as micro-sam reports it, from elf).

    python bench/finetune_bench.py --data /work/shared/data/usiigaci                 # the real run: 15 minutes
    python bench/finetune_bench.py --data ... --iterations 1 --minutes 0 --train 2 --eval 1 --patch 256   # smoke

Prints and writes (``--out``) mSA before / after per held-out image and their mean, the gain, minutes and
iterations of training, peak memory of the process (``resource.getrusage``), cores and the load average before
and after (run it on a quiet machine: the budget buys fewer iterations under load)."""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path("/work/shared/data/usiigaci")
# K training sets spread over the training split (the time-lapse sets next to each other look alike)
DEFAULT_TRAIN = ("set1", "set10", "set19", "set28", "set37")
DEFAULT_EVAL = ("set46", "set47", "set48", "set49", "set50")


def _pairs(root: Path, split: str, names) -> list[tuple[Path, Path]]:
    pairs = []
    for name in names:
        folder = root / split / name
        image, labels = folder / "raw.tif", folder / "instances_ids.png"
        if not (image.is_file() and labels.is_file()):
            sys.exit(f"finetune_bench: {folder} lacks raw.tif / instances_ids.png: fetch oist/Usiigaci and copy "
                     f"'Mask R-CNN/{split}/{name}' there (see the module doc)")
        pairs.append((image, labels))
    return pairs


def msa_of(model_source, pairs) -> tuple[list[float], float]:
    """APG's mSA on each pair with the model's defaults (torch passes: the same code path for both models), and
    the seconds it took."""
    from elf.evaluation import mean_segmentation_accuracy
    from skimage.io import imread

    from microsam_fiji import load_model, segment
    from microsam_fiji.core.tiff_io import read_image

    model = load_model(model_source, device="cpu", backend="torch")
    started, scores = time.perf_counter(), []
    for image, labels in pairs:
        predicted = segment(read_image(image).data, model, "apg")
        scores.append(round(float(mean_segmentation_accuracy(predicted, imread(labels))), 4))
    return scores, time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"Usiigaci copy (default: {DEFAULT_DATA})")
    parser.add_argument("--train", type=int, default=len(DEFAULT_TRAIN), help="K training images (default: 5)")
    parser.add_argument("--eval", type=int, default=len(DEFAULT_EVAL), help="held-out images measured (default: 5)")
    parser.add_argument("--model", default=None, help="start model (default: the demo)")
    parser.add_argument("--minutes", type=float, default=None, help="time budget (default: finetune's, 15)")
    parser.add_argument("--iterations", type=int, help="iterations instead of / besides the budget")
    parser.add_argument("--patch", type=int, help="training patch side (default: finetune's)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/finetune_bench"), help="where the model goes")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    from microsam_fiji import finetune
    from microsam_fiji.core.machine import cpu_cores
    from microsam_fiji.training.finetune import DEFAULT_MINUTES

    train = _pairs(args.data, "train", DEFAULT_TRAIN[:args.train] if args.train <= len(DEFAULT_TRAIN)
                   else [f"set{i}" for i in range(1, args.train + 1)])
    held_out = _pairs(args.data, "val", DEFAULT_EVAL[:args.eval])
    load_before = os.getloadavg()
    print(f"cores {cpu_cores()}, load {load_before[0]:.2f}; training on {len(train)} images of the training split, "
          f"measuring on {len(held_out)} held-out images", flush=True)

    before, before_s = msa_of(args.model, held_out)
    print(f"start model: mSA {np.mean(before):.4f} {before} ({before_s:.0f} s)", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    out_model = args.work / "finetuned.pt"
    minutes = DEFAULT_MINUTES if args.minutes is None else (args.minutes or None)
    started = time.perf_counter()
    result = finetune([p[0] for p in train], [p[1] for p in train], out_model, model=args.model, minutes=minutes,
                      n_iterations=args.iterations, patch_shape=args.patch, overwrite=True,
                      data_description="Usiigaci phase contrast (oist/Usiigaci, MIT), training split",
                      progress=lambda step: print(step.line(), flush=True))
    train_minutes = (time.perf_counter() - started) / 60
    after, after_s = msa_of(out_model, held_out)
    load_after = os.getloadavg()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    report = {
        "data": str(args.data), "train_images": [str(p[0].parent.name) for p in train],
        "held_out_images": [str(p[0].parent.name) for p in held_out], "start_model": args.model or "demo",
        "msa_before": before, "msa_after": after, "mean_before": round(float(np.mean(before)), 4),
        "mean_after": round(float(np.mean(after)), 4), "gain": round(float(np.mean(after) - np.mean(before)), 4),
        "finetune_minutes": round(train_minutes, 2), "budget_minutes": minutes, "iterations": result.iterations,
        "stopped": result.stopped, "best_validation": result.best_validation,
        "validation_msa": [result.msa_before, result.msa_after], "settings": result.provenance.get("settings"),
        "peak_memory_gib": round(peak_gib, 2), "cores": cpu_cores(),
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in load_after],
    }
    print(f"held-out mSA {report['mean_before']:.4f} -> {report['mean_after']:.4f} (gain {report['gain']:+.4f}); "
          f"{result.iterations} iterations in {train_minutes:.1f} min (stopped by {result.stopped}); peak memory "
          f"{peak_gib:.1f} GiB; load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
