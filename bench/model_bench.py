"""The model's two CPU-heavy passes (SAM's image encoder, the UNETR instance decoder) through each way of running
them, on one machine in one run: what ``models/backends`` chose its CPU default from.

    python bench/model_bench.py                                  # vit_t demo and a random vit_b, 512 and 1024
    python bench/model_bench.py --models vit_t --reps 2 --variants eager,onnx    # a quick look

Variants (each on the same weights, alternating which runs first in every round, median and min-max of
``--reps`` timed rounds after one warm-up):
  eager          PyTorch eager, as micro-sam runs it (today's default; the reference);
  channels-last  eager with the weights and inputs in channels-last memory format (oneDNN's preferred layout);
  denormal       eager with ``torch.set_flush_denormal(True)`` and intra-op threads = cores;
  compile        ``torch.compile`` (inductor, CPU) of both passes; its compile time is printed apart;
  onnx           ONNX Runtime (all graph optimisations, threads = cores) on the graphs models/backends exports.
Each image size is its own row: SAM pads every image to 1024 x 1024, so both sizes feed the passes the same
shapes (the table shows it); the instance decoder's output is resized to each image's shape.

Agreement with eager, per variant: max |diff| of the embeddings and of the three decoder maps, and whether APG
(the fast engine, micro-sam's parameters) on the variant's maps gives eager's instances: same count, every
object IoU >= 0.99, scores within 1e-5 (the rule a default must meet). The load average is printed before and
after: run it on a quiet machine."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

VARIANTS = ("eager", "channels-last", "denormal", "compile", "onnx")


def build_model(source, variant: str):
    """A Model whose passes run as ``variant`` (the weights are ``source``'s)."""
    import torch

    from microsam_fiji.models.load import load_model

    model = load_model(source, device="cpu", backend="onnx" if variant == "onnx" else "torch")
    if variant == "channels-last":
        model.predictor.model.image_encoder.to(memory_format=torch.channels_last)
        model.decoder.to(memory_format=torch.channels_last)
    elif variant == "compile":
        encoder, decoder = model.predictor.model.image_encoder, model.decoder
        # the bound methods compiled: the modules stay (their img_size, their hooks), their forwards are graphs
        encoder.forward = torch.compile(encoder.forward)
        decoder._forward_impl = torch.compile(decoder._forward_impl)
    return model


def passes(model, variant: str, image: np.ndarray) -> tuple[dict[str, float], object]:
    """Seconds of the encoder pass and of the decoder pass on ``image``, and the state they give."""
    import torch

    from microsam_fiji.engines.state import compute_state

    times: dict[str, float] = {}
    encoder, decoder = model.predictor.model.image_encoder, model.decoder
    enc_call, dec_call = encoder.__class__.__call__, decoder.__class__.__call__
    if variant == "denormal":
        torch.set_flush_denormal(True)
        torch.set_num_threads(os.cpu_count() or 1)

    def timed_call(name, call):
        def wrapper(self, *args, **kwargs):
            if variant == "channels-last" and args and getattr(args[0], "dim", lambda: 0)() == 4:
                args = (args[0].contiguous(memory_format=torch.channels_last),) + args[1:]
            start = time.perf_counter()
            out = call(self, *args, **kwargs)
            times[name] = times.get(name, 0.0) + time.perf_counter() - start
            return out
        return wrapper

    # time the two calls micro-sam makes (the predictor's set_image, the generator's initialize), nothing else
    type(encoder).__call__ = timed_call("encoder", enc_call)
    type(decoder).__call__ = timed_call("decoder", dec_call)
    try:
        with torch.no_grad():
            state = compute_state(model, image)
    finally:
        type(encoder).__call__, type(decoder).__call__ = enc_call, dec_call
        if variant == "denormal":
            torch.set_flush_denormal(False)
    return times, state


def agreement(reference_state, state, model, reference_model) -> dict[str, object]:
    from instance_match import best_ious

    from microsam_fiji.core.params import resolve_params
    from microsam_fiji.engines.registry import ENGINE_IMPLS

    emb = np.abs(np.asarray(state.embeddings["features"]) - np.asarray(reference_state.embeddings["features"]))
    maps = max(float(np.abs(getattr(state, k) - getattr(reference_state, k)).max())
               for k in ("foreground", "center_distances", "boundary_distances"))
    params = resolve_params("apg", {})
    ref_labels, ref_scores = ENGINE_IMPLS["fast"](reference_model, "apg", reference_state, params)
    labels, scores = ENGINE_IMPLS["fast"](model, "apg", state, params)
    n = int(ref_labels.max())
    ious = best_ious(ref_labels, labels) if n else {}
    diffs = []
    for label, score in ref_scores.items():
        values, counts = np.unique(labels[ref_labels == label], return_counts=True)
        diffs.append(abs(score - scores.get(int(values[np.argmax(counts)]), np.inf)))
    same = (n > 0 and int(labels.max()) == n and min(ious.values()) >= 0.99 and max(diffs, default=0) <= 1e-5)
    return {"embeddings": float(emb.max()), "maps": maps, "objects": f"{int(labels.max())}/{n}",
            "min IoU": min(ious.values()) if ious else float("nan"), "score": max(diffs, default=0.0),
            "same instances": same}


def images(sizes: list[int]) -> dict[int, np.ndarray]:
    import tifffile

    base = tifffile.imread(ROOT / "tests" / "data" / "img2d.tif")  # 512 x 512 real nuclei
    out = {}
    for size in sizes:
        reps = -(-size // base.shape[0])
        out[size] = np.tile(base, (reps, reps))[:size, :size].copy()
    return out


def source_for(name: str, tmp: Path) -> str:
    if name == "vit_t":
        return "demo"
    from conftest import build_random_checkpoint

    path = tmp / f"random_{name}.pt"
    if not path.exists():
        build_random_checkpoint(path, name)
    return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="vit_t,vit_b")
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/microsam-fiji-model-bench"))
    args = ap.parse_args()
    os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")
    args.tmp.mkdir(parents=True, exist_ok=True)
    import torch

    variants = args.variants.split(",")
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()}, torch threads: "
          f"{torch.get_num_threads()}, torch {torch.__version__})", flush=True)
    failed = False
    for name in args.models.split(","):
        source = source_for(name, args.tmp)
        models = {}
        for v in variants:
            start = time.perf_counter()
            models[v] = build_model(source, v)
            print(f"{name} {v}: ready in {time.perf_counter() - start:.1f} s (backend {models[v].backend})",
                  flush=True)
        for size, image in images([int(s) for s in args.sizes.split(",")]).items():
            times: dict[str, dict[str, list[float]]] = {v: {"encoder": [], "decoder": []} for v in variants}
            states = {}
            for v in variants:  # warm-up (torch.compile compiles here)
                start = time.perf_counter()
                model = models[v]
                model.cache.clear()
                _, states[v] = passes(model, v, image)
                print(f"  {name} {size}x{size} {v}: warm-up {time.perf_counter() - start:.1f} s", flush=True)
            for r in range(args.reps):
                order = variants if r % 2 == 0 else variants[::-1]
                for v in order:
                    t, _ = passes(models[v], v, image)
                    for k in ("encoder", "decoder"):
                        times[v][k].append(t.get(k, float("nan")))
            eager_total = statistics.median([a + b for a, b in zip(times["eager"]["encoder"],
                                                                    times["eager"]["decoder"])])
            print(f"\n{name}, {size}x{size}, {args.reps} rounds (median [min-max] s):")
            print(f"  {'variant':14} {'encoder':>22} {'decoder':>22} {'speed-up':>9}  agreement with eager")
            for v in variants:
                cells = []
                for k in ("encoder", "decoder"):
                    xs = times[v][k]
                    cells.append(f"{statistics.median(xs):6.2f} [{min(xs):.2f}-{max(xs):.2f}]")
                total = statistics.median([a + b for a, b in zip(times[v]["encoder"], times[v]["decoder"])])
                agree = agreement(states["eager"], states[v], models[v], models["eager"]) if v != "eager" else None
                if agree is not None and v == "onnx" and not agree["same instances"]:
                    failed = True
                text = ("reference" if agree is None else
                        f"emb {agree['embeddings']:.1e}, maps {agree['maps']:.1e}, objects {agree['objects']}, "
                        f"IoU>={agree['min IoU']:.3f}, score {agree['score']:.1e}, "
                        f"{'same instances' if agree['same instances'] else 'OTHER INSTANCES'}")
                print(f"  {v:14} {cells[0]:>22} {cells[1]:>22} {eager_total / total:8.2f}x  {text}", flush=True)
            print()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
