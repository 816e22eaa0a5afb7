"""``microsam-fiji segment``: APG/AIS on image files, writing ImageJ label TIFFs and ROI sets (see batch/)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from microsam_fiji.cli.arguments import Parser
from microsam_fiji.models.backends import BACKENDS

_IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


class _SegmentParser(Parser):
    """The ``segment`` parser: an image whose name starts with '-' is taken for an option by argparse, which then
    says only that IMAGE is missing (or the option unknown); name the fix."""

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        dashed = self._dashed_files(extras)
        if dashed:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def _dashed_files(self, candidates) -> list[str]:
        return [a for a in candidates if a.startswith("-") and len(a) > 1 and not a.startswith("--")
                and (Path(a).exists() or Path(a).suffix.lower() in _IMAGE_SUFFIXES)]

    def error(self, message):
        dashed = self._dashed_files(getattr(self, "_given", []))
        if dashed:
            message += f" (a file name starting with '-': write ./{dashed[0]})"
        super().error(message)


def register(sub) -> None:
    from microsam_fiji.cli.arguments import pair
    from microsam_fiji.core.params import ALIASES
    from microsam_fiji.engines.segment import DEFAULT_TILE_THRESHOLD

    p = sub.add_parser(
        "segment", help="segment images with APG (default) or AIS",
        description="Segment each IMAGE (files, folders of images, or glob patterns such as 'plate/*.tif') and "
                    "write <name>_labels.tif (16-bit, or 32-bit float beyond 65,535 objects), <name>_RoiSet.zip, "
                    "<name>_objects.csv (a row per object: size, calibrated area or volume, centroid, bounding box, "
                    "mean intensity, score) and a stamp <name>.microsam.json into --out, plus --out/summary.csv (a "
                    "row per image). Calibration is copied from the input TIFF; z/t stacks are segmented slice by "
                    "slice, or in 3D with --3d (objects merged across z). An "
                    "unreadable image is reported and skipped (exit status 1 at the end); images whose stamp "
                    "shows the same model, settings and input content are skipped (rerun them with --overwrite). "
                    "Outputs never replace a file microsam-fiji did not write, nor another input's: they take "
                    "another name (x-2_labels.tif); summary.csv keeps the rows of earlier runs.")
    p.__class__ = _SegmentParser  # made by the subparsers' Parser class: the same parser, with the hint above
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files (TIFF, PNG, ...), folders or globs (a name starting with '-': ./-name.tif)")
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
    p.add_argument("--axes", help="axes of the images where the file does not say, ImageJ letters, e.g. TZYX")
    p.add_argument("--tile-shape", type=pair, help="tile size Y,X for large images (default 768,768)")
    p.add_argument("--halo", type=pair, help="tile overlap Y,X (default 128,128)")
    p.add_argument("--tile-threshold", type=int, default=DEFAULT_TILE_THRESHOLD,
                   help=f"tile images larger than this many pixels on a side (default {DEFAULT_TILE_THRESHOLD})")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--engine", default=None, help="segmentation engine: fast (default) or micro-sam")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="how the image encoder and instance decoder run: onnx (ONNX Runtime, the default on a CPU) "
                        "or torch (the default on a GPU); also $MICROSAM_FIJI_BACKEND")
    p.add_argument("--3d", dest="volume", action="store_true",
                   help="3D objects: segment every z slice, then merge the slices' objects across z (micro-sam's "
                        "automatic_3d_segmentation); a TZYX stack is a volume per time point")
    p.add_argument("--gap-closing", type=int, metavar="N",
                   help="with --3d: close gaps of up to N slices in an object before merging (micro-sam's option; "
                        "default off)")
    p.add_argument("--min-z-extent", type=int, metavar="N",
                   help="with --3d: drop objects that span fewer than N slices (micro-sam's option; default off)")
    p.add_argument("--channel", type=int, metavar="N",
                   help="the channel to segment in multi-channel images, 1-based as in ImageJ (default: the first, "
                        "with a warning where there are several)")
    p.add_argument("--options", default="", metavar="TEXT",
                   help="the options as run(\"micro-sam APG\", TEXT) takes them (model=[...] center=0.3 3d ...; "
                        "what batch_folder.ijm passes on); the flags above win where both say something")
    p.add_argument("--ignore", action="append", default=[], metavar="KEY",
                   help="a key of the calling macro's own (input, output, cli) to leave out of --options; repeatable")
    p.add_argument("--no-rois", action="store_true", help="write only the label TIFF, not the RoiSet.zip")
    p.add_argument("--overwrite", action="store_true",
                   help="segment every image again, even where its outputs are up to date")
    dask = p.add_mutually_exclusive_group()
    dask.add_argument("--workers", type=int, metavar="N",
                      help="run on a local Dask cluster of N worker processes (each loads the model once)")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="run on a running Dask scheduler (tcp://host:8786 or a scheduler file); the workers "
                           "must see the images, the model and --out at the same paths")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-image lines")
    p.set_defaults(func=run_segment)


def run_segment(args: argparse.Namespace) -> int:
    from microsam_fiji.batch.api import run_batch
    from microsam_fiji.batch.settings import Settings
    from microsam_fiji.core.params import parse_assignments

    opts = macro_options(args.options, args.ignore)
    settings = Settings(model=args.model or opts.model, model_type=args.model_type, mode=args.mode or opts.mode,
                        params={**opts.params, **parse_assignments(args.param)}, axes=args.axes,
                        tile_shape=args.tile_shape or opts.tile_shape, halo=args.halo or opts.halo,
                        tile_threshold=args.tile_threshold, device=args.device, engine=args.engine or opts.engine,
                        rois=not args.no_rois, backend=args.backend, volume=args.volume or opts.volume,
                        gap_closing=_first(args.gap_closing, opts.gap_closing),
                        min_z_extent=_first(args.min_z_extent, opts.min_z_extent),
                        channel=_first(args.channel, opts.channel))
    summary = run_batch(args.images, args.out, settings, overwrite=args.overwrite, workers=args.workers,
                        scheduler=args.scheduler, progress=not args.quiet)
    failed = summary.failed
    if failed:
        print(f"microsam-fiji: {len(failed)} of {len(summary.rows)} images failed ({failed[0].image}: "
              f"{failed[0].error}); all listed in {summary.path}", file=sys.stderr)
        return 1
    return 0


def _first(*values):
    return next((v for v in values if v is not None), None)


def macro_options(text: str, ignore: list[str]):
    """``--options``: the macro's option string, parsed by the command's own parser; what names one file or the
    ROI Manager (``rois=``, ``labels=``, ``replace``, ``show``) is refused: each image gets its own outputs.

    Args:
        text: the option string.
        ignore: the calling macro's own keys to leave out.

    Returns:
        The parsed options."""
    from microsam_fiji.command.options import parse_options, without_keys
    from microsam_fiji.core.errors import UserError

    opts = parse_options(without_keys(text, ignore))
    for given, key in ((opts.rois, "rois=[...]"), (opts.labels, "labels=[...]"), (opts.replace, "replace"),
                       (opts.show, "show")):
        if given:
            raise UserError(f"--options {key}: a batch writes <name>_RoiSet.zip and <name>_labels.tif for each image "
                            "into --out and touches no ROI Manager: leave it out")
    return opts
