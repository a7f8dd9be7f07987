"""SIGKILL soak: workers die with `kill -9` mid-run and are replaced; nothing is lost.

At-least-once delivery means a task may run again, but only one a dead worker held when
it died (its handler had started, or it had finished and its completion was still in the
acknowledgement buffer). The test counts those rows right after each kill and checks
that the re-executions stay within them.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from taskstore import TaskStore
from tests.helpers.faults import Fleet, duplicates, held_by_process, status_counts, wait_until
from tests.helpers.processes import executions, stderr_of

pytestmark = pytest.mark.fault

TASKS = 3000
KILLS = 5
LEASE = "2"


@dataclasses.dataclass(frozen=True)
class Kill:
    pid: int
    running_before: int  # 'running' rows over all workers just before the kill
    held: int  # rows the victim held when it died (exact)


async def _kill_at(fleet: Fleet, store: TaskStore, rng: random.Random, done_at: int) -> Kill:
    async def reached() -> bool:
        return (await status_counts(store)).get("completed", 0) >= done_at

    await wait_until(reached, seconds=120)
    running_before = (await status_counts(store)).get("running", 0)
    pid = fleet.kill_random(rng)
    kill = Kill(pid, running_before, await held_by_process(store, pid))
    fleet.replace_dead()
    return kill


async def _all_completed(store: TaskStore, n: int) -> None:
    async def check() -> bool:
        return await status_counts(store) == {"completed": n}

    await wait_until(check, seconds=180)


async def test_sigkill_soak_loses_no_task_and_reruns_only_tasks_in_flight(
    store: TaskStore, db_url: str, backend: str, tmp_path: Path, soak: int, rng, figures
) -> None:
    n, kills_wanted = TASKS * soak, KILLS * soak
    payloads = [{"name": "faulty.work", "payload": {"ms": rng.uniform(5, 20)}} for _ in range(n)]
    ids = [i for s in range(0, n, 1000) for i in await store.enqueue_many(payloads[s : s + 1000])]
    log = tmp_path / "exec.log"
    size = 4 if backend == "postgres" else 2
    args = ("--concurrency", "4", "--lease-seconds", LEASE)
    fleet = Fleet(db_url, size, log, args).start()
    try:
        marks = sorted(int(rng.uniform(0.05, 0.8) * n) for _ in range(kills_wanted))
        kills = [await _kill_at(fleet, store, rng, mark) for mark in marks]
        await _all_completed(store, n)
        survivors = len(fleet.alive)
    finally:
        codes = await fleet.stop()

    runs = executions(log)
    assert set(runs) == set(ids)  # every task ran: none lost
    assert await status_counts(store) == {"completed": n}  # none left assigned/running
    in_flight = sum(k.held for k in kills)
    assert duplicates(runs) <= in_flight, (kills, runs.most_common(5))
    exits = sorted(codes.values())
    assert exits == [-9] * kills_wanted + [0] * survivors, (exits, stderr_of(log)[-3000:])
    assert "Traceback" not in stderr_of(log)
    figures(
        tasks=n,
        workers=size,
        kills=len(kills),
        running_before_kills=[k.running_before for k in kills],
        held_at_kills=[k.held for k in kills],
        duplicates=duplicates(runs),
    )
