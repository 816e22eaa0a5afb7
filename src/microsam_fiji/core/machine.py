"""What this machine can hold: CPU cores and free memory as this process may use them (CPU affinity, a
container's cgroup limits), for sizing worker pools and refusing arrays that cannot fit."""
from __future__ import annotations

import os
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")


def cpu_cores() -> int:
    """Cores this process may run on: its CPU affinity, or a cgroup v2 quota (``cpu.max``) where smaller."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = (_CGROUP / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def available_memory() -> int:
    """Bytes that can still be allocated without swapping: ``MemAvailable`` of /proc/meminfo, or what a
    container's cgroup (``memory.max`` minus ``memory.current``) leaves where smaller."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            available = 8 << 30  # nothing to read (not Linux): assume a common laptop
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            used = int((_CGROUP / "memory.current").read_text().strip())
            available = min(available, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return int(available)


def gib(n_bytes: float) -> str:
    """``12.3 GiB`` (one decimal; MiB below one GiB)."""
    if n_bytes < 1 << 30:
        return f"{n_bytes / (1 << 20):.0f} MiB"
    return f"{n_bytes / (1 << 30):.1f} GiB"


def check_holdable(claimed: int, what: str, fix: str) -> None:
    """Refuse, before reading, what a file claims to hold when this machine cannot hold it: a zip member's
    uncompressed size, a TIFF's pixels as its header declares them. A stranger's file can claim anything (a
    23 KB zip bomb that expands to 21 GiB, a 138-byte TIFF whose header says 200000×200000); reading first ends
    in an out-of-memory kill or numpy's allocation traceback.

    Args:
        claimed: the bytes the file says it holds.
        what: what claims it, ending so that the size follows, e.g. ``"'m.zip': member 'w.pt' expands to"``.
        fix: the end of the line: what to do instead.

    Raises:
        UserError: ``claimed`` is more than :func:`available_memory`."""
    from microsam_fiji.core.errors import UserError

    free = available_memory()
    if claimed > free:
        raise UserError(f"{what} {gib(claimed)}, more than this machine can hold ({gib(free)} free): {fix}")
