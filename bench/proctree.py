"""CPU seconds and memory of a process and all its descendants, read from /proc.

The server under test may be one process (Go, Node, uvicorn) or several (a
supervisor with workers), so every figure is summed over the whole tree.
"""

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class TreeUsage:
    cpu_seconds: float
    """User plus system time of the live tree, plus what its reaped children used."""
    rss_bytes: int
    """Resident memory now, summed over the tree."""
    peak_rss_bytes: int
    """Sum of each process's own high-water mark (VmHWM): an upper bound of the tree's peak."""
    processes: int


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as children:
                    found.extend(int(child) for child in children.read().split())
            except OSError:
                continue
    return found


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may contain spaces; fields after it are positional.
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return utime + stime + cutime + cstime


def _memory(pid: int) -> tuple[int, int]:
    rss = peak = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return rss, peak


def tree_usage(pid: int) -> TreeUsage:
    ticks = rss = peak = processes = 0
    for member in descendants(pid):
        try:
            ticks += _cpu_ticks(member)
            member_rss, member_peak = _memory(member)
        except (OSError, ValueError, IndexError):
            continue  # exited between listing and reading
        rss += member_rss
        peak += member_peak
        processes += 1
    return TreeUsage(ticks / CLOCK_TICKS, rss, peak, processes)


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of one process (all its threads), without its children."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def system_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling, since boot (from /proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user time
    return (total - idle) / CLOCK_TICKS
