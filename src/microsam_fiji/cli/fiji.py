"""``microsam-fiji fiji``: open ImageJ or Fiji inside this Python process with the ``micro-sam APG`` command."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from microsam_fiji.core.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "fiji", help="open ImageJ/Fiji with the macro command \"micro-sam APG\"",
        description="Start Fiji (--fiji, through pyimagej) or plain ImageJ 1.x (ij.jar) inside this Python "
                    "process, register the macro command run(\"micro-sam APG\", \"...\") and open the main "
                    "window; returns when the window is closed. Models stay loaded between calls.")
    p.add_argument("--fiji", metavar="DIR", help="Fiji.app folder (or a pyimagej endpoint such as sc.fiji:fiji)")
    p.add_argument("--ij", type=Path, metavar="JAR", help="ij.jar of plain ImageJ 1.x (default: the system's)")
    p.add_argument("--model", default=None,
                   help="default model where a macro gives no model=... (default: the bundled demo model)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--macro", type=Path, metavar="FILE",
                   help="run this macro (.ijm) unattended and exit: 0 when it ends normally; a macro error, an "
                        "exit(\"message\") or any dialog it opens (closed at once, nobody waits) prints one line "
                        "and exits 2. Log lines go to standard output")
    p.add_argument("--arg", default="", metavar="TEXT", help="the macro's getArgument() (with --macro)")
    p.add_argument("--batch", action="store_true",
                   help="with --macro: ImageJ's window stays hidden and images are not shown (batch mode); "
                        "plain ImageJ still needs a display for run() (xvfb-run -a on servers)")
    p.set_defaults(func=run_fiji)


def run_fiji(args: argparse.Namespace) -> int:
    from microsam_fiji.imagej.session import start, wait_until_closed

    if args.macro is not None:
        return run_macro_file(args)
    if args.batch or args.arg:
        raise UserError("--batch and --arg go with --macro FILE: pass the macro to run")
    session = start(ij=args.ij, fiji=args.fiji, mode="interactive", headless=False, gui=True,
                    default_model=args.model, device=args.device)
    if session.ij is not None:
        session.ij.ui().showUI()
    print('ImageJ is running: macros can call run("micro-sam APG", "..."); close its window to quit.')
    wait_until_closed(session)
    return 0


def run_macro_file(args: argparse.Namespace) -> int:
    """``--macro FILE``: start ImageJ (window shown, or hidden with --batch), run the macro without letting any
    dialog wait, exit. ImageJ's window exists even with --batch: without it ImageJ ends the process with status
    0 on some macro errors (``IJ.getImage`` with no image calls ``System.exit(0)``)."""
    from microsam_fiji.imagej.macros import run_macro_unattended
    from microsam_fiji.imagej.session import open_imagej_window, start

    path = args.macro
    if not path.is_file():
        raise UserError(f"macro file '{path}' not found: check the path")
    try:
        code = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read macro file '{path}' ({err}): pass an ImageJ macro text file") from None
    session = start(ij=args.ij, fiji=args.fiji, mode="interactive", headless=False, gui=False,
                    default_model=args.model, device=args.device)
    if session.ij is not None:
        if not args.batch:
            session.ij.ui().showUI()
    else:
        open_imagej_window(show=not args.batch)
    if args.batch:
        code = "setBatchMode(true); " + code  # on the first line: the macro's line numbers stay
    try:
        result = run_macro_unattended(code, args.arg, echo=_echo, on_dialog=_closed_dialog)
    except UserError as err:
        print(f"microsam-fiji: error: {err}", file=sys.stderr)
        _exit(2)
    if result is not None:
        print(result)
    _exit(0)


def _echo(line: str) -> None:
    print(line, flush=True)


def _closed_dialog(message: str) -> None:
    print(f"microsam-fiji: closed a dialog (nobody to answer it): {message}", file=sys.stderr, flush=True)


def _exit(status: int) -> NoReturn:
    """End the process now: ImageJ's AWT threads would keep the JVM, and so Python, from ever shutting down."""
    from jpype import JClass

    JClass("java.lang.System").out.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
