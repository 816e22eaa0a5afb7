"""Progress reports and cancellation for long segmentations, without a callback argument on every function.

A front end (the Fiji plugin's worker, ...) installs a reporter for the work it starts with :func:`reporting`;
the core calls :func:`report` between its stages (model load, image encoding, each batch of prompts, merging).
The reporter may raise :class:`Cancelled` to stop the work there: those points lie between whole steps, so the
loaded model and the embedding cache are never left half-updated and the next call reuses them.

The reporter lives in a :class:`contextvars.ContextVar`, so each thread (each worker task) sees only its own."""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Callable, Iterator

Reporter = Callable[[str, "int | None", "int | None"], None]


class Cancelled(Exception):
    """Raised by a reporter to stop a segmentation at the next report (the user pressed Esc, ...)."""


_reporter: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("microsam_fiji_reporter", default=None)


def report(stage: str, current: int | None = None, total: int | None = None) -> None:
    """Tell the current reporter (if any) that ``stage`` is under way, ``current`` of ``total`` done."""
    reporter = _reporter.get()
    if reporter is not None:
        reporter(stage, current, total)


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Send :func:`report` calls made inside the ``with`` block (in this thread) to ``reporter``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
