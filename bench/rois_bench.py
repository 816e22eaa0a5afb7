"""Label image -> ImageJ ROIs: ours (``labels_to_rois``) vs ImageJ's ThresholdToSelection per label, side by side.

    python bench/rois_bench.py            # 1,000 and 10,000 objects

ImageJ's side is the fast way to do it by hand in ImageJ 1.x: for each label, crop the label image to the label's
bounding box, threshold that id, ``ThresholdToSelection.convert`` and move the ROI back; run from Python through
JPype in the same process (headless JVM, ij.jar). The crop boxes are computed in numpy and not timed. For context,
up to 1,000 objects it also times what macros usually do: threshold the whole image at each id (one pass). Our side
times ``labels_to_rois`` and, separately, writing the RoiSet.zip. Each side runs ``--repeat`` times (default 3)
and the best time counts, which leaves out the JVM's JIT warm-up and first-touch memory costs on both sides. Both
produce one ROI per label; ours are checked against ImageJ's masks on a sample."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_labels(n: int, cell: int = 16, seed: int = 0) -> np.ndarray:
    """``n`` blobs of ~100-200 pixels on a grid, grown until they touch (like segmented nuclei in a dense field)."""
    from skimage.segmentation import expand_labels

    side = int(np.ceil(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    lab = np.zeros((side * cell, side * cell), np.uint32)
    yy, xx = np.mgrid[0:cell, 0:cell]
    for k in range(n):
        i, j = divmod(k, side)
        cy, cx = rng.uniform(cell * 0.35, cell * 0.65, 2)
        r = rng.uniform(cell * 0.25, cell * 0.45)
        blob = (yy - cy) ** 2 + ((xx - cx) * rng.uniform(0.7, 1.3)) ** 2 < r * r
        lab[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell][blob] = k + 1
    return expand_labels(lab, 2)


def imagej_threshold_loop(labels: np.ndarray) -> tuple[float, list]:
    from jpype import JArray, JClass, JFloat
    from scipy import ndimage as ndi

    FloatProcessor = JClass("ij.process.FloatProcessor")
    ImageProcessor = JClass("ij.process.ImageProcessor")
    tts = JClass("ij.plugin.filter.ThresholdToSelection")()
    h, w = labels.shape
    ip = FloatProcessor(w, h, JArray(JFloat)(labels.astype(np.float32).ravel()))
    boxes = ndi.find_objects(labels)
    start = time.perf_counter()
    rois = []
    for label, box in enumerate(boxes, 1):
        if box is None:
            continue
        ys, xs = box
        ip.setRoi(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
        crop = ip.crop()
        crop.setThreshold(label, label, ImageProcessor.NO_LUT_UPDATE)
        roi = tts.convert(crop)
        roi.setLocation(roi.getXBase() + xs.start, roi.getYBase() + ys.start)
        rois.append(roi)
    return time.perf_counter() - start, rois


def imagej_full_image_loop(labels: np.ndarray) -> float:
    """What ImageJ macros usually do: threshold the whole image at each id and create the selection."""
    from jpype import JArray, JClass, JFloat

    FloatProcessor = JClass("ij.process.FloatProcessor")
    ImageProcessor = JClass("ij.process.ImageProcessor")
    tts = JClass("ij.plugin.filter.ThresholdToSelection")()
    h, w = labels.shape
    ip = FloatProcessor(w, h, JArray(JFloat)(labels.astype(np.float32).ravel()))
    start = time.perf_counter()
    for label in range(1, int(labels.max()) + 1):
        ip.setThreshold(label, label, ImageProcessor.NO_LUT_UPDATE)
        tts.convert(ip)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full-image-max", type=int, default=1000,
                        help="also time the whole-image threshold loop up to this many objects (it is slow)")
    args = parser.parse_args(argv)

    from microsam_fiji.imagej.jvm import start_imagej
    from microsam_fiji.rois.encode import labels_to_rois
    from microsam_fiji.rois.roiset import write_rois

    start_imagej(headless=True)
    from jpype import JClass

    RoiDecoder = JClass("ij.io.RoiDecoder")
    labels_to_rois(synthetic_labels(100))  # warm-up (imports, first numpy calls)
    print(f"{'objects':>8} {'image':>10} {'ours (s)':>9} {'+zip (s)':>9} {'ImageJ crop loop (s)':>21} "
          f"{'ratio':>6} {'ImageJ full-image loop (s)':>27} {'ratio':>6}")
    for n in args.objects:
        labels = synthetic_labels(n)
        ours = zipped = theirs = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            rois = labels_to_rois(labels)
            ours = min(ours, time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                write_rois(Path(tmp) / "RoiSet.zip", rois)
                zipped = min(zipped, time.perf_counter() - t0)
            seconds, jrois = imagej_threshold_loop(labels)
            theirs = min(theirs, seconds)
        assert len(rois) == len(jrois) == n
        # sample check: ImageJ's mask of our ROI == ImageJ's mask of its own ROI
        for k in range(0, n, max(1, n // 50)):
            a = RoiDecoder(rois[k].tobytes(), "a.roi").getRoi()
            b = jrois[k]
            same_bounds = a.getBounds().equals(b.getBounds())
            assert same_bounds and np.array_equal(np.asarray(a.getMask().getPixels()),
                                                  np.asarray(b.getMask().getPixels())), k
        shape = "x".join(map(str, labels.shape))
        line = f"{n:>8} {shape:>10} {ours:>9.3f} {zipped:>9.3f} {theirs:>21.3f} {theirs / ours:>5.1f}x"
        if n <= args.full_image_max:
            full = imagej_full_image_loop(labels)
            line += f" {full:>27.3f} {full / ours:>5.0f}x"
        print(line)


if __name__ == "__main__":
    main()
