"""Claims and acknowledgements on held autocommit connections (the worker's hot path,
which PostgreSQL runs on the driver directly) behave exactly as in a transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from taskstore import TaskStatus, TaskStore, validation
from taskstore.consumer import Consumer
from taskstore.errors import DatabaseUnavailable
from taskstore.links import Link
from tests.helpers.faults import admin_connect

W = "worker-hot"


async def claim_in_statement(store: TaskStore, limit: int, worker: str = W) -> list:
    async with store.statement() as conn:
        return await store.tasks.claim(
            conn, worker_id=worker, queue="default", limit=limit, lease_seconds=30
        )


async def test_a_claim_in_autocommit_returns_the_rows_a_transaction_would(
    store: TaskStore,
) -> None:
    low = await store.enqueue("t.x", {"n": 1, "tags": ["a", "b"]}, max_attempts=4)
    high = await store.enqueue("t.y", {"nested": {"k": None}}, priority=7)
    got = await claim_in_statement(store, limit=5)
    assert [t.id for t in got] == [high, low]  # best first
    first, second = got
    assert (first.name, first.queue, first.payload, first.attempt, first.priority) == (
        "t.y",
        "default",
        {"nested": {"k": None}},
        1,
        7,
    )
    assert (second.payload, second.max_attempts) == ({"n": 1, "tags": ["a", "b"]}, 4)
    assert first.max_attempts is None
    info = await store.require(low)
    assert info.status is TaskStatus.RUNNING and info.worker_id == W and info.attempts == 1
    assert await claim_in_statement(store, limit=5) == []


async def test_acks_in_autocommit_are_fenced_like_in_a_transaction(store: TaskStore) -> None:
    await store.enqueue_many([{"name": "t.x"} for _ in range(3)])
    a, b, c = await claim_in_statement(store, limit=3)
    async with store.statement() as conn:
        accepted = await store.tasks.complete_many(
            conn, worker_id=W, done=[(a.id, a.fence, '{"ok": 1}'), (b.id, b.fence + 1, None)]
        )
    async with store.statement() as conn:
        intruder = await store.tasks.complete_many(
            conn, worker_id="someone-else", done=[(c.id, c.fence, None)]
        )
    assert (accepted, intruder) == ({a.id}, set())
    done = await store.require(a.id)
    assert done.status is TaskStatus.COMPLETED and done.result == {"ok": 1}
    assert (await store.require(b.id)).status is TaskStatus.RUNNING


async def _ack_raising(store: TaskStore, conn_of: Any, claimed: Any) -> type[BaseException]:
    with pytest.raises(DBAPIError, match=r"(?i)json") as caught:
        async with conn_of() as conn:
            await store.tasks.complete_many(
                conn, worker_id=W, done=[(claimed.id, claimed.fence, "{not json")]
            )
    return type(caught.value)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_database_error_on_the_direct_path_is_the_one_sqlalchemy_raises(
    store: TaskStore,
) -> None:
    [task] = await store.enqueue_many([{"name": "t.x"}])
    [claimed] = await claim_in_statement(store, limit=1)
    direct = await _ack_raising(store, store.statement, claimed)
    through_sqlalchemy = await _ack_raising(store, store.transaction, claimed)
    assert direct is through_sqlalchemy
    assert (await store.require(task)).status is TaskStatus.RUNNING  # nothing half-written


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_killed_connection_on_the_direct_path_says_the_database_is_unreachable(
    store: TaskStore, db_url: str
) -> None:
    await store.enqueue_many([{"name": "t.x"}] * 2)
    admin = await admin_connect(db_url)
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot reach the database"):
            async with store.statement() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                killed = "SELECT pg_terminate_backend($1, 5000)"
                assert await admin.fetchval(killed, raw.get_server_pid())
                await store.tasks.claim(
                    conn, worker_id=W, queue="default", limit=1, lease_seconds=30
                )
    finally:
        await admin.close()
    assert len(await claim_in_statement(store, limit=5)) == 2  # a fresh connection; no loss


async def _server_pid(store: TaskStore) -> int:
    async with store.statement() as conn:
        return (await conn.get_raw_connection()).driver_connection.get_server_pid()


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_single_statements_in_a_row_reuse_one_held_connection(store: TaskStore) -> None:
    first = await _server_pid(store)
    await store.enqueue("t.x")
    assert await _server_pid(store) == first


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_concurrent_single_statements_each_get_a_connection_and_few_are_kept(
    store: TaskStore,
) -> None:
    gate, all_in = asyncio.Event(), asyncio.Event()
    pids: list[int] = []

    async def hold() -> None:
        async with store.statement() as conn:
            pids.append((await conn.get_raw_connection()).driver_connection.get_server_pid())
            if len(pids) == 5:
                all_in.set()
            await gate.wait()

    waiting = [asyncio.create_task(hold()) for _ in range(5)]
    await asyncio.wait_for(all_in.wait(), 10)
    gate.set()
    await asyncio.gather(*waiting)
    assert len(set(pids)) == 5
    kept = store.engine.pool.checkedout()
    assert kept <= 2, f"{kept} connections still held after the burst"


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_held_connection_killed_while_idle_is_replaced_before_use(
    store: TaskStore, db_url: str
) -> None:
    pid = await _server_pid(store)
    admin = await admin_connect(db_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the driver reads the server's goodbye
    assert await store.enqueue("t.x") > 0  # no error reaches the caller
    assert await _server_pid(store) != pid


def _new(name: str) -> validation.NewTask:
    return validation.new_task(name, {}, max_payload_bytes=1000)


def _link(store: TaskStore) -> Link:
    return Link(store.engine, store.backend, store.translate)


async def test_a_links_transaction_is_atomic_and_its_single_statements_stay_autocommit(
    store: TaskStore,
) -> None:
    link = _link(store)
    try:
        with pytest.raises(RuntimeError):
            async with link.transaction() as conn:
                await store.tasks.insert(conn, [_new("t.a")])
                raise RuntimeError("the second statement failed")
        assert await store.list() == []  # nothing half-written
        async with link.transaction() as conn:
            for name in ("t.a", "t.b"):
                await store.tasks.insert(conn, [_new(name)])
        async with link.statement() as conn:  # a lone statement after a transaction
            await store.tasks.insert(conn, [_new("t.c")])
        assert sorted(t.name for t in await store.list()) == ["t.a", "t.b", "t.c"]
    finally:
        await link.close()


async def test_concurrent_users_of_one_link_take_turns_on_one_connection(
    store: TaskStore,
) -> None:
    link, inside, most = _link(store), 0, 0

    async def use(n: int) -> None:
        nonlocal inside, most
        async with link.transaction() as conn:
            inside += 1
            most = max(most, inside)
            await store.tasks.insert(conn, [_new(f"t.{n}")])
            await asyncio.sleep(0.01)
            inside -= 1

    try:
        await asyncio.gather(*(use(n) for n in range(8)))
    finally:
        await link.close()
    assert most == 1 and len(await store.list()) == 8
    assert store.engine.pool.checkedout() == 0  # the link's one connection is back


async def test_a_callers_error_in_a_links_transaction_keeps_its_connection(
    store: TaskStore,
) -> None:
    """A lease lost or a bad argument rolls back; only the driver's errors reconnect."""
    link = _link(store)
    try:
        async with link.transaction() as conn:
            before = (await conn.get_raw_connection()).driver_connection
        with pytest.raises(ValueError):
            async with link.transaction():
                raise ValueError("not the database's fault")
        async with link.transaction() as conn:
            assert (await conn.get_raw_connection()).driver_connection is before
    finally:
        await link.close()


