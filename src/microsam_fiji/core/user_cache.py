"""The folder this package keeps files in between runs (exported ONNX graphs, micro-sam's registry list), as a
user's ``~/.cache`` is kept: ``$MICROSAM_FIJI_CACHE``, else ``$XDG_CACHE_HOME/microsam-fiji`` (default
``~/.cache/microsam-fiji``). What is kept there is derived data, keyed by what it was derived from: deleting the
folder only costs the time to derive it again."""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MICROSAM_FIJI_CACHE"


def cache_root() -> Path:
    """The cache folder (not created here).

    Returns:
        ``$MICROSAM_FIJI_CACHE``, else ``$XDG_CACHE_HOME/microsam-fiji`` (default ``~/.cache/microsam-fiji``)."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "microsam-fiji")
    return Path(root).expanduser()
