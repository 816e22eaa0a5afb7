"""What this machine can hold: CPU cores and free memory as this process may use them (CPU affinity, a
container's cgroup limits), for sizing worker pools and refusing arrays that cannot fit; and how its C library's
allocator serves eager PyTorch's large blocks (:func:`large_blocks_kept`)."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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


# glibc's mallopt parameters (malloc.h) and their defaults
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_TOP_PAD: 128 * 1024, _M_MMAP_THRESHOLD: 128 * 1024}
# within large_blocks_kept: blocks up to 1 GB come from the heap, and up to 2 GB of freed heap stays mapped
_KEPT = {_M_MMAP_THRESHOLD: 1 << 30, _M_TRIM_THRESHOLD: (1 << 31) - 1, _M_TOP_PAD: 1 << 28}
_kept_depth = 0
_kept_lock = threading.Lock()


def _glibc():
    """glibc (its ``mallopt`` and ``malloc_trim`` typed), or None on another C library (macOS, Windows, musl)."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def large_blocks_kept() -> Iterator[None]:
    """Within the block, glibc's malloc keeps the large blocks that eager PyTorch frees for its next layer.

    PyTorch on a CPU allocates and frees each layer's activations (128-256 MB at SAM's 1024 px); glibc serves
    blocks that large with ``mmap`` and returns them to the kernel on ``free``, so every layer faults and zeroes its
    memory anew. Measured on this project's 2-core CPU, one thread: ``finetune`` of 2 iterations with their
    validations 191 s -> 136 s (kernel time 55 s -> 9 s; peak memory 7.8 -> 9.4 GB), three eager planes 65 s ->
    47 s. ONNX Runtime gains nothing from it and its heap fragments (1.2 -> 3.7 GB resident after three planes), so
    the setting is scoped to eager torch work and glibc's defaults (and a ``malloc_trim``) return after the block.
    Nested and concurrent blocks share one setting. Other C libraries: nothing changes."""
    global _kept_depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _kept_lock:
        _kept_depth += 1
        if _kept_depth == 1:
            for param, value in _KEPT.items():
                libc.mallopt(param, value)
    try:
        yield
    finally:
        with _kept_lock:
            _kept_depth -= 1
            if _kept_depth == 0:
                for param, value in _GLIBC_DEFAULTS.items():
                    libc.mallopt(param, value)
                libc.malloc_trim(0)  # the kept free memory back to the system
