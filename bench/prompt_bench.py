"""Correcting APG with prompts: the time of one point prompt on a warm image against a new-image APG call, one run.

    xvfb-run -a python bench/prompt_bench.py [--runs 5] [--images 3]

For each of ``--images`` 256x256 nuclei crops (demo model, this machine's CPU): (1) APG on the new image (image
encoder + instance decoder + APG: what a user waits for first), then (2) ``--runs`` single-point prompts on
objects APG found, through the Python API (``segment_from_prompts``) and through the in-process macro command
``run("micro-sam Prompt", ...)`` (ImageJ in this process), alternating which goes first; then (3) the same prompts
through the plugin and its warm worker (``java -jar ij.jar -batch`` on an ``install-fiji`` folder; times taken
inside the macro with ``getTime()``, after one APG call per image). Prints median (min-max),
the load average next to the numbers, and checks that every prompt encoded nothing (exit status 1 otherwise) and
that each prompt gives micro-sam's own ``segment_from_points`` mask. Target (issue 18): <= 0.5 s per point."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def spread(values) -> str:
    v = np.asarray(values)
    return f"{np.median(v):.3f} s ({v.min():.3f}-{v.max():.3f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="prompts per image and side (default 5)")
    parser.add_argument("--images", type=int, default=3, help="new images (default 3)")
    args = parser.parse_args(argv)

    from micro_sam import prompt_based_segmentation as pbs
    from scipy import ndimage

    from microsam_fiji import run, segment_from_prompts
    from microsam_fiji.engines.state import image_state
    from microsam_fiji.imagej import run_macro, session

    if not os.environ.get("DISPLAY"):
        print("needs a display for ImageJ's ROI Manager: run under xvfb-run -a", file=sys.stderr)
        return 2
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    stardist = tifffile.imread(ROOT / "tests" / "data" / "img2d.tif")
    s = session.start()
    model = s.models.model()
    apg_times, api_times, macro_times, bad = [], [], [], 0
    points: dict[Path, list[tuple[int, int]]] = {}
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "microsam-prompt-bench"
    folder.mkdir(exist_ok=True)
    for k in range(args.images):
        y0, x0 = [(0, 0), (256, 256), (0, 256), (256, 0)][k % 4]
        crop = stardist[y0:y0 + 256, x0:x0 + 256].copy()
        path = folder / f"crop{k}.tif"
        tifffile.imwrite(path, crop, imagej=True)
        start = time.perf_counter()
        labels = run(crop, model).labels
        apg_times.append(time.perf_counter() - start)
        centres = [tuple(int(c) for c in ndimage.center_of_mass(labels == i)) for i in np.unique(labels)[1:]]
        run_macro(f'close("*"); open("{path}"); roiManager("reset");')
        embeddings = image_state(model, crop).embeddings
        points[path] = [centres[r % len(centres)] for r in range(args.runs)]
        for r in range(args.runs):
            y, x = centres[r % len(centres)]

            def api(crop=crop, y=y, x=x):
                return segment_from_prompts(crop, model, points=[[y, x]])

            def macro(x=x, y=y):
                run_macro(f'makePoint({x}, {y}); run("micro-sam Prompt", "");')

            for first in ((api, macro) if r % 2 == 0 else (macro, api)):
                t = time.perf_counter()
                out = first()
                (api_times if first is api else macro_times).append(time.perf_counter() - t)
                if first is api:
                    expected = pbs.segment_from_points(model.predictor, np.array([[y, x]]), np.array([1]),
                                                       image_embeddings=embeddings)[0].astype(bool)
                    bad += int(out.encoded != 0 or not np.array_equal(out.labels == 1, expected))
    plugin_apg, plugin_times, plugin_encoded = plugin_path(folder, points)
    bad += sum(1 for e in plugin_encoded if e != 0)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"new image, APG (encoder + decoder + APG): {spread(apg_times)}  [{len(apg_times)} images]")
    print(f"new image, APG through the plugin:        {spread(plugin_apg)}  [{len(plugin_apg)} images]")
    print(f"one point prompt, plugin (warm worker):  {spread(plugin_times)}  [{len(plugin_times)} prompts]")
    print(f"one point prompt, Python API:            {spread(api_times)}  [{len(api_times)} prompts]")
    print(f"one point prompt, macro (in process):    {spread(macro_times)}  [{len(macro_times)} prompts]")
    print(f"prompt / new-image APG: {np.median(api_times) / np.median(apg_times):.3f} (API), "
          f"{np.median(macro_times) / np.median(apg_times):.3f} (macro); target <= 0.5 s per point: "
          f"{'met' if max(map(np.median, (api_times, macro_times, plugin_times))) <= 0.5 else 'NOT met'}")
    if bad:
        print(f"{bad} prompts encoded again or differ from micro-sam's segment_from_points", file=sys.stderr)
        return 1
    return 0


def plugin_path(folder: Path, points: dict[Path, list[tuple[int, int]]]):
    """APG then the same point prompts on each image through the plugin in ImageJ started as a user does: seconds
    per APG call, per prompt, and each prompt's ``encoded`` (0: the worker's cached embeddings served it)."""
    import subprocess

    from fiji_plugin_bench import (  # the plugin bench's ImageJ start and print() reader
        LAST,
        run_imagej,
    )

    fiji = folder / "ImageJ"
    (fiji / "plugins").mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "microsam_fiji.cli", "install-fiji", str(fiji)], check=True,
                   capture_output=True)
    lines = []
    for i, (path, centres) in enumerate(points.items()):
        lines += [f'open("{path}");', "t = getTime();", 'run("micro-sam APG", "replace");',
                  f'print("apg{i}=" + (getTime() - t) / 1000);']
        for r, (y, x) in enumerate(centres):
            lines += [f"makePoint({x}, {y});", "t = getTime();", 'run("micro-sam Prompt", "");',
                      f'print("prompt{i}_{r}=" + (getTime() - t) / 1000);',
                      f'print("encoded{i}_{r}=" + call("{LAST}", "encoded"));']
        lines.append("close();")
    values = run_imagej(fiji, "\n".join(lines) + "\n", folder)
    apg = [v for k, v in values.items() if k.startswith("apg")]
    prompts = [v for k, v in values.items() if k.startswith("prompt")]
    encoded = [int(v) for k, v in values.items() if k.startswith("encoded")]
    if not apg or len(prompts) != sum(len(c) for c in points.values()):
        raise SystemExit(f"the plugin run gave {len(prompts)} prompt times: {values}")
    return apg, prompts, encoded


if __name__ == "__main__":
    sys.exit(main())
