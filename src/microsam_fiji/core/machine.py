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
