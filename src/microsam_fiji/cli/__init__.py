"""``microsam-fiji``: segment images, convert labels <-> ROI sets, export and validate Model Zoo packages."""
from __future__ import annotations

import argparse
import sys

from microsam_fiji.cli import fiji, macro, plugin, prompt, rois, segment, train, zoo
from microsam_fiji.cli.arguments import Parser
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.version import package_version

# Each module adds its sub-commands with register(subparsers); the parser's ``func`` runs one. The modules
# import what a command needs inside it, so ``microsam-fiji --help`` stays quick.
COMMAND_MODULES = (segment, macro, prompt, rois, zoo, fiji, plugin, train)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="microsam-fiji", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our warnings (an image rescaled, ...) as one line, without Python's file and source lines."""
    print(f"microsam-fiji: warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"microsam-fiji: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("microsam-fiji: interrupted", file=sys.stderr)
        return 130
