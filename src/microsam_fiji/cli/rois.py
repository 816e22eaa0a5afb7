"""``microsam-fiji rois`` (label image -> RoiSet.zip) and ``microsam-fiji labels`` (RoiSet.zip -> label image)."""
from __future__ import annotations

import argparse
from pathlib import Path

from microsam_fiji.core.errors import UserError


def _shape(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        values = ()
    if not 2 <= len(values) <= 4 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a shape like 512,512 (Y,X) or 10,512,512 (N,Y,X)")
    return values


def register(sub) -> None:
    from microsam_fiji.cli.arguments import existing_path

    p = sub.add_parser(
        "rois", help="label image -> ImageJ RoiSet.zip",
        description="Outline every object of a label image (TIFF, 0 = background) as an ImageJ ROI whose mask is "
                    "exactly the object (traced polygons; composite ROIs for objects with holes or several "
                    "pieces) and write them as a RoiSet.zip for the ROI Manager. ROIs are named <prefix>-<id>; "
                    "on stacks each ROI carries its slice. Each ROI has the properties id and area.")
    p.add_argument("labels", type=existing_path, metavar="LABELS", help="label image (2D or a Z/T stack)")
    p.add_argument("--out", type=Path, help="RoiSet .zip to write (default: <LABELS name>_RoiSet.zip beside it)")
    p.add_argument("--prefix", default="cell", help="ROI name prefix (default: cell)")
    p.set_defaults(func=run_rois)

    p = sub.add_parser(
        "labels", help="ImageJ RoiSet.zip -> label image",
        description="Fill the area ROIs of a RoiSet.zip (or one .roi file) into a label image as ImageJ fills "
                    "them. ROIs named <prefix>-<id> keep their ids, others are numbered in order; later ROIs "
                    "win where they overlap; stack ROIs go to their slice. Writes a 16-bit TIFF (32-bit float "
                    "beyond 65,535 objects) with the calibration of --like.")
    p.add_argument("rois", type=existing_path, metavar="ROISET", help="RoiSet.zip or .roi file")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--like", type=existing_path, metavar="IMAGE",
                      help="image whose size (and slices) and calibration the labels get")
    size.add_argument("--shape", type=_shape, help="label image size Y,X or N,Y,X (uncalibrated)")
    p.add_argument("--out", type=Path, help="label TIFF to write (default: <ROISET name>_labels.tif beside it)")
    p.set_defaults(func=run_labels)


def _label_data(path: Path):
    """The label image of ``path`` without channel axes, and the ImageJ letters of its axes."""
    import numpy as np

    from microsam_fiji.core.images import guess_axes
    from microsam_fiji.core.tiff_io import read_image

    loaded = read_image(path)
    data, axes = loaded.data, loaded.axes or guess_axes(loaded.data.shape)
    for letter in "SC":
        if letter in axes:
            i = axes.index(letter)
            if data.shape[i] != 1:
                raise UserError(f"'{path}' has {data.shape[i]} channels: a label image has one (split channels)")
            data, axes = np.take(data, 0, axis=i), axes.replace(letter, "")
    return data, axes, loaded.calibration


def _output(out: Path, default: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """``out`` (or ``default``) checked before any work: a file path with the right suffix where a file can be
    written (not a folder, not under a file, not in a read-only place such as /proc)."""
    from microsam_fiji.core.writable import check_writable

    path = out if out is not None else default
    if path.is_dir():
        raise UserError(f"--out '{path}' is a folder: give the file to write, e.g. {path / default.name}")
    if path.suffix.lower() not in suffixes:
        raise UserError(f"--out '{path}': {what}: give a path ending in {suffixes[0]}")
    check_writable(path, "--out")
    return path


def _check_fits(shape: tuple[int, ...]) -> None:
    """Refuse a label image that cannot fit in memory, saying what it needs: 4 bytes a pixel for the labels,
    2 for the 16-bit copy written and 4 for counting the objects."""
    from microsam_fiji.core.machine import available_memory, gib

    pixels = 1
    for size in shape:
        pixels *= int(size)
    need, free = pixels * 10, available_memory()
    if need > free:
        shown = " x ".join(str(s) for s in shape)
        raise UserError(f"--shape {shown}: a label image that large needs about {gib(need)} of memory and "
                        f"{gib(free)} is free: give a smaller --shape (or crop the image)")


def run_rois(args: argparse.Namespace) -> int:
    from microsam_fiji.rois.encode import labels_to_rois
    from microsam_fiji.rois.roiset import write_rois

    out = _output(args.out, args.labels.with_name(f"{args.labels.stem}_RoiSet.zip"), (".zip",),
                  "a ROI set is a .zip file")
    data, _, _ = _label_data(args.labels)
    rois = labels_to_rois(data, name_prefix=args.prefix)
    write_rois(out, rois)
    print(f"{len(rois)} ROIs -> {out}")
    return 0


def run_labels(args: argparse.Namespace) -> int:
    import numpy as np

    from microsam_fiji.core.tiff_io import Calibration, write_labels
    from microsam_fiji.rois.decode import rois_to_labels

    out = _output(args.out, args.rois.with_name(f"{args.rois.stem}_labels.tif"), (".tif", ".tiff"),
                  "labels are written as TIFF")
    if args.like is not None:
        like, axes, calibration = _label_data(args.like)
        shape = like.shape
        lead_axes = axes.replace("Y", "").replace("X", "")
    else:
        shape, calibration = args.shape, Calibration()
        lead_axes = {2: "", 3: "Z", 4: "TZ"}[len(shape)]
        _check_fits(shape)
    labels = rois_to_labels(args.rois, shape, axes=lead_axes)
    write_labels(out, labels, calibration, axes=lead_axes + "YX")
    n = int(np.count_nonzero(np.unique(labels)))
    print(f"{n} objects -> {out}")
    return 0
