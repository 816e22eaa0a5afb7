"""Watching micro-sam's trainer from the outside: progress with loss, validation score and ETA, the time budget,
Esc / Ctrl-C, and the best checkpoint so far, through what ``micro_sam.training.train_sam`` accepts.

``train_sam`` has no callback and no time limit. It does take a progress object (``pbar_signals``: told the
total, each finished iteration and, at each epoch's end, after torch_em has saved ``best.pt`` / ``latest.pt``, a
description) and a learning-rate scheduler class (stepped with each epoch's validation metric). :class:`Monitor`
is both. At an epoch's end it keeps the checkpoints (the caller's ``on_epoch``) and stops the run, by raising
:class:`StopTraining` out of the trainer, when the next epoch would not fit in the time budget: the stop falls
between epochs, where torch_em has just saved everything, so no trained iteration is lost.

Within an iteration (tens of seconds on a laptop CPU) a global forward hook of torch (scoped to the run and to
the training thread) reads the instance decoder's training loss and asks the reporter every half second, so that
Esc (a reporter that raises ``Cancelled``) stops the run within a forward pass, not an iteration."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from microsam_fiji.core.progress import report

POLL_S = 0.5  # how often the reporter is asked inside an iteration (Esc)


class StopTraining(Exception):
    """Raised out of micro-sam's trainer at an epoch's end: the time budget would be exceeded by another epoch."""


@dataclass
class Step:
    """What a progress callback is told after each iteration and each validation."""

    iteration: int  # iterations done (a resumed run counts on from where it stopped)
    total: int | None  # iterations expected in all (from the time budget: an estimate that is updated)
    loss: float | None  # the instance decoder's training loss of the last iteration
    validation: float | None  # the last validation metric (micro-sam's: lower is better)
    best: float | None  # the best validation metric so far
    elapsed_s: float
    eta_s: float | None
    epoch_end: bool = False  # a validation just finished

    def line(self) -> str:
        """One line for a log or a status bar."""
        total = f"/{self.total}" if self.total else ""
        parts = [f"iteration {self.iteration}{total}"]
        if self.loss is not None:
            parts.append(f"decoder loss {self.loss:.4f}")
        if self.validation is not None:
            parts.append(f"validation {self.validation:.4f} (best {self.best:.4f})")
        parts.append(f"{_clock(self.elapsed_s)} elapsed")
        if self.eta_s is not None:
            parts.append(f"eta {_clock(self.eta_s)}")
        return ", ".join(parts)


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60:02d}:{seconds % 60:02d}"


class _Signal:
    def __init__(self, slot: Callable) -> None:
        self.emit = slot


@dataclass
class Monitor:
    """The progress object and scheduler hook for one ``train_sam`` call (see module doc).

    Args:
        started: ``time.monotonic()`` when the whole fine-tuning began (the budget counts from there).
        deadline: ``time.monotonic()`` by which training must end (None: no time budget).
        reserve_s: seconds kept back at the end (the final evaluation).
        done_before: iterations done by earlier runs (resume).
        target: the iteration count to reach (None: only the budget ends the run).
        best_before: the best validation metric of earlier runs (resume).
        on_epoch: called at each epoch's end with (iteration, metric, improved) after torch_em saved.
        on_step: the user's progress callback (None: only ``core.progress.report``)."""

    started: float
    deadline: float | None
    reserve_s: float
    done_before: int
    target: int | None
    best_before: float | None
    on_epoch: Callable[[int, float, bool], None]
    on_step: Callable[[Step], None] | None = None
    iteration: int = 0
    loss: float | None = None
    validation: float | None = None
    best: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    losses: list[tuple[int, float]] = field(default_factory=list)
    _iteration_s: list[float] = field(default_factory=list)
    _validation_s: list[float] = field(default_factory=list)
    _last_mark: float = 0.0
    _last_poll: float = 0.0
    _validated_at: float | None = None
    _pending: float | None = None
    _stage: tuple = ("training", None, None)
    _thread: int = 0
    _per_epoch: int = 1
    _epochs: int = 0

    def __post_init__(self) -> None:
        self.iteration = self.done_before
        self.best = self.best_before
        self._last_mark = self._last_poll = time.monotonic()
        self._thread = threading.get_ident()
        self.pbar_total = _Signal(self._fit_starts)
        self.pbar_update = _Signal(self._iteration_done)
        self.pbar_description = _Signal(self._epoch_end)

    # --- what train_sam calls ------------------------------------------------------------------------------------

    def _fit_starts(self, total: int) -> None:
        """torch_em's fit sets the bar's total just before its first iteration: the clock for iterations starts."""
        self._last_mark = time.monotonic()

    def _iteration_done(self, steps: int = 1) -> None:
        now = time.monotonic()
        if self._validated_at is not None:  # the first iteration after a validation: it started at the epoch end
            self._last_mark = self._validated_at
            self._validated_at = None
        self._iteration_s.append(now - self._last_mark)
        self._last_mark = now
        self.iteration += int(steps)
        self._tell(epoch_end=False)

    def _validated(self, metric: float) -> None:
        """The scheduler's step: the epoch's validation metric. torch_em reports every iteration but the run's
        last, so the count is set from the epochs here."""
        self._epochs += 1
        done = self.done_before + self._epochs * self._per_epoch
        self.iteration = min(done, self.target) if self.target is not None else done
        self._pending = float(metric)

    def _epoch_end(self, description: str, **unused) -> None:
        """torch_em's description: at the start (no validation yet) and after each epoch's checkpoints."""
        if self._pending is None:
            return
        metric, self._pending = self._pending, None
        improved = self.best is None or metric < self.best
        if improved:
            self.best = metric
        self.validation = metric
        self.history.append((self.iteration, metric))
        self.on_epoch(self.iteration, metric, improved)
        now = time.monotonic()
        # the validation, torch_em's and our checkpoint writing: what an epoch costs beyond its iterations
        self._validation_s.append(now - self._last_mark)
        self._validated_at = now
        self._tell(epoch_end=True)
        finished = self.target is not None and self.iteration >= self.target
        if not finished and self.deadline is not None and now + self.next_epoch_s() + self.reserve_s > self.deadline:
            raise StopTraining()

    def flush(self) -> None:
        """After the trainer returned: an epoch whose validation it did not describe (torch_em's early stopping
        ends the loop before the description) is kept like the others."""
        if self._pending is not None:
            self.deadline = None
            self._epoch_end("")

    # --- estimates ------------------------------------------------------------------------------------------------

    def _mean_iteration(self) -> float | None:
        recent = self._iteration_s[-8:]
        return sum(recent) / len(recent) if recent else None

    def next_epoch_s(self) -> float:
        """The time another epoch takes: its iterations and its validation, as measured so far."""
        per_iteration = self._mean_iteration() or 0.0
        validation = max(self._validation_s[-3:]) if self._validation_s else per_iteration
        return self._per_epoch * per_iteration + max(0.0, validation)

    def _estimates(self) -> tuple[int | None, float | None]:
        """(iterations the run will reach, seconds until it ends): training stops at epoch ends, so the budget buys
        whole epochs after the current one."""
        per_iteration = self._mean_iteration()
        if per_iteration is None:
            return self.target, None
        validation = max(self._validation_s[-3:]) if self._validation_s else per_iteration
        per_epoch = self._per_epoch
        rest = (per_epoch - (self.iteration - self.done_before) % per_epoch) % per_epoch  # of the current epoch

        def seconds_to(total: int) -> float:
            iterations = max(0, total - self.iteration)
            validations = (1 if rest else 0) + -(-max(0, iterations - rest) // per_epoch)
            return iterations * per_iteration + validations * validation

        total = self.target
        if self.deadline is not None:
            left = self.deadline - self.reserve_s - time.monotonic() - seconds_to(self.iteration + rest)
            epochs = max(0, int(left // (per_epoch * per_iteration + validation))) if left > 0 else 0
            by_budget = self.iteration + rest + epochs * per_epoch
            total = by_budget if total is None else min(total, by_budget)
        if total is None:
            return None, None
        return total, seconds_to(total) + self.reserve_s

    def _tell(self, epoch_end: bool) -> None:
        total, eta = self._estimates()
        step = Step(iteration=self.iteration, total=total, loss=self.loss, validation=self.validation,
                    best=self.best, elapsed_s=time.monotonic() - self.started, eta_s=eta, epoch_end=epoch_end)
        self._stage = (f"training: {step.line()}", self.iteration, total)
        self._last_poll = time.monotonic()
        report(*self._stage)
        if self.on_step is not None:
            self.on_step(step)

    # --- the scheduler class and the hooks ------------------------------------------------------------------------

    def scheduler_class(self) -> type:
        """micro-sam's default scheduler (ReduceLROnPlateau), telling this monitor each validation metric."""
        import torch

        monitor = self

        class WatchedReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
            def step(self, metrics, *args, **kwargs):
                monitor._validated(float(metrics))
                return super().step(metrics, *args, **kwargs)

        return WatchedReduceLROnPlateau

    @contextmanager
    def watching(self, per_epoch: int) -> Iterator[None]:
        """Within the ``with`` block: the decoder loss is read and the reporter asked during the passes (see
        module doc)."""
        import torch
        from torch_em.loss import DiceBasedDistanceLoss

        self._per_epoch = max(1, int(per_epoch))

        def hook(module, inputs, output):
            if threading.get_ident() != self._thread:
                return  # another thread's model (the plugin's worker may segment meanwhile)
            if isinstance(module, DiceBasedDistanceLoss) and torch.is_grad_enabled():
                self.loss = float(output.detach())
                self.losses.append((self.iteration + 1, self.loss))
            now = time.monotonic()
            if now - self._last_poll >= POLL_S:
                self._last_poll = now
                report(*self._stage)  # raises Cancelled where the user pressed Esc

        handle = torch.nn.modules.module.register_module_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
