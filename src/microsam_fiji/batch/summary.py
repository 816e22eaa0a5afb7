"""One row per image of a batch, and ``summary.csv`` in the output folder: the rows of every batch run into that
folder, one per input (a rerun replaces the input's row), merged and replaced atomically under a lock on the
folder, so batches one after the other (or at once) into one ``--out`` keep each other's rows."""
from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from microsam_fiji.core.folder_lock import folder_lock
from microsam_fiji.core.tiff_io import atomic_write

DONE, SKIPPED, FAILED = "done", "skipped", "error"
SUMMARY_NAME = "summary.csv"


@dataclass
class Row:
    """``status``: done (segmented now), skipped (outputs up to date, see the stamp) or error (``error`` says
    why, in one line). ``seconds``: reading, segmenting and writing this image when it was segmented."""

    image: str
    objects: int | None = None
    seconds: float | None = None
    engine: str = ""
    model: str = ""
    status: str = DONE
    error: str = ""
    labels: str = ""
    rois: str = ""


COLUMNS = [f.name for f in fields(Row)]


@dataclass
class Summary:
    """What :func:`microsam_fiji.segment_many` returns: the rows in input order, the csv path, and how many times
    each Dask worker (or, in process, ``"local"``) loaded the model."""

    rows: list[Row]
    path: Path | None = None
    model_loads: dict[str, int] = field(default_factory=dict)
    timings: list[dict] = field(default_factory=list)  # Dask runs: see dask_runner.run_dask

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == FAILED]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    def __repr__(self) -> str:
        return (f"Summary({len(self.rows)} images: {self.count(DONE)} done, {self.count(SKIPPED)} skipped, "
                f"{self.count(FAILED)} failed; {self.path})")


def _csv_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _as_text(row: Row) -> dict[str, str]:
    values = {k: str(v) for k, v in asdict(row).items()}
    values["seconds"] = "" if row.seconds is None else f"{row.seconds:.2f}"
    values["objects"] = "" if row.objects is None else str(row.objects)
    return values


def is_summary(path: Path) -> bool:
    """A summary.csv this program wrote: its header is exactly our columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: as a spreadsheet may save it
            return next(csv.reader(f), None) == COLUMNS
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def _read(path: Path) -> list[dict[str, str]]:
    if not is_summary(path):
        return []
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [{c: r.get(c) or "" for c in COLUMNS} for r in csv.DictReader(f)]


def _key(image: str) -> str:
    return os.path.normcase(os.path.abspath(os.path.expanduser(image)))


def write_csv(path: Path, rows: list[Row]) -> Path:
    """Write ``rows`` into ``path``, keeping the rows of earlier batches there: an earlier row of the same input
    (path, or the same label file) is replaced in place, new inputs are added at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(path.parent):
        merged = _read(path)
        by_image = {_key(r["image"]): i for i, r in enumerate(merged)}
        by_labels = {r["labels"]: i for i, r in enumerate(merged) if r["labels"]}
        for row in rows:
            index = by_image.get(_key(row.image))
            if index is None and row.labels:
                index = by_labels.get(row.labels)
            if index is None:
                index = len(merged)
                merged.append(_as_text(row))
            else:
                merged[index] = _as_text(row)
            by_image[_key(row.image)] = index
            if row.labels:
                by_labels[row.labels] = index
        text = _csv_text(merged)
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
