"""``microsam-fiji``: segment images, convert labels <-> ROI sets, export and validate Model Zoo packages."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .errors import UserError

# Each module adds its sub-commands with register(subparsers); the parser's ``func`` runs one.
COMMAND_MODULES = ("microsam_fiji.segment_cli", "microsam_fiji.bridge.cli", "microsam_fiji.packaging.cli",
                   "microsam_fiji.bridge.session_cli", "microsam_fiji.plugin.cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block: the macro and the log show it as is
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="microsam-fiji", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def package_version() -> str:
    """This distribution's version (the CLI's --version, the plugin jar and its worker's handshake)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("micro-sam-fiji")
    except PackageNotFoundError:
        return "unknown"


def pair(text: str) -> tuple[int, int]:
    """``768,768`` or ``768`` -> (768, 768): for tile shape and halo options."""
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a pair of whole numbers like 768,768") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a pair of whole numbers like 768,768")
    return values[0], values[1]


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


def existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"'{text}' not found")
    return path


if __name__ == "__main__":
    sys.exit(main())
