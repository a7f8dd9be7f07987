"""Timestamps worker processes leave for the harness, in files named by environment variables.

Handlers of every queue under test call these, so "first task started" and
"enqueue-to-start" mean the same thing for taskstore and its peers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FIRST_START_ENV = "BENCH_FIRST_START_FILE"
LATENCY_ENV = "BENCH_LATENCY_FILE"
HANDLER_MS_ENV = "BENCH_HANDLER_MS"  # drain --handler-ms: how long each no-op handler sleeps
_state = {"first_done": False}


def handler_seconds() -> float:
    """How long a drained no-op handler sleeps (0: it returns at once)."""
    return float(os.environ.get(HANDLER_MS_ENV) or 0) / 1000


def first_start() -> None:
    """Record, once per process, the wall-clock time the first handler started."""
    if _state["first_done"]:
        return
    _state["first_done"] = True
    path = os.environ.get(FIRST_START_ENV)
    if path:
        Path(path).write_text(repr(time.time()))


def record_latency(enqueued: float) -> None:
    """Append "enqueued started" (epoch seconds) for one task to the latency file."""
    started = time.time()
    path = os.environ.get(LATENCY_ENV)
    if path:
        with open(path, "a") as out:  # one short line per task: appends do not interleave
            out.write(f"{enqueued!r} {started!r}\n")


def read_first_start(path: Path) -> float | None:
    """The time `first_start` wrote, or None if no handler ran."""
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None


def read_latencies(path: Path) -> list[float]:
    """Enqueue-to-start delays (seconds) from a latency file."""
    if not path.exists():
        return []
    pairs = (line.split() for line in path.read_text().splitlines() if line.strip())
    return [float(started) - float(enqueued) for enqueued, started in pairs]
