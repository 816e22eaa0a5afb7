"""Argument types shared by the sub-commands (argparse reports their errors as one line, exit status 2)."""
from __future__ import annotations

import argparse
from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.params import parse_pair


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line instead of the usage block: the macro and the log show it as is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def pair(text: str) -> tuple[int, int]:
    """``768,768`` or ``768`` -> (768, 768): for tile shape and halo options."""
    try:
        return parse_pair(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def existing_path(text: str) -> Path:
    """A path that must exist (an input)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"'{text}' not found")
    return path
