"""The small JSON file beside an image's outputs that says how they were made, and that this program made them.

Before any output is written the stamp is a claim: the input it belongs to and the outputs about to be written
(a run killed in between leaves files that are still known as ours). After the label TIFF and the ROI set are in
place it is replaced by the full stamp, so a full stamp always describes complete outputs. An image is skipped on
a rerun when its stamp holds the same settings key, the same input file (path, size, modification time and a
BLAKE2b hash of its bytes: a file rewritten with its size and time kept is seen) and its outputs are still there.
A file in ``--out`` that no stamp of ours names is never replaced (see plan.py)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

from microsam_fiji.core.tiff_io import atomic_write

FORMAT = 2
_CHUNK = 1 << 20


class Outputs(Protocol):
    """What a stamp needs of a job (batch.plan.Job)."""

    @property
    def image(self) -> str: ...

    @property
    def stamp(self) -> str: ...

    def outputs(self) -> list[str]: ...


def file_hash(path: str | os.PathLike) -> str:
    """BLAKE2b (128 bits) of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_identity(path: str) -> dict[str, Any]:
    """The input as a stamp records it: path, size, modification time and content hash."""
    stat = os.stat(path)
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "blake2b": file_hash(path)}


def read_stamp(path: str | os.PathLike) -> dict[str, Any] | None:
    """The stamp at ``path`` if it is one of ours (any format), else None (missing, unreadable, someone else's)."""
    try:
        stamp = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(stamp, dict) or not isinstance(stamp.get("format"), int):
        return None
    if not isinstance(stamp.get("image"), dict) or not isinstance(stamp["image"].get("path"), str):
        return None
    return stamp


def owned_outputs(stamp: dict[str, Any], name: str) -> set[str]:
    """The file names (in the stamp's folder) that ``stamp`` says this program wrote; ``name``: the job's output
    name (format 1 stamps did not list their outputs: they wrote ``<name>_labels.tif`` and the ROI set)."""
    listed = stamp.get("outputs")
    if isinstance(listed, list):
        return {str(n) for n in listed}
    return {f"{name}_labels.tif", f"{name}_RoiSet.zip"}


def claim(job: Outputs) -> None:
    """Record, before any output is written, that ``job``'s outputs are ours (see module doc)."""
    _write(job, {"format": FORMAT, "state": "writing", "image": {"path": job.image}})


def release(job: Outputs) -> None:
    """Remove ``job``'s claim when none of its outputs was written (a batch that stopped before the image):
    the name is free again. A full stamp, or a claim with outputs beside it, stays."""
    stamp = read_stamp(job.stamp)
    if stamp is not None and stamp.get("state") == "writing" and stamp["image"]["path"] == job.image and not any(
            os.path.exists(p) for p in job.outputs()):
        try:
            os.unlink(job.stamp)
        except OSError:
            pass


def write_stamp(job: Outputs, key: dict, record: dict[str, Any], identity: dict[str, Any] | None = None) -> None:
    """The full stamp; ``identity``: the input's :func:`image_identity` taken before it was read (default now)."""
    _write(job, {"format": FORMAT, "key": key, "image": identity or image_identity(job.image), **record})


def _write(job: Outputs, stamp: dict[str, Any]) -> None:
    stamp["outputs"] = [Path(p).name for p in job.outputs()]
    text = json.dumps(stamp, indent=1, sort_keys=True)
    atomic_write(job.stamp, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def current_stamp(job: Outputs, key: dict) -> dict[str, Any] | None:
    """The stamp's record if the outputs of ``job`` are up to date for ``key``, else None."""
    stamp = read_stamp(job.stamp)
    if stamp is None or stamp.get("format") != FORMAT or stamp.get("key") != json.loads(json.dumps(key)):
        return None
    recorded = stamp["image"]
    try:
        stat = os.stat(job.image)
        if (recorded.get("path"), recorded.get("size"), recorded.get("mtime_ns")) != (
                str(job.image), stat.st_size, stat.st_mtime_ns):
            return None  # changed on its face: no need to read it
        if recorded.get("blake2b") != file_hash(job.image):
            return None
    except OSError:
        return None
    if not all(os.path.isfile(p) for p in job.outputs()):
        return None
    return stamp