async def test_a_claim_carrying_completions_writes_them_fenced_and_claims_what_they_free(
    store: TaskStore,
) -> None:
    consumer = Consumer(store, W, 30.0)
    try:
        first = await store.enqueue("t.x")
        after = await store.enqueue("t.y", depends_on=[first])
        [claimed] = await consumer.claim("default", 5)
        stale = (claimed.id, claimed.fence + 1, None)  # an attempt that is not ours
        accepted, tasks = await consumer.claim_completing("default", 5, [stale])
        assert (accepted, tasks) == (set(), [])
        accepted, tasks = await consumer.claim_completing(
            "default", 5, [(claimed.id, claimed.fence, '{"ok": 1}')]
        )
        assert accepted == {first}
        assert [t.id for t in tasks] == [after]  # freed by the completion in the same unit
        done = await store.get(first)
        assert (done.status, done.result) == (TaskStatus.COMPLETED, {"ok": 1})
    finally:
        await consumer.close()


async def test_completions_of_a_claim_that_fails_are_not_written(
    store: TaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = Consumer(store, W, 30.0)
    try:
        task_id = await store.enqueue("t.x")
        [claimed] = await consumer.claim("default", 5)

        async def broken(*_args: Any, **_kwargs: Any) -> None:
            raise LookupError("the claim went wrong")

        monkeypatch.setattr(store.tasks, "claim_later", broken)
        with pytest.raises(LookupError, match="the claim went wrong"):
            await consumer.claim_completing("default", 5, [(task_id, claimed.fence, None)])
        assert (await store.get(task_id)).status == TaskStatus.RUNNING
    finally:
        await consumer.close()


async def test_the_due_probe_reuses_one_statement_per_shape_and_answers_for_its_values(
    store: TaskStore,
) -> None:
    await store.enqueue("t.a", queue="q1")
    await store.enqueue("t.b", queue="q2")
    consumer = Consumer(store, W, 30.0)
    try:

        async def due(queues: list[str], skip: dict[str, list[str]] | None = None) -> bool:
            async with store.reading() as conn:
                return await store.tasks.any_due(conn, queues, skip=skip)

        assert await due(["q1"]) and await due(["q2"]) and not await due(["q3"])
        assert await due(["q1"], {"q1": ["t.b"]}) and not await due(["q1"], {"q1": ["t.a"]})
        assert await due(["q1", "q2"], {"q1": ["t.a"]})
        assert not await due(["q1", "q2"], {"q1": ["t.a"], "q2": ["t.b", "t.c"]})
        assert await consumer.any_due(["q3", "q2"]) and not await consumer.any_due(["q3"])
        probes = store.tasks._due
        first, params = probes.probe(["q1"], {"q1": ["x"]}, orphans=False, waiting_seconds=0)
        again, other = probes.probe(["q2"], {"q2": ["y"]}, orphans=False, waiting_seconds=0)
        assert again is first and (params, other) == (
            {"q0": "q1", "q0_n0": "x"},
            {"q0": "q2", "q0_n0": "y"},
        )
    finally:
        await consumer.close()
