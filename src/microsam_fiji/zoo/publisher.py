"""What the publisher adds to the generated model card (a documentation file, covers), read and checked before
the slow steps; and what export tells the publisher about the weight formats the package ends up with."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from microsam_fiji.core.errors import UserError

COVER_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")  # what bioimageio.spec accepts for covers
STANDALONE_FORMATS = ("torchscript", "onnx")  # run without micro-sam (pytorch_state_dict imports it)


def read_publisher_files(documentation: str | Path | None, covers: Sequence[str | Path]) -> dict:
    """The publisher's documentation text and cover paths, checked.

    Args:
        documentation: A Markdown / text file appended to the generated documentation, or None.
        covers: Cover images shown after the generated one.

    Returns:
        ``{"documentation": text ("" without a file), "covers": [Path, ...]}``.

    Raises:
        UserError: a file is missing, not text, or a cover is not an image type the Model Zoo shows.
    """
    text = ""
    if documentation is not None:
        path = Path(documentation)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"--documentation '{path}' not found: pass a Markdown file") from None
        except (UnicodeDecodeError, IsADirectoryError):
            raise UserError(f"--documentation '{path}' is not a UTF-8 text file: pass a Markdown file") from None
        text = f"\n## From the authors\n{text.strip()}\n"
    checked = []
    for cover in covers or ():
        path = Path(cover)
        if not path.is_file():
            raise UserError(f"--cover '{path}' not found: pass a PNG or JPEG image")
        if path.suffix.lower() not in COVER_SUFFIXES:
            raise UserError(f"--cover '{path.name}': use one of {', '.join(COVER_SUFFIXES)} (at most 500 KB, 2:1 "
                            "or 1:1)")
        checked.append(path.resolve())
    return {"documentation": text, "covers": checked}


def standalone_warnings(weight_formats: Sequence[str]) -> list[str]:
    """A warning when no weight format of the package runs without micro-sam."""
    if any(wf in STANDALONE_FORMATS for wf in weight_formats):
        return []
    return ["only pytorch_state_dict weights: their architecture imports micro-sam (micro_sam.util, torch_em), so "
            "deepImageJ, ilastik and a plain bioimageio.core cannot run the package; export with "
            "--weight-format torchscript (or onnx) for a standalone package"]
