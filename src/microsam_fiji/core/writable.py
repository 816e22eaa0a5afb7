"""Check, before any work, that an output can be written where the user asked: segmenting first and failing at
the write would lose the segmentation. The check probes the file system (creates and removes a temporary file)
instead of trusting permission bits, which say nothing about read-only mounts, /proc or a root user."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from microsam_fiji.core.errors import UserError


def check_writable(path: str | os.PathLike, what: str = "output", *, folder: bool = False) -> Path:
    """Raise :class:`UserError` naming ``path`` and the fix unless ``path`` (a file, or a folder with
    ``folder=True``) can be created or replaced. Missing parent folders are fine where they can be created."""
    path = Path(path).expanduser()
    if folder:
        if path.exists() and not path.is_dir():
            raise UserError(f"{what} '{path}' is a file, not a folder: choose a folder")
    elif path.is_dir():
        raise UserError(f"{what} '{path}' is a folder: give a file path (or remove the folder)")
    start = path if folder else path.parent
    existing = start
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{what} '{path}' lies under the file '{existing}', not a folder: choose another place")
    try:
        fd, probe = tempfile.mkstemp(prefix=".microsam-fiji-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserError(f"cannot write {what} '{path}': '{existing}' is not writable ({reason}): choose a folder "
                        "you can write to") from None
    return path
