"""What the Fiji bridge adds on top of segmentation, measured side by side in one run.

    xvfb-run -a python bench/bridge_overhead.py

Prints (1) the macro command run("micro-sam APG", ...) versus calling microsam_fiji.run on the same pixels with
the same loaded model and cached embeddings (the bridge's cost: ImagePlus -> numpy, labels -> ROIs -> ROI
Manager), and (2) ImagePlus <-> numpy for a 2048 x 2048 16-bit image versus a plain numpy copy."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tifffile


def best_of(n, fn):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from microsam_fiji import run
    from microsam_fiji.bridge import from_imageplus, run_macro, session, to_imageplus

    data = Path(__file__).resolve().parents[1] / "tests" / "data" / "img2d.tif"
    image = tifffile.imread(data)[384:512, 0:128].copy()
    s = session.start()
    model = s.model()
    tmp = Path("/tmp/microsam_fiji_bench.tif")
    tifffile.imwrite(tmp, image, imagej=True)
    n_objects = int(run(image, model).labels.max())  # warms the embedding cache
    imp = to_imageplus(image, title="bench")

    direct = best_of(3, lambda: run(image, model))
    macro = best_of(3, lambda: run_macro(f'close("*"); open("{tmp}"); run("micro-sam APG", "replace");'))
    print(f"segment {image.shape} ({n_objects} objects, cached embeddings): microsam_fiji.run {direct:.3f} s, "
          f"macro command {macro:.3f} s, ratio {macro / direct:.2f}")

    big = np.random.default_rng(0).integers(0, 65535, size=(2048, 2048), dtype=np.uint16)
    to_ij = best_of(10, lambda: to_imageplus(big))
    big_imp = to_imageplus(big)
    from_ij = best_of(10, lambda: from_imageplus(big_imp))
    copy = best_of(5, lambda: big.copy())
    print(f"2048x2048 uint16: to_imageplus {to_ij * 1e3:.1f} ms, from_imageplus {from_ij * 1e3:.1f} ms, "
          f"numpy copy {copy * 1e3:.1f} ms, ratios {to_ij / copy:.1f} / {from_ij / copy:.1f}")
    del imp


if __name__ == "__main__":
    main()
