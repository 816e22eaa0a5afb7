"""What the Fiji bridge adds on top of segmentation, measured side by side in one run.

    xvfb-run -a python bench/bridge_overhead.py [--runs 5]

Prints (1) the macro command run("micro-sam APG", ...) versus calling microsam_fiji.run on the same pixels with
the same loaded model and cached embeddings (the bridge's cost: ImagePlus -> numpy, labels -> ROIs -> ROI
Manager), the same number of runs each, alternating which goes first, as median (min-max); and checks that the
macro's ROIs fill back to exactly segment_with_scores()'s labels (exit status 1 when they do not); (2) ImagePlus <->
numpy for a
2048 x 2048 16-bit image versus a plain numpy copy."""
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


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alternating(runs: int, a, b) -> tuple[list[float], list[float]]:
    """``runs`` timings of each of ``a`` and ``b``, alternating which goes first."""
    times_a, times_b = [], []
    for i in range(runs):
        if i % 2 == 0:
            times_a.append(seconds(a))
            times_b.append(seconds(b))
        else:
            times_b.append(seconds(b))
            times_a.append(seconds(a))
    return times_a, times_b


def spread(values, scale: float = 1.0, unit: str = "s", digits: int = 3) -> str:
    v = np.asarray(values) * scale
    return f"{np.median(v):.{digits}f} {unit} ({v.min():.{digits}f}-{v.max():.{digits}f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side (default 5)")
    args = parser.parse_args(argv)

    from bridge_helpers import rois_as_labels
    from jpype import JClass

    from microsam_fiji.engines.segment import segment_with_scores
    from microsam_fiji.imagej import from_imageplus, run_macro, session, to_imageplus

    if not os.environ.get("DISPLAY"):
        print("needs a display for the ROI Manager and macros: run under xvfb-run -a", file=sys.stderr)
        return 2
    image = tifffile.imread(ROOT / "tests" / "data" / "img2d.tif")[384:512, 0:128].copy()
    s = session.start()
    model = s.model()
    tmp = Path("/tmp/microsam_fiji_bench.tif")
    tifffile.imwrite(tmp, image, imagej=True)
    expected = segment_with_scores(image, model).labels  # also warms the embedding cache
    code = f'close("*"); open("{tmp}"); run("micro-sam APG", "replace");'
    rm = JClass("ij.plugin.frame.RoiManager").getRoiManager()  # the one the macro command fills
    run_macro(code)  # warm-up of the macro side, as segment_with_scores() above was
    same = np.array_equal(rois_as_labels(rm.getRoisAsArray(), image.shape), expected)

    direct, macro = alternating(args.runs, lambda: segment_with_scores(image, model), lambda: run_macro(code))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs per side after one warm-up, alternating")
    print(f"segment {image.shape} ({int(expected.max())} objects, cached embeddings): microsam_fiji.run "
          f"{spread(direct)}, macro command {spread(macro)}, ratio of medians "
          f"{np.median(macro) / np.median(direct):.2f}")
    print(f"macro ROIs fill back to segment_with_scores()'s labels exactly: {same}")

    big = np.random.default_rng(0).integers(0, 65535, size=(2048, 2048), dtype=np.uint16)
    big_imp = to_imageplus(big)
    to_ij, copy = alternating(3 * args.runs, lambda: to_imageplus(big), lambda: big.copy())
    from_ij, _ = alternating(3 * args.runs, lambda: from_imageplus(big_imp), lambda: None)
    same_pixels = np.array_equal(from_imageplus(to_imageplus(big)).data, big)
    print(f"2048x2048 uint16 ({3 * args.runs} runs each): to_imageplus {spread(to_ij, 1e3, 'ms', 1)}, "
          f"from_imageplus {spread(from_ij, 1e3, 'ms', 1)}, numpy copy {spread(copy, 1e3, 'ms', 1)}, "
          f"ratios of medians {np.median(to_ij) / np.median(copy):.1f} / {np.median(from_ij) / np.median(copy):.1f}; "
          f"round trip exact: {same_pixels}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if not (same and same_pixels):
        print("FAILED: the bridge's output differs from segment_with_scores()'s labels or the image's pixels")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
