"""One row per image of a batch, and ``summary.csv`` in the output folder."""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from microsam_fiji.core.tiff_io import atomic_write

DONE, SKIPPED, FAILED = "done", "skipped", "error"


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


def write_csv(path: Path, rows: list[Row]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        values = asdict(row)
        values["seconds"] = "" if row.seconds is None else f"{row.seconds:.2f}"
        values["objects"] = "" if row.objects is None else row.objects
        writer.writerow(values)
    text = buffer.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
