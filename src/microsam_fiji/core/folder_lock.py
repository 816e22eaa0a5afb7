"""An exclusive lock on a folder, for processes that write into one output folder at once (two batches into one
``--out``): ``summary.csv`` is merged under it and new output names are claimed under it."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder itself while the block runs.

    Args:
        folder: an existing folder. No lock file is left behind (the folder's own descriptor is locked); where
            the system has no ``flock`` (Windows) or the file system refuses it (some network mounts) the block
            runs unlocked.

    Returns:
        a context manager; leaving the block releases the lock."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(Path(folder), os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: go on unlocked
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock
