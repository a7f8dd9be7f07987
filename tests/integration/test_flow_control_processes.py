"""Flow control across real worker processes (4 on PostgreSQL, 3 on SQLite).

Every run records its start and end; the database records each start on its own clock.
The tests prove the limits hold across processes (and are reached), that a paused queue
starts nothing until resumed, that a snoozed task's attempt is not counted, and that a
killed worker's slots come back after its lease with nothing lost.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import anyio

from taskstore import TaskStatus, TaskStore
from tests.apps.flow import most_at_once, read_log
from tests.helpers.processes import start_worker


def _fleet(db_url: str, backend: str, log: Path, *args: str) -> list[subprocess.Popen]:
    size = 4 if backend == "postgres" else 3
    env = {"TEST_FLOW_LOG": str(log)}
    return [
        start_worker(
            db_url,
            "--queue",
            "limited",
            "--concurrency",
            "4",
            *args,
            exec_log=log.with_suffix(".exec"),
            env=env,
            app="tests.apps.flow",
        )
        for _ in range(size)
    ]


async def _all_completed(store: TaskStore, ids: list[int], seconds: float = 90) -> None:
    with anyio.fail_after(seconds):
        while True:
            infos = [await store.require(i) for i in ids]
            if all(i.status is TaskStatus.COMPLETED for i in infos):
                return
            await anyio.sleep(0.1)


async def _drain_with_fleet(
    store: TaskStore, db_url: str, backend: str, log: Path, ids: list[int]
) -> None:
    """Start the fleet, wait until every task of `ids` completed, stop it gracefully."""
    fleet = _fleet(db_url, backend, log)
    try:
        await _all_completed(store, ids)
    finally:
        _stop_all(fleet)


def _stop_all(fleet: list[subprocess.Popen]) -> None:
    for proc in fleet:  # one SIGTERM each: a second one means "cut off now"
        proc.send_signal(signal.SIGTERM)
    assert [proc.wait(60) for proc in fleet] == [0] * len(fleet)


async def test_no_more_than_the_concurrency_run_at_once_across_workers_and_it_is_reached(
    store: TaskStore, db_url: str, backend: str, tmp_path: Path
) -> None:
    await store.set_queue("limited", concurrency=3)
    items = [{"name": "flow.work", "queue": "limited", "payload": {"ms": 150}}] * 24
    ids = await store.enqueue_many(items)
    log = tmp_path / "flow.log"
    await _drain_with_fleet(store, db_url, backend, log, ids)
    rows = read_log(log)
    assert len(rows) == 24 and most_at_once(rows) == 3


async def test_no_window_of_the_period_holds_more_starts_than_the_rate(
    store: TaskStore, db_url: str, backend: str, tmp_path: Path
) -> None:
    await store.set_queue("limited", rate="8/1s")
    ids = await store.enqueue_many([{"name": "flow.work", "queue": "limited"}] * 20)
    log = tmp_path / "flow.log"
    await _drain_with_fleet(store, db_url, backend, log, ids)
    starts = sorted([(await store.require(i)).started_at for i in ids])
    gaps = [(starts[i + 8] - starts[i]).total_seconds() for i in range(len(starts) - 8)]
    assert min(gaps) >= 0.999  # the 9th start after any start is a period later
    assert (starts[-1] - starts[0]).total_seconds() < 4.5  # and the rate is used


async def test_tasks_of_one_key_never_overlap_and_start_in_order(
    store: TaskStore, db_url: str, backend: str, tmp_path: Path
) -> None:
    await store.set_queue("limited", key_concurrency=1)
    items = [
        {
            "name": "flow.work",
            "queue": "limited",
            "payload": {"ms": 60, "key": f"k{i % 4}"},
            "concurrency_key": f"k{i % 4}",
        }
        for i in range(24)
    ]
    ids = await store.enqueue_many(items)
    log = tmp_path / "flow.log"
    await _drain_with_fleet(store, db_url, backend, log, ids)
    rows = read_log(log)
    by_key: dict[str, list] = {}
    for row in rows:
        by_key.setdefault(row[4], []).append(row)
    assert len(by_key) == 4
    for runs in by_key.values():
        assert most_at_once(runs) == 1
        assert [r[0] for r in runs] == sorted(r[0] for r in runs)
    assert most_at_once(rows) > 1  # keys ran beside each other


async def test_a_paused_queue_starts_nothing_and_drains_once_resumed(
    store: TaskStore, db_url: str, backend: str, tmp_path: Path
) -> None:
    await store.pause_queue("limited")
    ids = await store.enqueue_many([{"name": "flow.work", "queue": "limited"}] * 12)
    log = tmp_path / "flow.log"
    fleet = _fleet(db_url, backend, log)
    try:
        with anyio.fail_after(60):  # every worker up and claiming
            while len([w for w in await store.workers() if w.alive]) < len(fleet):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        await anyio.sleep(1.5)
        assert {(await store.require(i)).status for i in ids} == {TaskStatus.CREATED}
        assert not log.exists()
        await store.resume_queue("limited")
        await _all_completed(store, ids, seconds=30)
    finally:
        _stop_all(fleet)
    assert len(read_log(log)) == 12


async def test_a_snoozed_task_completes_later_with_one_attempt_counted(
    store: TaskStore, db_url: str, backend: str, tmp_path: Path
) -> None:
    ids = await store.enqueue_many([{"name": "flow.snooze_once", "queue": "limited"}] * 6)
    await _drain_with_fleet(store, db_url, backend, tmp_path / "flow.log", ids)
    infos = [await store.require(i) for i in ids]
    # snoozed once (ctx.runs 1), then completed in its second run, the same attempt
    assert {(i.attempts, tuple(i.result)) for i in infos} == {(1, (1, 2))}


async def test_a_killed_workers_limited_slots_come_back_after_its_lease_and_nothing_is_lost(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    await store.set_queue("limited", concurrency=2)
    items = [{"name": "flow.work", "queue": "limited", "payload": {"ms": 300}}] * 6
    ids = await store.enqueue_many(items)
    log = tmp_path / "flow.log"
    args = ("--queue", "limited", "--lease-seconds", "2")
    env = {"TEST_FLOW_LOG": str(log)}
    doomed = start_worker(db_url, *args, env=env, app="tests.apps.flow")
    with anyio.fail_after(60):
        while (await store.stats())[0].counts.get("running", 0) < 2:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    heir = start_worker(db_url, *args, env=env, app="tests.apps.flow")
    try:
        await _all_completed(store, ids)
    finally:
        _stop_all([heir])
    assert most_at_once(read_log(log)) <= 2
