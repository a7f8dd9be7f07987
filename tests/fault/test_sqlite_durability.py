"""SQLite durability: a producer killed with SIGKILL mid-stream loses no acknowledged task.

SQLite only: the question is what the embedded database file holds after its writer
process vanishes (PostgreSQL's durability is the server's, not the client's). Every id
the producer printed was returned by `enqueue`, so it must be in the table, and the file
must pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys

import anyio
import pytest
from sqlalchemy.engine import make_url

from tests.helpers.processes import ROOT

pytestmark = pytest.mark.fault

ENQUEUES = 1000


def _produce_and_kill(url: str, count: int, kill_after: int) -> list[int]:
    """Run the producer, SIGKILL it once `kill_after` ids are printed; every id printed."""
    cmd = [sys.executable, "-m", "tests.helpers.producer", url, str(count)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        printed.append(int(line))
        if len(printed) == kill_after:
            proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the producer finished before it was killed"
    return printed


def _table(path: str) -> tuple[set[int], str]:
    with sqlite3.connect(path) as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM taskstore_tasks")}
        [(integrity,)] = conn.execute("PRAGMA integrity_check").fetchall()
    return ids, integrity


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_every_enqueue_acknowledged_before_a_sigkill_is_in_the_file(
    db_url: str, soak: int, rng: random.Random, figures
) -> None:
    path = make_url(db_url).database
    count = ENQUEUES * soak
    printed: list[int] = []
    for _ in range(soak):
        kill_after = rng.randrange(count // 10, count * 9 // 10)
        printed += await anyio.to_thread.run_sync(_produce_and_kill, db_url, count, kill_after)
    stored, integrity = _table(path)
    assert integrity == "ok"
    assert set(printed) <= stored, sorted(set(printed) - stored)[:10]
    figures(
        enqueues_acknowledged=len(printed),
        rows=len(stored),
        committed_unacknowledged=len(stored) - len(printed),
        integrity=integrity,
    )
