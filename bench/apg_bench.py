"""APG: our "fast" engine vs micro-sam's own implementation, stage by stage, on the same model and images.

    python bench/apg_bench.py                      # 1 warm-up + 3 timed runs per side (dense: minutes per run)
    python bench/apg_bench.py --runs 1 --cases sparse,tiled    # a quick look
    python bench/apg_bench.py --spread             # and micro-sam against itself (batch_size 1 vs the default)

Fair by construction: both engines get the same warm-up and the same number of timed runs, alternating which goes
first; each side's median and spread (min-max) are printed, the ratio is of the medians. Our engine starts every
run without its per-image decoder cache, as on a new image. Each case checks that the two label images hold the
same instances (count > 0, every object matched both ways with IoU >= 0.99, or one pixel apart where one pixel
is more than 1 %; differing pixels printed) and that each engine gives the same labels on every run; the exit
status is 1 when a check fails.

Cases (demo model, CPU unless CUDA is present):
  sparse  stardist img2d (512x512, real nuclei), the model's own instance decoder (UNETR);
  dense   img2d / mask2d tiled 2x2 (1024x1024, 500 nuclei) with an "oracle decoder": the decoder maps computed
          from the ground truth (torch_em's PerObjectDistanceTransform, what micro-sam trains the decoder on),
          so APG gets one prompt per seeded nucleus without a strong model;
  tiled   img2d / mask2d with an oracle decoder, tiles of 256x256 with a 64 pixel halo (4 tiles).
micro-sam's stages are its own functions, called as ``AutomaticPromptGenerator.generate`` (or the tiled one)
calls them: ``_derive_point_prompts``, ``batched_inference`` / ``batched_tiled_inference``, ``util.apply_nms``.
"state" (image encoder + instance decoder, or encoder only for the oracle cases) is the same code for both
engines, computed once per case and added to both end-to-end totals."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

STAGES = ("prompts", "masks", "nms")
MIN_IOU = 0.99  # README: same count, every object IoU >= 0.99


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def micro_sam_stages(model, state, params) -> tuple[np.ndarray, dict]:
    from micro_sam import util
    from micro_sam.inference import batched_inference, batched_tiled_inference
    from micro_sam.instance_segmentation import _derive_point_prompts

    from microsam_fiji.engines.micro_sam import restore_generator

    gen = restore_generator(model, "apg", state)  # sets the embeddings, as after initialize()
    t = {}
    prompts, t["prompts"] = timed(lambda: _derive_point_prompts(
        gen._foreground, gen._center_distances, gen._boundary_distances,
        foreground_threshold=params["foreground_threshold"],
        center_distance_threshold=params["center_distance_threshold"],
        boundary_distance_threshold=params["boundary_distance_threshold"]))
    common = dict(image=None, batch_size=params["batch_size"], return_instance_segmentation=False,
                  multimasking=params["multimasking"], **prompts)
    if state.tiled:
        preds, t["masks"] = timed(lambda: batched_tiled_inference(model.predictor, image_embeddings=state.embeddings,
                                                                  **common))
        shape = state.foreground.shape
    else:
        preds, t["masks"] = timed(lambda: batched_inference(model.predictor, mask_threshold=params["mask_threshold"],
                                                            **common))
        shape = None
    labels, t["nms"] = timed(lambda: util.apply_nms(preds, shape=shape, min_size=params["min_size"],
                                                    nms_thresh=params["nms_threshold"],
                                                    intersection_over_min=params["intersection_over_min"]))
    t["n_prompts"] = len(prompts["points"])
    return labels, t


def fast_stages(model, state, params) -> tuple[np.ndarray, dict]:
    from microsam_fiji.engines.fast import decoder as fast_decoder
    from microsam_fiji.engines.fast import engine

    decoder = engine.default_decoder(model)
    fast_decoder._TERMS_CACHE.clear()  # what our decoder keeps per image is computed in every timed run
    t = {}
    points, t["prompts"] = timed(lambda: engine.prompts(state, params))
    (masks, shape), t["masks"] = timed(lambda: engine.apg_masks(model.predictor, state, params, points, decoder))
    (labels, _), t["nms"] = timed(lambda: engine.merge(masks, shape, params, state.tiled))
    t["n_prompts"] = len(points)
    return labels, t


def agreement(reference: np.ndarray, ours: np.ndarray) -> tuple[bool, str]:
    """(same instances?, a line saying how the two label images agree). Same instances: the same number of
    objects (at least one), each matched both ways with IoU >= 0.99, or, for objects so small that one pixel
    costs more, one pixel apart (the rounding at the threshold that micro-sam shows against itself)."""
    from instance_match import worst_matches

    n_ref, n_ours = int(len(np.unique(reference)) - 1), int(len(np.unique(ours)) - 1)
    matches = worst_matches(reference, ours) + worst_matches(ours, reference)
    worst_iou, worst_pixels = min(matches, default=(1.0, 0))
    below = [pixels for iou, pixels in matches if iou < MIN_IOU]
    same = n_ref == n_ours > 0 and all(pixels <= 1 for pixels in below)
    differing = int(np.count_nonzero(reference != ours))
    return same, (f"objects {n_ref} vs {n_ours}, worst matched IoU {worst_iou:.4f} ({worst_pixels} pixel(s) "
                  f"apart), {len(below)} of {len(matches)} matches (both ways) below IoU {MIN_IOU}"
                  f"{' (each one pixel apart)' if below and same else ''}, differing pixels {differing} of "
                  f"{reference.size}")


def spread(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{np.median(values):8.3f} ({values.min():.3f}-{values.max():.3f})"


def make_cases(model, names):
    import tifffile

    from microsam_fiji.engines.state import compute_state

    from helpers.oracle import oracle_state

    image = tifffile.imread(ROOT / "tests" / "data" / "img2d.tif")
    mask = tifffile.imread(ROOT / "tests" / "data" / "mask2d.tif").astype(np.uint32)
    for name in names:
        if name == "sparse":
            state, seconds = timed(lambda: compute_state(model, image))
            yield name, "img2d 512x512, demo model decoder", state, seconds
        elif name == "dense":
            big_image = np.tile(image, (2, 2))
            big_mask = np.block([[mask, np.where(mask > 0, mask + 1000, 0)],
                                 [np.where(mask > 0, mask + 2000, 0), np.where(mask > 0, mask + 3000, 0)]])
            state, seconds = timed(lambda big_image=big_image, big_mask=big_mask: oracle_state(model, big_image,
            big_mask))
            yield name, f"img2d 2x2 1024x1024, oracle decoder ({len(np.unique(big_mask)) - 1} nuclei)", state, seconds
        elif name == "tiled":
            state, seconds = timed(lambda: oracle_state(model, image, mask, tile_shape=(256, 256), halo=(64, 64)))
            yield name, "img2d 512x512 in 4 tiles (256 + 64 halo), oracle decoder", state, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per engine first (default 1)")
    parser.add_argument("--cases", default="sparse,dense,tiled", help="comma-separated: sparse,dense,tiled")
    parser.add_argument("--spread", action="store_true",
                        help="also run micro-sam with batch_size 1: how far micro-sam agrees with itself (float32 "
                             "rounding differs with the batch size), the yardstick for the agreement line")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    unknown = set(args.cases.split(",")) - {"sparse", "dense", "tiled"}
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}: choose from sparse, dense, tiled")

    import torch

    from microsam_fiji.core.params import resolve_params
    from microsam_fiji.models.load import load_model

    model = load_model("demo")
    params = resolve_params("apg")
    print(f"device {model.device}, torch threads {torch.get_num_threads()}, demo model vit_t, default APG params; "
          f"{args.warmup} warm-up + {args.runs} timed run(s) per engine, alternating which goes first; "
          f"load average {os.getloadavg()[0]:.1f}")
    summary, failed = [], []
    for name, description, state, state_s in make_cases(model, args.cases.split(",")):
        print(f"\n[{name}] {description}; state (encoder{'' if name == 'sparse' else ' only'}) {state_s:.2f} s, "
              f"load average {os.getloadavg()[0]:.1f}")
        engines = {"micro-sam": lambda state=state: micro_sam_stages(model, state, params),
                   "fast": lambda state=state: fast_stages(model, state, params)}
        for i in range(args.warmup):
            for side in (("micro-sam", "fast") if i % 2 == 0 else ("fast", "micro-sam")):
                engines[side]()
        times = {side: [] for side in engines}
        labels = {side: [] for side in engines}
        for i in range(args.runs):
            for side in (("micro-sam", "fast") if (args.warmup + i) % 2 == 0 else ("fast", "micro-sam")):
                out, t = engines[side]()
                t["APG"] = sum(t[s] for s in STAGES)
                t["+state"] = state_s + t["APG"]
                times[side].append(t)
                labels[side].append(out)
        n_prompts = {side: times[side][0]["n_prompts"] for side in engines}
        print(f"  prompts: micro-sam {n_prompts['micro-sam']}, ours {n_prompts['fast']}")
        print(f"  {'stage':8s} {'micro-sam s, median (min-max)':>32s} {'fast s, median (min-max)':>32s} "
              f"{'ratio':>7s}")
        medians = {}
        for stage in (*STAGES, "APG", "+state"):
            ms, fast = ([t[stage] for t in times[side]] for side in ("micro-sam", "fast"))
            medians[stage] = (float(np.median(ms)), float(np.median(fast)))
            print(f"  {stage:8s} {spread(ms):>32s} {spread(fast):>32s} {medians[stage][0] / medians[stage][1]:6.1f}x")
        same, line = agreement(labels["micro-sam"][-1], labels["fast"][-1])
        print(f"  agreement: {line} -> {'same instances' if same else 'DIFFERENT INSTANCES'}")
        stable = {side: all(np.array_equal(x, labels[side][0]) for x in labels[side]) for side in engines}
        print(f"  every run the same labels: micro-sam {stable['micro-sam']}, fast {stable['fast']}")
        if not (same and all(stable.values())):
            failed.append(name)
        if args.spread:
            alone, _ = micro_sam_stages(model, state, {**params, "batch_size": 1})
            print(f"  micro-sam batch_size 1 vs {params['batch_size']}: "
                  f"{agreement(labels['micro-sam'][-1], alone)[1]}; "
                  f"ours vs micro-sam batch_size 1: {agreement(alone, labels['fast'][-1])[1]}")
        summary.append((name, n_prompts["micro-sam"], medians["APG"], medians["+state"]))
    print(f"\nmedians of {args.runs} run(s) per engine\n{'case':8s} {'prompts':>8s} {'APG micro-sam':>14s} "
          f"{'APG fast':>9s} {'ratio':>7s} {'end-to-end micro-sam':>21s} {'fast':>7s} {'ratio':>7s}")
    for name, n, (a_ms, a_fast), (e_ms, e_fast) in summary:
        print(f"{name:8s} {n:8d} {a_ms:13.2f}s {a_fast:8.2f}s {a_ms / a_fast:6.1f}x {e_ms:20.2f}s {e_fast:6.2f}s"
              f" {e_ms / e_fast:6.1f}x")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if failed:
        print(f"FAILED: the engines disagree (or are not repeatable) in: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
