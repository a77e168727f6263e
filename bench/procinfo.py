"""What the benchmark reads about its processes from ``/proc``, and the open-files limit.

Linux only, like the rest of ``bench/``: CPU time per process, a process's descendants
(the workers of ``kuwa-cli gateway start --workers 2``), its memory (RSS, PSS and USS from
``/proc/PID/smaps_rollup``) and the kernel's TCP buffer memory.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (NaN when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread of a process so far: each is one sleep
    (``epoll_wait``, a lock) that ended in a wake-up. Unlike CPU time it hardly depends on
    what else the machine runs, so it compares builds on a noisy machine (0 when gone)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    return total


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), in pid order."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent(int(entry.name))
            if parent is not None:
                parents[int(entry.name)] = parent
    found: list[int] = []
    frontier = {pid}
    while frontier:
        below = sorted(p for p, parent in parents.items() if parent in frontier)
        found += below
        frontier = set(below)
    return sorted(found)


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return ""


def memory(pid: int) -> dict[str, int]:
    """A process's memory in bytes: ``rss``, and ``pss`` and ``uss`` (private pages) where
    ``/proc/PID/smaps_rollup`` exists (Linux 4.14+)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1]) * 1024
    with contextlib.suppress(OSError):
        rollup: dict[str, int] = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                rollup[name.strip()] = int(parts[0]) * 1024
        if "Pss" in rollup:
            out["pss"] = rollup["Pss"]
        if "Private_Clean" in rollup:
            out["uss"] = rollup["Private_Clean"] + rollup.get("Private_Dirty", 0)
    return out


def tcp_buffer_bytes() -> int | None:
    """Memory the kernel holds in TCP socket buffers, whole machine (``/proc/net/sockstat``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/net/sockstat").read_text().splitlines():
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE")
    return None


def raise_open_files(needed: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit (and the hard one, where allowed) to at
    least ``needed``; processes started afterwards inherit it. Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        with contextlib.suppress(ValueError, OSError):  # only root may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def open_files(pid: int) -> int | None:
    """How many file descriptors a process has open now."""
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return None


def open_files_limit(pid: int) -> int | None:
    """A process's soft RLIMIT_NOFILE, from ``/proc/PID/limits``."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None
