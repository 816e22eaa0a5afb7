"""sha256 of the files a package records: the Model Zoo and the loader check each weight file and attachment."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(path: Path) -> str:
    """The hex sha256 of the file at ``path``, read in chunks (weight files are hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hashed_file(path: Path):
    """A bioimageio ``FileDescr`` of ``path`` with its sha256 recorded."""
    from bioimageio.spec.model import v0_5 as spec

    return spec.FileDescr(source=path, sha256=spec.Sha256(sha256(path)))
