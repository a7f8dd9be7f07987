"""Many hosts: workers on three "hosts" (network namespaces) share one PostgreSQL; one
host's link is cut for longer than the lease. Its tasks are rescued and run on the other
hosts; when the link returns, its late completions are refused by the fence. Nothing is
lost, and only what the cut host held runs twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest

from benchmarks.cluster import ThrowawayCluster
from taskstore import TaskStore
from tests.helpers.netns import Hosts, why_not
from tests.helpers.processes import ROOT, executions

pytestmark = pytest.mark.fault

HOSTS, TASKS, LEASE, CUT_SECONDS = 3, 1500, 3.0, 10.0
_COMPLETED = "SELECT count(*) FROM taskstore_tasks WHERE status = 'completed'"


@pytest.fixture
def network() -> Iterator[tuple[Hosts, ThrowawayCluster]]:
    reason = why_not()
    if reason is not None:
        pytest.skip(f"partition test skipped: {reason}")
    hosts = Hosts(HOSTS)
    cluster: ThrowawayCluster | None = None
    try:
        hosts.open()
        gateways = tuple(hosts.gateway(k) for k in range(1, HOSTS + 1))
        # A throwaway server: it listens on the hosts' links; fsync off, nothing to keep.
        cluster = ThrowawayCluster(
            {"fsync": "off"}, addresses=gateways, trust=("10.213.0.0/16",)
        ).start()
        yield hosts, cluster
    finally:
        if cluster is not None:
            cluster.stop()
        hosts.close()


async def _migrated_database(cluster: ThrowawayCluster, name: str) -> TaskStore:
    """A new database `name` on the cluster, migrated; its store (not opened)."""
    admin = await asyncpg.connect(cluster.url())
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    store = TaskStore.from_url(cluster.url(database=name))
    await store.migrate()
    return store


def _worker(hosts: Hosts, k: int, url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TASKSTORE_DATABASE_URL": url, "TEST_EXEC_LOG": str(log)}
    argv = [sys.executable, "-m", "worker.cli", "--app", "tests.apps.pipeline"]
    argv += ["--lease-seconds", str(LEASE), "--concurrency", "10"]
    with open(log.with_suffix(f".{k}.err"), "w") as err:
        return subprocess.Popen(hosts.command(k, argv), cwd=ROOT, env=env, stderr=err)


async def _rows(admin: asyncpg.Connection, pid: int) -> list[int]:
    """Ids of the rows the worker process `pid` holds (leased, not ended)."""
    rows = await admin.fetch(
        "SELECT id FROM taskstore_tasks WHERE status IN ('assigned', 'running')"
        " AND worker_id LIKE $1",
        f"%:{pid}:%",
    )
    return [r["id"] for r in rows]


async def test_a_host_cut_off_past_its_lease_loses_nothing_and_its_late_completions_are_refused(
    network: tuple[Hosts, ThrowawayCluster], tmp_path: Path, figures
) -> None:
    hosts, cluster = network
    store = await _migrated_database(cluster, "partition")
    async with store:
        await store.enqueue_many(
            [{"name": "tests.sleep", "payload": {"seconds": 0.1}} for _ in range(TASKS)]
        )
    log = tmp_path / "exec.log"
    workers = [
        _worker(hosts, k, cluster.url(hosts.gateway(k), "partition"), log)
        for k in range(1, HOSTS + 1)
    ]
    victim = workers[0].pid
    admin = await asyncpg.connect(cluster.url(database="partition"))
    try:
        with anyio.fail_after(120):  # the victim is busy: it holds tasks when it is cut
            while len(executions(log)) < TASKS // 5 or not await _rows(admin, victim):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        hosts.cut(1)
        held = await _rows(admin, victim)
        await anyio.sleep(CUT_SECONDS)  # > the lease: the others rescue what it held
        rescued_before_heal = not await _rows(admin, victim)
        hosts.heal(1)
        with anyio.fail_after(180):
            while await admin.fetchval(_COMPLETED) < TASKS:  # noqa: ASYNC110
                await anyio.sleep(0.2)
        await anyio.sleep(2 * LEASE)  # the victim's retried completions reach the fence
        ended_by = dict(
            await admin.fetch(
                "SELECT id, worker_id FROM taskstore_tasks WHERE id = ANY($1::bigint[])", held
            )
        )
        statuses = dict(
            await admin.fetch("SELECT status, count(*) FROM taskstore_tasks GROUP BY status")
        )
    finally:
        await admin.close()
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in workers]
    runs = executions(log)
    twice = sorted(i for i, n in runs.items() if n > 1)
    figures(tasks=TASKS, held_at_cut=len(held), ran_twice=len(twice))
    assert statuses == {"completed": TASKS}  # nothing lost, nothing stuck
    assert len(runs) == TASKS
    assert rescued_before_heal  # its leases expired and were taken back while it was away
    assert set(twice) <= set(held)  # only what the cut host held ran again
    assert all(f":{victim}:" not in (ended_by[i] or "") for i in held)  # fence: not its ending
    assert codes == [0] * HOSTS  # the victim came back and stopped cleanly too


_PRODUCER = """
import asyncio, os, sys, time
from taskstore import TaskStore, TaskStoreError

async def main(url):
    store = TaskStore.from_url(url)
    await store.open()
    await store.enqueue("a.before")
    print("ready", flush=True)
    sys.stdin.readline()  # the link is cut now
    started = time.monotonic()
    try:
        await store.enqueue("a.during")
        print("enqueued", flush=True)
    except TaskStoreError as exc:
        print(f"{time.monotonic() - started:.1f} {exc}", flush=True)
    os._exit(0)  # closing would talk to a server it cannot reach

asyncio.run(main(sys.argv[1]))
"""


def _producer(hosts: Hosts, k: int, url: str) -> subprocess.Popen:
    argv = hosts.command(k, [sys.executable, "-c", _PRODUCER, url])
    return subprocess.Popen(
        argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


async def test_an_enqueue_into_a_link_that_drops_everything_fails_within_the_user_timeout(
    network: tuple[Hosts, ThrowawayCluster], figures
) -> None:
    hosts, cluster = network
    await (await _migrated_database(cluster, "frozen")).close()
    url = cluster.url(hosts.gateway(1), "frozen") + "?tcp_user_timeout=3000"
    producer = _producer(hosts, 1, url)
    try:
        with anyio.fail_after(60):
            assert (
                await anyio.to_thread.run_sync(producer.stdout.readline, abandon_on_cancel=True)
                == "ready\n"
            )
        hosts.cut(1)
        producer.stdin.write("go\n")
        producer.stdin.flush()
        with anyio.fail_after(60):  # the kernel alone would retransmit for ~15 minutes
            said = await anyio.to_thread.run_sync(producer.stdout.readline, abandon_on_cancel=True)
    finally:
        producer.kill()
        producer.wait(10)
        hosts.heal(1)
    seconds, message = said.split(" ", 1)
    figures(tcp_user_timeout_s=3.0, failed_after_s=float(seconds))
    assert float(seconds) < 20
    assert "cannot reach the database" in message, message
