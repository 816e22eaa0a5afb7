"""Progress of a batch: a tqdm bar with an ETA on a terminal, plain lines otherwise (Fiji's ``exec()``, CI logs
and files show every ``\\r`` redraw of a bar as clutter)."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from microsam_fiji.batch.summary import FAILED, SKIPPED, Row


def _line(row: Row) -> str:
    name = Path(row.image).name
    if row.status == FAILED:
        return f"{name}: error: {row.error}"
    if row.status == SKIPPED:
        return f"{name}: {row.objects} objects (up to date, skipped) -> {row.labels}"
    return f"{name}: {row.objects} objects in {row.seconds:.1f} s -> {row.labels}"


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """Call with each finished row. ``show``: False (silent), True (bar or lines), or a callable taking the row."""

    def __init__(self, total: int, show: bool | Callable[[Row], None], skipped: Sequence[Row] = ()):
        self.total, self.done, self.processed = total, 0, 0
        self.callback = show if callable(show) else None
        self.show = bool(show) and self.callback is None
        self.start = time.perf_counter()
        self.bar = None
        if self.show and sys.stderr.isatty():
            from tqdm import tqdm

            # initial=: the rate and ETA count only the images segmented now, not those skipped
            self.bar = tqdm(total=total, initial=len(skipped), desc="segmenting", unit="image", file=sys.stderr)
        for row in skipped:
            self.done += 1
            self._emit(row)

    def __call__(self, row: Row) -> None:
        self.done += 1
        self.processed += 1
        self._emit(row)
        if self.bar is not None:
            self.bar.update(1)

    def _emit(self, row: Row) -> None:
        if self.callback is not None:
            self.callback(row)
        elif self.show and self.bar is not None:
            self.bar.write(_line(row), file=sys.stdout)
        elif self.show:
            left = self.total - self.done
            eta = ""
            if self.processed and left:
                eta = f", eta {_eta((time.perf_counter() - self.start) / self.processed * left)}"
            print(f"[{self.done}/{self.total}{eta}] {_line(row)}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
