"""Progress reports and cancellation for long segmentations, without a callback argument on every function.

A front end (the Fiji plugin's worker, ...) installs a reporter for the work it starts with :func:`reporting`;
the core calls :func:`report` between its stages (model load, image encoding, each batch of prompts, merging)
and inside the model's passes (each block of the image encoder, each stage of the instance decoder, each tile).
The reporter may raise :class:`Cancelled` to stop the work there: a pass stopped inside the network has written
nothing yet (the embedding cache is updated only after both passes), so the loaded model and the cache are never
left half-updated and the next call reuses them.

The reporter lives in a :class:`contextvars.ContextVar`, so each thread (each worker task) sees only its own."""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

Reporter = Callable[[str, "int | None", "int | None"], None]


class Cancelled(Exception):
    """Raised by a reporter to stop a segmentation at the next report (the user pressed Esc, ...)."""


_reporter: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("microsam_fiji_reporter", default=None)


@dataclass
class Parts:
    """Work done in ``count`` like parts (the tiles of a large image): reports made inside one part become
    ``"<stage> k/count"`` with the fraction of the whole, so the fraction a user sees never jumps back."""

    stage: str
    count: int
    done: int = 0

    def advance(self, n: int = 1) -> None:
        """``n`` more parts are done."""
        self.done = min(self.count, self.done + n)


_parts: contextvars.ContextVar[Parts | None] = contextvars.ContextVar("microsam_fiji_parts", default=None)


def report(stage: str, current: int | None = None, total: int | None = None) -> None:
    """Tell the current reporter (if any) that ``stage`` is under way, ``current`` of ``total`` done.

    Args:
        stage: what is under way ("encoding the image").
        current, total: how far (None: no fraction known).

    Raises:
        Cancelled: where the reporter stops the work."""
    reporter = _reporter.get()
    if reporter is None:
        return
    parts = _parts.get()
    if parts is not None and parts.count > 1:
        name = f"{parts.stage} {min(parts.done + 1, parts.count)}/{parts.count}"
        if current is not None and total:
            reporter(name, parts.done * total + min(current, total), parts.count * total)
        else:
            reporter(name, parts.done, parts.count)
        return
    reporter(stage, current, total)


@contextmanager
def in_parts(stage: str, count: int) -> Iterator[Parts]:
    """Reports inside the ``with`` block count as parts of ``stage`` (see :class:`Parts`); advance the yielded
    object as parts finish."""
    token = _parts.set(Parts(stage, int(count)))
    try:
        parts = _parts.get()
        assert parts is not None
        yield parts
    finally:
        _parts.reset(token)


def reporter_active() -> bool:
    """Whether someone listens in this thread (work that reports from a helper loop can skip the loop if not)."""
    return _reporter.get() is not None


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Send :func:`report` calls made inside the ``with`` block (in this thread) to ``reporter``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
