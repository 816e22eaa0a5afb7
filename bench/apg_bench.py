"""APG: our "fast" engine vs micro-sam's own implementation, stage by stage, on the same model and images.

    python bench/apg_bench.py            # ours best of 2 runs, micro-sam once (it takes minutes)
    python bench/apg_bench.py --quick    # ours once
    python bench/apg_bench.py --spread   # and micro-sam against itself (batch_size 1 vs the default)

Cases (demo model, CPU unless CUDA is present):
  sparse  stardist img2d (512x512, real nuclei), the model's own instance decoder (UNETR);
  dense   img2d / mask2d tiled 2x2 (1024x1024, 500 nuclei) with an "oracle decoder": the decoder maps computed
          from the ground truth (torch_em's PerObjectDistanceTransform, what micro-sam trains the decoder on),
          so APG gets one prompt per seeded nucleus without a strong model;
  tiled   img2d / mask2d with an oracle decoder, tiles of 256x256 with a 64 pixel halo (4 tiles).
micro-sam's stages are its own functions, called as ``AutomaticPromptGenerator.generate`` (or the tiled one)
calls them: ``_derive_point_prompts``, ``batched_inference`` / ``batched_tiled_inference``, ``util.apply_nms``.
"state" (image encoder + instance decoder, or encoder only for the oracle cases) is the same code for both
engines and is counted in both end-to-end totals. Each case also prints how the two label images agree."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def micro_sam_stages(model, state, params) -> tuple[np.ndarray, dict]:
    from micro_sam import util
    from micro_sam.inference import batched_inference, batched_tiled_inference
    from micro_sam.instance_segmentation import _derive_point_prompts

    from microsam_fiji.segment import restore_generator

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


def fast_stages(model, state, params, repeats: int) -> tuple[np.ndarray, dict]:
    from microsam_fiji.fast import engine

    decoder = engine.default_decoder(model)
    t = {}
    points, t["prompts"] = timed(lambda: engine.prompts(state, params), repeats)
    (masks, shape), t["masks"] = timed(lambda: engine.apg_masks(model.predictor, state, params, points, decoder),
                                       repeats)
    (labels, _), t["nms"] = timed(lambda: engine.merge(masks, shape, params, state.tiled), repeats)
    t["n_prompts"] = len(points)
    return labels, t


def agreement(reference: np.ndarray, ours: np.ndarray) -> str:
    from instance_match import best_ious

    n_ref, n_ours = int(len(np.unique(reference)) - 1), int(len(np.unique(ours)) - 1)
    worst = min(min(best_ious(reference, ours).values(), default=1.0),
                min(best_ious(ours, reference).values(), default=1.0))
    same = float(np.mean(reference == ours))
    return f"objects {n_ref} vs {n_ours}, worst matched IoU {worst:.4f}, identical pixels {same:.6f}"


def make_cases(model, names):
    import tifffile

    from microsam_fiji.fast.oracle import oracle_state
    from microsam_fiji.segment import compute_state

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
            state, seconds = timed(lambda: oracle_state(model, big_image, big_mask))
            yield name, f"img2d 2x2 1024x1024, oracle decoder ({len(np.unique(big_mask)) - 1} nuclei)", state, seconds
        elif name == "tiled":
            state, seconds = timed(lambda: oracle_state(model, image, mask, tile_shape=(256, 256), halo=(64, 64)))
            yield name, "img2d 512x512 in 4 tiles (256 + 64 halo), oracle decoder", state, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="run our engine once instead of best of 2")
    parser.add_argument("--cases", default="sparse,dense,tiled", help="comma-separated: sparse,dense,tiled")
    parser.add_argument("--spread", action="store_true",
                        help="also run micro-sam with batch_size 1: how far micro-sam agrees with itself (float32 "
                             "rounding differs with the batch size), the yardstick for the agreement line")
    args = parser.parse_args(argv)

    import torch

    from microsam_fiji import load_model
    from microsam_fiji.params import resolve_params

    repeats = 1 if args.quick else 2
    model = load_model("demo")
    params = resolve_params("apg")
    print(f"device {model.device}, torch threads {torch.get_num_threads()}, demo model vit_t, default APG params, "
          f"load average {os.getloadavg()[0]:.1f} (other processes slow both engines alike only on average)")
    summary = []
    for name, description, state, state_s in make_cases(model, args.cases.split(",")):
        print(f"\n[{name}] {description}; state (encoder{'' if name == 'sparse' else ' only'}) {state_s:.2f} s")
        theirs, t_ms = micro_sam_stages(model, state, params)
        ours, t_fast = fast_stages(model, state, params, repeats)
        print(f"  prompts: micro-sam {t_ms['n_prompts']}, ours {t_fast['n_prompts']}")
        print(f"  {'stage':10s} {'micro-sam s':>12s} {'fast s':>10s} {'ratio':>8s}")
        for stage in ("prompts", "masks", "nms"):
            print(f"  {stage:10s} {t_ms[stage]:12.3f} {t_fast[stage]:10.3f} {t_ms[stage] / t_fast[stage]:7.1f}x")
        apg_ms = sum(t_ms[s] for s in ("prompts", "masks", "nms"))
        apg_fast = sum(t_fast[s] for s in ("prompts", "masks", "nms"))
        print(f"  {'APG':10s} {apg_ms:12.3f} {apg_fast:10.3f} {apg_ms / apg_fast:7.1f}x")
        e2e_ms, e2e_fast = state_s + apg_ms, state_s + apg_fast
        print(f"  {'+state':10s} {e2e_ms:12.3f} {e2e_fast:10.3f} {e2e_ms / e2e_fast:7.1f}x")
        print(f"  agreement: {agreement(theirs, ours)}")
        if args.spread:
            alone, _ = micro_sam_stages(model, state, {**params, "batch_size": 1})
            print(f"  micro-sam batch_size 1 vs {params['batch_size']}: {agreement(theirs, alone)}; "
                  f"ours vs micro-sam batch_size 1: {agreement(alone, ours)}")
        summary.append((name, t_ms["n_prompts"], apg_ms, apg_fast, e2e_ms, e2e_fast))
    print(f"\n{'case':8s} {'prompts':>8s} {'APG micro-sam':>14s} {'APG fast':>9s} {'ratio':>7s}"
          f" {'end-to-end micro-sam':>21s} {'fast':>7s} {'ratio':>7s}")
    for name, n, a_ms, a_fast, e_ms, e_fast in summary:
        print(f"{name:8s} {n:8d} {a_ms:13.2f}s {a_fast:8.2f}s {a_ms / a_fast:6.1f}x {e_ms:20.2f}s {e_fast:6.2f}s"
              f" {e_ms / e_fast:6.1f}x")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
