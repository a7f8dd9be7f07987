"""Workflows across real worker processes: a dependent never starts before its last
dependency's completion is committed, and a SIGKILL mid-workflow loses nothing and runs
no dependent early. Starts and ends come from the handlers' log (wall clock, one machine)
and from the database's own started_at / finished_at (its clock)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import anyio

from taskstore import TaskStatus, TaskStore
from tests.apps.flow import read_log
from tests.helpers.processes import start_worker


def _worker(db_url: str, log: Path, *args: str, concurrency: int = 8) -> subprocess.Popen:
    return start_worker(
        db_url,
        "--queue",
        "flow",
        "--concurrency",
        str(concurrency),
        *args,
        exec_log=log.with_suffix(".exec"),
        env={"TEST_FLOW_LOG": str(log)},
        app="tests.apps.workflow",
    )


def _graph(width: int, ms: int) -> list[dict]:
    """`width` chains of three steps, each chain's end joined by one last step."""
    items: list[dict] = []
    for c in range(width):
        for s in range(3):
            item = {"name": "wf.step", "queue": "flow", "payload": {"ms": ms}, "key": f"{c}.{s}"}
            if s:
                item["depends_on"] = [f"{c}.{s - 1}"]
            items.append(item)
    ends = [f"{c}.2" for c in range(width)]
    items.append({"name": "wf.step", "queue": "flow", "depends_on": ends, "key": "join"})
    return items


def _edges(items: list[dict], ids: list[int]) -> list[tuple[int, int]]:
    by_key = {item["key"]: task_id for item, task_id in zip(items, ids, strict=True)}
    return [
        (by_key[item["key"]], by_key[dep]) for item in items for dep in item.get("depends_on", [])
    ]


async def _all_completed(store: TaskStore, ids: list[int], seconds: float = 90) -> dict:
    with anyio.fail_after(seconds):
        while True:
            infos = {i: await store.require(i) for i in ids}
            if all(info.status is TaskStatus.COMPLETED for info in infos.values()):
                return infos
            await anyio.sleep(0.1)


def _stop(fleet: list[subprocess.Popen]) -> None:
    for proc in fleet:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in fleet:
        proc.wait(60)


def _check_order(infos: dict, edges: list[tuple[int, int]], log: Path) -> None:
    runs = {}
    for task_id, start, end, _pid, _key in read_log(log):
        runs.setdefault(task_id, []).append((start, end))
    for task, dep in edges:
        assert infos[task].started_at >= infos[dep].finished_at, (task, dep)
        last_dep_end = max(end for _, end in runs[dep])
        assert min(start for start, _ in runs[task]) >= last_dep_end, (task, dep)
        assert dep in infos[task].result["saw"]


async def test_no_dependent_starts_before_its_dependencies_completed_across_workers(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    items = _graph(width=6, ms=40)
    log = tmp_path / "wf.log"
    fleet = [_worker(db_url, log, concurrency=2) for _ in range(3)]
    try:
        with anyio.fail_after(120):  # all three serving before the graph exists: shared work
            while len([w for w in await store.workers() if w.alive]) < 3:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        ids = await store.enqueue_many(items)
        infos = await _all_completed(store, ids)
    finally:
        _stop(fleet)
    _check_order(infos, _edges(items, ids), log)
    assert len({pid for *_, pid, _ in read_log(log)}) > 1  # the work was shared


async def test_a_sigkill_mid_workflow_loses_nothing_and_runs_no_dependent_early(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    items = _graph(width=8, ms=300)
    ids = await store.enqueue_many(items)
    log = tmp_path / "wf.log"
    fleet = [_worker(db_url, log, "--lease-seconds", "2") for _ in range(2)]
    try:
        with anyio.fail_after(60):
            while not log.exists() or len(log.read_text().splitlines()) < 4:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        fleet[0].send_signal(signal.SIGKILL)  # it holds running steps of several chains
        fleet[0].wait(30)
        fleet.append(_worker(db_url, log, "--lease-seconds", "2"))
        infos = await _all_completed(store, ids)
    finally:
        _stop(fleet)
    _check_order(infos, _edges(items, ids), log)
