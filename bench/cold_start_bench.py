"""A cold ``microsam-fiji segment tests/data/img2d.tif`` (a new process: imports, model load, both passes, APG,
outputs) of this tree against another checkout (today's main), side by side, one run.

    git worktree add /tmp/oldmain <commit>          # the reference: the main to compare with
    python bench/cold_start_bench.py --reference /tmp/oldmain [--rounds 3]

Both trees run with the same Python and installed libraries (``PYTHONPATH=<tree>/src``), alternating which goes
first in each round; median and min-max per tree, the ratio of the medians. Then where this tree's cold run
spends its time before and after the first pixel is encoded (imports, model load, passes, the rest), measured in
one more cold process. "Cold" is a new process; the onnx backend's exported graphs are on disk from an earlier
run (the first run ever on a set of weights exports them: printed apart as "first run on new weights").
The load average is printed next to the numbers."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "tests" / "data" / "img2d.tif"

PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
import microsam_fiji.cli
t1 = time.perf_counter()
from microsam_fiji.models.load import load_model
model = load_model(None, device="cpu")
t2 = time.perf_counter()
import tifffile
from microsam_fiji.engines.state import image_state
from microsam_fiji.engines.segment import segment_with_scores
image = tifffile.imread(sys.argv[1])
image_state(model, image)
t3 = time.perf_counter()
segment_with_scores(image, model)
t4 = time.perf_counter()
print(json.dumps({"CLI imports": t1 - t0, "model load (with the imports it needs)": t2 - t1,
                  "encoder + decoder": t3 - t2, "APG": t4 - t3}))
"""


def cold_run(tree: Path, out: Path, env_extra: dict | None = None) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), **(env_extra or {}))
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "microsam_fiji.cli", "segment", str(IMAGE), "--out", str(out), "--quiet"],
                   env=env, check=True, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, required=True, help="a checkout of the main to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cold-start-"))
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})", flush=True)
    fresh_cache = {"MICROSAM_FIJI_CACHE": str(tmp / "graphs")}
    first = cold_run(ROOT, tmp / "first", fresh_cache)
    print(f"this tree, first run on new weights (exports the graphs): {first:.1f} s", flush=True)
    trees = {"reference": args.reference.resolve(), "this tree": ROOT}
    times: dict[str, list[float]] = {k: [] for k in trees}
    for r in range(args.rounds):
        for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
            times[name].append(cold_run(trees[name], tmp / name.replace(" ", "-"), fresh_cache))
            print(f"  round {r + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        print(f"{name:10} cold segment: median {med[name]:.1f} s [{min(values):.1f}-{max(values):.1f}]")
    print(f"speed-up: {med['reference'] / med['this tree']:.2f}x (target >= 1.3x)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **fresh_cache)
    for name, tree in trees.items():
        env["PYTHONPATH"] = str(tree / "src")
        out = subprocess.run([sys.executable, "-c", PHASES, str(IMAGE)], env=env, capture_output=True, text=True,
                             check=True, cwd=tree)
        phases = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:10} phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if med["reference"] / med["this tree"] >= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
