"""Processes read from /proc: CPU seconds of a process tree (the reaped children too) and
resident memory, for benchmarks that must account for every process's time."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    start: int  # clock ticks after boot: with the pid, names the process
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: children that ended and were waited for
    comm: str


def read(pid: int) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid 4, utime 14, stime 15, cutime 16, cstime 17, start 22
    return Proc(
        pid,
        int(fields[1]),
        int(fields[19]),
        (int(fields[11]) + int(fields[12])) / TICK,
        (int(fields[13]) + int(fields[14])) / TICK,
        comm,
    )


def table() -> dict[int, Proc]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = read(int(entry))
            if proc is not None:
                table[proc.pid] = proc
    return table


def children(table: dict[int, Proc]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for proc in table.values():
        children[proc.ppid].append(proc.pid)
    return children


def subtree(pid: int, children: dict[int, list[int]]) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def tree_cpu(pid: int, table: dict[int, Proc], children: dict[int, list[int]]) -> float:
    """CPU seconds of a process, of its live descendants and of every child it reaped."""
    return sum(table[p].own + table[p].reaped for p in subtree(pid, children) if p in table)


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICK


def postmaster(table: dict[int, Proc]) -> int | None:
    for proc in table.values():
        parent = table.get(proc.ppid)
        if proc.comm == "postgres" and (parent is None or parent.comm != "postgres"):
            return proc.pid
    return None


def rss(pid: int) -> int:
    """Resident memory of a process in bytes (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0
