"""``microsam-fiji fiji``: open ImageJ or Fiji inside this Python process with the ``micro-sam APG`` command."""
from __future__ import annotations

import argparse
from pathlib import Path


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
    p.set_defaults(func=run_fiji)


def run_fiji(args: argparse.Namespace) -> int:
    from .session import start, wait_until_closed

    session = start(ij=args.ij, fiji=args.fiji, mode="interactive", headless=False, gui=True,
                    default_model=args.model, device=args.device)
    if session.ij is not None:
        session.ij.ui().showUI()
    print('ImageJ is running: macros can call run("micro-sam APG", "..."); close its window to quit.')
    wait_until_closed(session)
    return 0
