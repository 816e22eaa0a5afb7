"""How many Dask workers this machine holds, and a ``--scheduler`` that names a file checked before any work.

Each worker of a local cluster is a process that loads the model: more workers than cores only wait for each
other, and more than the free memory holds swap or get killed (a batch that never ends). ``--workers N`` is
capped at both, with one line saying so."""
from __future__ import annotations

import os
import re
from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.machine import available_memory, cpu_cores, gib

# checkpoint sizes of SAM's image encoders + decoders (micro-sam's published weights, rounded up)
_WEIGHT_BYTES = {"vit_t": 45_000_000, "vit_b": 400_000_000, "vit_l": 1_300_000_000, "vit_h": 2_600_000_000}
# a worker without its model: Python, torch, micro-sam and one image's activations
_BASE_BYTES = 1 << 30


def model_bytes(source: str | os.PathLike | None) -> int:
    """The size of the model's weights: the file (or package folder) where it is one, else by the model type its
    name says (``vit_b_lm``), else a ViT-B's."""
    from microsam_fiji.models.demo import DEMO_CHECKPOINT, DEMO_NAME

    path = DEMO_CHECKPOINT if source is None or str(source) == DEMO_NAME else Path(source).expanduser()
    try:
        if path.is_file():
            return path.stat().st_size
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        pass
    found = re.search(r"vit_[tblh]", str(source))
    return _WEIGHT_BYTES[found.group() if found else "vit_b"]


def worker_memory(source: str | os.PathLike | None) -> int:
    """About what one worker holding the model needs: its base plus twice the weights (loading copies them)."""
    return _BASE_BYTES + 2 * model_bytes(source)


def worker_limit(requested: int, source: str | os.PathLike | None) -> tuple[int, str]:
    """``requested`` capped at the cores and at what the free memory holds, and the line that says so (empty
    where nothing was capped)."""
    cores, memory, each = cpu_cores(), available_memory(), worker_memory(source)
    n = max(1, min(int(requested), cores, memory // each))
    if n >= int(requested):
        return int(requested), ""
    return n, (f"--workers {requested}: this machine has {cores} CPU core{'s' if cores > 1 else ''} and "
               f"{gib(memory)} of free memory, and each worker loads the model (about {gib(each)}): running "
               f"{n} worker{'s' if n > 1 else ''}")


def check_scheduler(scheduler: str) -> None:
    """A scheduler file (``*.json`` or a path) must exist: Dask would take its name for an address and say
    'missing port number'."""
    text = str(scheduler).strip()
    if not text:
        raise UserError("--scheduler is empty: give the scheduler's address (tcp://host:8786) or its scheduler file")
    if "://" in text:
        return
    if text.endswith(".json") or "/" in text or os.sep in text:
        path = Path(text).expanduser()
        fix = (f"start the scheduler with 'dask scheduler --scheduler-file {text}' first, or pass its address, "
               "e.g. tcp://host:8786")
        if path.is_dir():
            raise UserError(f"--scheduler '{text}' is a folder, not a scheduler file: {fix}")
        if not path.is_file():
            raise UserError(f"--scheduler: the scheduler file '{text}' does not exist: {fix}")
