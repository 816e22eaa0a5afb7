"""The small JSON file beside an image's outputs that says how they were made.

It is written last, after the label TIFF and the ROI set are in place, so a stamp always describes complete
outputs. An image is skipped on a rerun when its stamp holds the same settings key, the same input file (path,
size, modification time) and its outputs are still there."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from microsam_fiji.core.tiff_io import atomic_write
from microsam_fiji.batch.plan import Job

FORMAT = 1


def image_identity(path: str) -> dict[str, Any]:
    stat = os.stat(path)
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_stamp(job: Job, key: dict, record: dict[str, Any]) -> None:
    stamp = {"format": FORMAT, "key": key, "image": image_identity(job.image), **record}
    text = json.dumps(stamp, indent=1, sort_keys=True)
    atomic_write(job.stamp, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def current_stamp(job: Job, key: dict) -> dict[str, Any] | None:
    """The stamp's record if the outputs of ``job`` are up to date for ``key``, else None."""
    try:
        stamp = json.loads(Path(job.stamp).read_text(encoding="utf-8"))
        if stamp.get("format") != FORMAT or stamp.get("key") != json.loads(json.dumps(key)):
            return None
        if stamp.get("image") != image_identity(job.image):
            return None
    except (OSError, ValueError):
        return None
    if not all(os.path.isfile(p) for p in job.outputs()):
        return None
    return stamp
