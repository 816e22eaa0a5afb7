"""``microsam-fiji segment``: APG/AIS on image files, writing ImageJ label TIFFs and ROI sets."""
from __future__ import annotations

import argparse
from pathlib import Path

from .errors import UserError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def register(sub) -> None:
    from .cli import pair
    from .params import ALIASES
    from .segment import DEFAULT_TILE_THRESHOLD

    p = sub.add_parser(
        "segment", help="segment images with APG (default) or AIS",
        description="Segment each IMAGE (files or folders of images) and write <name>_labels.tif (16-bit, or "
                    "32-bit float beyond 65,535 objects) and <name>_RoiSet.zip into --out. Calibration is copied "
                    "from the input TIFF. Z/T stacks are segmented slice by slice.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (TIFF, PNG, ...) or folders of them")
    p.add_argument("--model", default=None,
                   help="checkpoint (.pt), Model Zoo package (.zip) or micro-sam model name (needs network); "
                        "default: the bundled demo model (a pipeline demo, not a good segmenter)")
    p.add_argument("--model-type", choices=("vit_t", "vit_b", "vit_l", "vit_h"),
                   help="override the model type inferred from the checkpoint")
    p.add_argument("--mode", choices=("apg", "ais"), default=None, help="default: apg (or the package's mode)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="segmentation parameter, repeatable, e.g. --param center=0.4 --param min_size=30 "
                        f"(short names: {', '.join(f'{k}={v}' for k, v in ALIASES.items())})")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--axes", help="axes of the images where the shape is ambiguous, ImageJ letters, e.g. TYX")
    p.add_argument("--tile-shape", type=pair, help="tile size Y,X for large images (default 768,768)")
    p.add_argument("--halo", type=pair, help="tile overlap Y,X (default 128,128)")
    p.add_argument("--tile-threshold", type=int, default=DEFAULT_TILE_THRESHOLD,
                   help=f"tile images larger than this many pixels on a side (default {DEFAULT_TILE_THRESHOLD})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--engine", default=None, help="segmentation engine (default: the fastest available)")
    p.add_argument("--no-rois", action="store_true", help="write only the label TIFF, not the RoiSet.zip")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_segment)


def expand_images(items: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise UserError(f"folder '{path}' has no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise UserError(f"image '{path}' not found: check the path")
    return paths


def label_axes(image_axes: str, ndim: int) -> str | None:
    axes = "".join(a for a in image_axes if a not in "CS")
    return axes if len(axes) == ndim else None


def run_segment(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from .models import load_model
    from .params import parse_assignments, resolve_params
    from .segment import run
    from .tiff_io import read_image, write_labels

    images = expand_images(args.images)
    overrides = parse_assignments(args.param)
    if args.mode:
        resolve_params(args.mode, overrides)  # fail on a bad parameter before loading the model
    model = load_model(args.model, model_type=args.model_type, device=args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in tqdm(images, desc="segmenting", unit="image", disable=args.quiet):
        loaded = read_image(path)
        result = run(loaded.data, model, args.mode, axes=loaded.axes or None, tile_shape=args.tile_shape,
                     halo=args.halo, tile_threshold=args.tile_threshold, engine=args.engine, **overrides)
        stem = path.stem
        write_labels(args.out / f"{stem}_labels.tif", result.labels, loaded.calibration,
                     axes=label_axes(loaded.axes, result.labels.ndim))
        if not args.no_rois:
            from .bridge.rois import write_roiset

            write_roiset(args.out / f"{stem}_RoiSet.zip", result.labels, scores=result.scores)
        if not args.quiet:
            n = int(np.count_nonzero(np.unique(result.labels)))
            tqdm.write(f"{path.name}: {n} objects -> {args.out / (stem + '_labels.tif')}")
    return 0
