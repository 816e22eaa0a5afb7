"""``microsam-fiji prompt``: objects from prompts on an image file — a RoiSet.zip made in Fiji (points, negative
points as counter 1, rectangles, areas) or a CSV of points ``y,x[,label][,object]`` — with μSAM's prompt
functions (:func:`microsam_fiji.engines.prompted.segment_from_prompts`)."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from microsam_fiji.models.backends import BACKENDS


def register(sub) -> None:
    from microsam_fiji.cli.arguments import existing_path

    p = sub.add_parser(
        "prompt", help="segment the objects that points, boxes or areas prompt for (a RoiSet.zip or a CSV)",
        description="Segment IMAGE where PROMPTS point: a RoiSet.zip or .roi file (point ROIs: one object per "
                    "point, a multi-point with counter-1 points is one object with those points negative; "
                    "rectangles: boxes, with the points inside them; ovals, polygons, freehand: masks) or a CSV "
                    "file of points y,x[,label][,object] (label 1 positive, 0 negative; points with one object "
                    "id are one object). Writes <name>_labels.tif and <name>_RoiSet.zip into --out.")
    p.add_argument("image", type=existing_path, metavar="IMAGE", help="the image (2D; a stack: ROIs say their slice)")
    p.add_argument("--prompts", required=True, type=existing_path, metavar="PROMPTS", help="RoiSet.zip, .roi or .csv")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--model", default=None, help="checkpoint, Model Zoo package or micro-sam name (default: demo)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="how the image encoder and instance decoder run: onnx (ONNX Runtime, the default on a CPU) "
                        "or torch (the default on a GPU); also $MICROSAM_FIJI_BACKEND")
    p.set_defaults(func=run_prompt)


def read_points_csv(path: Path) -> dict:
    """``y,x[,label][,object]`` rows (a header row is skipped) -> arrays for :func:`objects_from_arrays`."""
    from microsam_fiji.core.errors import UserError

    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row if c.strip()]
            if not cells:
                continue
            try:
                rows.append([float(c) for c in cells])
            except ValueError:
                if number == 1:
                    continue  # a header
                raise UserError(f"{path.name} line {number}: not numbers ({', '.join(cells)}): write "
                                "y,x[,label][,object]") from None
            if not 2 <= len(cells) <= 4:
                raise UserError(f"{path.name} line {number}: {len(cells)} values: write y,x[,label][,object]")
    if not rows:
        raise UserError(f"{path.name} holds no points: write one y,x[,label][,object] row per point")
    width = max(len(r) for r in rows)
    if any(len(r) != width for r in rows):
        raise UserError(f"{path.name}: every row needs the same columns (y,x[,label][,object])")
    points = [r[:2] for r in rows]
    return {"points": points, "point_labels": [int(r[2]) for r in rows] if width >= 3 else None,
            "objects": [int(r[3]) for r in rows] if width == 4 else None}


def run_prompt(args: argparse.Namespace) -> int:
    from microsam_fiji.command.prompt_rois import prompts_from_rois
    from microsam_fiji.core.images import to_planes
    from microsam_fiji.core.tiff_io import read_image, write_labels
    from microsam_fiji.core.writable import check_writable
    from microsam_fiji.engines.prompted import objects_from_arrays, segment_from_prompts
    from microsam_fiji.models.load import load_model
    from microsam_fiji.rois.encode import labels_to_rois
    from microsam_fiji.rois.positions import stack_positions
    from microsam_fiji.rois.roiset import read_roiset, write_rois

    out = check_writable(args.out, "--out", folder=True)
    # bad prompts fail before the image is read and the model loaded
    arrays = read_points_csv(args.prompts) if args.prompts.suffix.lower() == ".csv" else None
    rois = read_roiset(args.prompts) if arrays is None else []
    loaded = read_image(args.image)
    planes = to_planes(loaded.data, loaded.axes)
    stack_axes = "".join(a for a in loaded.axes if a in "ZT")
    objects = (objects_from_arrays(**arrays) if arrays is not None
               else prompts_from_rois(rois, planes.label_shape, stack_axes))
    model = load_model(args.model, device=args.device, backend=args.backend)
    result = segment_from_prompts(loaded.data, model, prompts=objects, axes=loaded.axes)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.image.stem
    labels = write_labels(out / f"{stem}_labels.tif", result.labels, loaded.calibration, axes=stack_axes + "YX")
    planes_out, positions = stack_positions(result.labels, stack_axes)
    roiset = write_rois(out / f"{stem}_RoiSet.zip", labels_to_rois(planes_out, result.scores, positions=positions))
    print(f"{len(result.scores)} objects from {len(objects)} prompts -> {labels}, {roiset}")
    return 0
