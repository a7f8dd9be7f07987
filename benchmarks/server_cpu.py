"""CPU time the local PostgreSQL server spends, for CPU-per-task figures.

The server's processes are read from ``/proc``: the live ones' user + system time, plus
what the postmaster has collected from children that exited (a worker's backends end
with it). The difference between two readings is the server's CPU in between. None where
the server is not on this machine or ``/proc`` is not readable.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


async def postmaster_pid(dsn: str) -> int | None:
    """The server's postmaster pid, from postmaster.pid in its data directory."""
    conn = await asyncpg.connect(dsn)
    try:
        folder = await conn.fetchval("SELECT current_setting('data_directory')")
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()
    try:
        return int((Path(folder) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds(postmaster: int | None) -> float | None:
    """The server's CPU so far: its live processes plus its reaped children."""
    if postmaster is None:
        return None
    own = _stat(postmaster)
    if own is None:
        return None
    total = own[2] + own[3]  # cutime + cstime: children that have exited
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and (fields[4] == postmaster or int(entry.name) == postmaster):
                total += fields[0] + fields[1]
    return total / _TICK


def _stat(pid: int) -> tuple[int, int, int, int, int] | None:
    """(utime, stime, cutime, cstime, ppid) in clock ticks."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14]), int(fields[1])
