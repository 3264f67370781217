"""CPU time and resident memory of one process, read from /proc (Linux only).

Only the named process is counted, never its children: a gateway's or proxy's
backends are separate processes and are not part of its cost. The scale-out phase
also reads whole process trees (a replica and its backends) and the machine's total.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (its own threads, not its children)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its closing ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """The same CPU time (every thread of the process, not its children) to the nanosecond: the kernel's
    per-process CPU clock, read with clock_gettime. `cpu_seconds` counts clock ticks (10 ms), too coarse
    for differences of tens of µs a call over a few thousand calls read in short turns."""
    try:
        return time.clock_gettime((~pid << 3) | 2)  # Linux: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    except OSError:
        return cpu_seconds(pid)


def rss_mib(pid: int) -> float:
    """Resident set size (VmRSS) of the process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren, ...), from the parent pids in /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited while we looked
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and all its live descendants (processes that exit in between are not counted)."""
    total = 0.0
    for member in [pid, *descendants(pid)]:
        try:
            total += cpu_seconds(member)
        except (OSError, ValueError):
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU time all cores have spent not idle since boot, every process included (the first line of /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = fields[3], fields[4] if len(fields) > 4 else 0
    guest = sum(fields[8:10])  # guest time is already counted in user and nice
    return (sum(fields) - idle - iowait - guest) / _CLOCK_TICKS
