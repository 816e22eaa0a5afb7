"""``microsam-fiji macro``: one ``micro-sam APG`` macro command on an image file, for macros without the plugin.

``fiji-scripts/segment_with_cli.ijm`` saves the current image, hands this program the macro's whole option
string (``--options``) and reads back a folder: ``rois.zip`` (for the ROI Manager), ``labels.tif`` (with
``show``) and ``result.txt``, one ``key<TAB>value`` per line (``count``, ``replace``, ``show``, ``warning``
lines, or one ``error`` line). The command itself is :func:`microsam_fiji.command.execute.execute`, the same that
the plugin's worker and the in-process session run, so every transport speaks the whole dialect. The image's
state comes as arguments, as the other transports hand it over: ``--selection`` (the selection saved as a .roi
file: an area restricts the command to it) and ``--current-plane`` (the plane segmented without ``stack``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from microsam_fiji.models.backends import BACKENDS

RESULT = "result.txt"


def register(sub) -> None:
    from microsam_fiji.cli.arguments import existing_path

    p = sub.add_parser(
        "macro", help="run one micro-sam APG macro command on an image file (what segment_with_cli.ijm calls)",
        description="Segment IMAGE as run(\"micro-sam APG\", OPTIONS) would in Fiji and write OUT/rois.zip, "
                    "OUT/objects.csv (one row per object: the Results table micro-sam objects), OUT/labels.tif "
                    "(with show), OUT/result.txt (count, replace, show, table, warnings, or the error), plus what "
                    "rois=[...] and labels=[...] ask. Bad options: one line, exit status 2.")
    p.add_argument("image", type=existing_path, metavar="IMAGE", help="the image (TIFF as ImageJ saves it)")
    p.add_argument("--options", default="", help="the macro's option string, e.g. 'center=0.3 replace'")
    p.add_argument("--ignore", action="append", default=[], metavar="KEY",
                   help="a key of the calling macro's own (e.g. cli) to leave out of OPTIONS; repeatable")
    p.add_argument("--out", required=True, type=Path, help="folder for rois.zip, labels.tif and result.txt")
    p.add_argument("--selection", type=existing_path, default=None, metavar="ROI",
                   help="the image's selection as a .roi file: an area selection restricts the command to it")
    p.add_argument("--current-plane", type=int, default=0, metavar="N",
                   help="the current plane, 0-based in ImageJ's stack order (getSliceNumber() - 1): what a stack "
                        "is segmented on without the option 'stack' (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="how the image encoder and instance decoder run: onnx (ONNX Runtime, the default on a CPU) "
                        "or torch (the default on a GPU); also $MICROSAM_FIJI_BACKEND")
    p.set_defaults(func=run_command_on_image)


def run_command_on_image(args: argparse.Namespace) -> int:
    from microsam_fiji.command.execute import COMMAND, error_message, execute
    from microsam_fiji.command.options import without_keys
    from microsam_fiji.core.tiff_io import atomic_write, read_image, write_labels
    from microsam_fiji.core.writable import check_writable
    from microsam_fiji.models.cache import ModelCache
    from microsam_fiji.rois.roiset import read_roiset, write_rois

    out = check_writable(args.out, "--out", folder=True)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[tuple[str, str]] = []
    try:
        selection = read_roiset(args.selection)[0] if args.selection else None
        result = execute(without_keys(args.options, args.ignore), lambda: read_image(args.image),
                         ModelCache(device=args.device, backend=args.backend), selection=selection,
                         current_plane=args.current_plane)
        write_rois(out / "rois.zip", result.rois)
        table = "" if result.table is None else str(result.table.write_csv(out / "objects.csv"))
        shown = ""
        if result.options.show:
            shown = str(write_labels(out / "labels.tif", result.labels, result.calibration, axes=result.label_axes))
        lines += [("count", str(result.count)), ("replace", str(result.options.replace).lower()), ("show", shown),
                  ("table", table)]
        lines += [("warning", w) for w in result.warnings]
        status = 0
    except Exception as err:  # noqa: BLE001 - one line for the macro, as in the other transports
        message = error_message(err, log="the output of this program run by hand")
        lines = [("error", message)]
        print(f"microsam-fiji: error: {message}", file=sys.stderr)
        status = 2
    text = "".join(f"{key}\t{' '.join(value.split())}\n" for key, value in lines)
    atomic_write(out / RESULT, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    if status == 0:
        print(f"{COMMAND}: {result.count} objects")
    return status
