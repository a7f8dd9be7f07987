"""Workflows on both databases: dependencies, results downstream, failure propagation, wait.

Graphs are enqueued as users would (ids, or keys within one `enqueue_many` call) and run
by in-process workers; what each handler saw is recorded in its result.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import anyio
import pytest
from sqlalchemy import delete, func, select, update

from taskstore import TaskStatus, TaskStore
from taskstore.cancelling import cancel_once
from taskstore.errors import IllegalTransition, InvalidInput, TaskNotFound
from taskstore.models import TaskDependency, TaskEntity
from taskstore.task_detail import task_links
from worker import NonRetryable, Registry, TaskContext, Worker, WorkerConfig, task

reg = Registry()


@task(name="wf.num", registry=reg)
async def num(ctx: TaskContext, n: int) -> dict:
    return {"n": n, "started": time.time()}


@task(name="wf.sum", registry=reg)
async def total(ctx: TaskContext) -> dict:
    results = await ctx.dependency_results()
    return {"sum": sum(r["n"] for r in results.values()), "from": sorted(results)}


@task(name="wf.join", registry=reg)
async def join(ctx: TaskContext, n: int) -> dict:
    results = await ctx.dependency_results()
    return {"n": n, "seen": {str(k): v["n"] for k, v in results.items()}, "at": time.time()}


@task(name="wf.reject", registry=reg, max_attempts=3)
async def reject(ctx: TaskContext) -> None:
    raise NonRetryable("this step cannot work")


@task(name="wf.flaky", registry=reg, max_attempts=3, backoff=0.01)
async def flaky(ctx: TaskContext) -> str:
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} went wrong")
    return "third time lucky"


def burst(store: TaskStore, **overrides) -> Worker:
    options = {"queues": {"default": None}, "burst": True, "lease_seconds": 10.0} | overrides
    return Worker(store, reg, WorkerConfig(**options))


async def count_rows(store: TaskStore, entity: type) -> int:
    async with store.reading() as conn:
        return (await conn.execute(select(func.count()).select_from(entity))).scalar_one()


async def test_a_burst_worker_settles_a_waiting_task_whose_dependency_ended_unsettled(
    store: TaskStore,
) -> None:
    """An ending no worker settled (one written by a release before workflows, or one
    that raced a producer's open transaction): a burst run ends before its rescue loop
    would come round, so it settles first."""
    a = await store.enqueue("wf.num", {"n": 1})
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    async with store.transaction() as conn:
        done = {"status": "completed", "result": {"n": 1}, "finished_at": dt.datetime.now(dt.UTC)}
        await conn.execute(update(TaskEntity).where(TaskEntity.id == a).values(**done))
    assert (await store.require(b)).status is TaskStatus.WAITING
    await burst(store).run()
    info = await store.require(b)
    assert (info.status, info.result["seen"]) == (TaskStatus.COMPLETED, {str(a): 1})


async def test_a_fan_out_of_100_and_its_fan_in_run_from_one_call_with_the_sum(
    store: TaskStore,
) -> None:
    leaves = [{"name": "wf.num", "payload": {"n": n}, "key": f"n{n}"} for n in range(100)]
    fan_in = {"name": "wf.sum", "depends_on": [f"n{n}" for n in range(100)]}
    ids = await store.enqueue_many([*leaves, fan_in])
    assert (await store.require(ids[-1])).status is TaskStatus.WAITING
    await burst(store, concurrency=20).run()
    info = await store.require(ids[-1])
    assert info.status is TaskStatus.COMPLETED
    assert info.result == {"sum": sum(range(100)), "from": ids[:-1]}


async def test_a_diamond_runs_its_join_after_both_branches_with_their_results(
    store: TaskStore,
) -> None:
    a = await store.enqueue("wf.num", {"n": 1})
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    c = await store.enqueue("wf.join", {"n": 3}, depends_on=[a])
    d = await store.enqueue("wf.join", {"n": 4}, depends_on=[b, c])
    assert [(await store.require(i)).status for i in (a, b, c, d)] == [
        TaskStatus.CREATED,
        TaskStatus.WAITING,
        TaskStatus.WAITING,
        TaskStatus.WAITING,
    ]
    await burst(store, concurrency=4).run()
    infos = {i: await store.require(i) for i in (a, b, c, d)}
    assert all(info.status is TaskStatus.COMPLETED for info in infos.values())
    assert infos[d].result["seen"] == {str(b): 2, str(c): 3}
    assert infos[d].started_at >= max(infos[b].finished_at, infos[c].finished_at)
    assert infos[b].started_at >= infos[a].finished_at


async def test_a_failed_step_cancels_everything_below_it_none_started(store: TaskStore) -> None:
    a = await store.enqueue("wf.num", {"n": 1})
    b = await store.enqueue("wf.reject", depends_on=[a])
    c = await store.enqueue("wf.join", {"n": 3}, depends_on=[b])
    d = await store.enqueue("wf.join", {"n": 4}, depends_on=[c])
    other = await store.enqueue("wf.num", {"n": 5})
    await burst(store).run()
    infos = {i: await store.require(i) for i in (a, b, c, d, other)}
    assert infos[a].status is TaskStatus.COMPLETED and infos[other].status is TaskStatus.COMPLETED
    assert infos[b].status is TaskStatus.FAILED and infos[b].attempts == 1
    for below, cause in ((c, b), (d, c)):
        info = infos[below]
        assert info.status is TaskStatus.CANCELLED
        assert info.started_at is None and info.attempts == 0
        assert info.error["type"] == "DependencyFailed"
        assert info.error["dependency"] == cause and f"dependency {cause} " in info.error["message"]


async def test_cancelling_a_waiting_task_cancels_its_dependents(store: TaskStore) -> None:
    a = await store.enqueue("wf.num", {"n": 1}, delay=3600)
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    c = await store.enqueue("wf.join", {"n": 3}, depends_on=[b])
    assert await store.cancel(b) is TaskStatus.CANCELLED
    assert (await store.require(c)).status is TaskStatus.CANCELLED
    assert (await store.require(c)).error["dependency"] == b
    assert (await store.require(a)).status is TaskStatus.CREATED


async def test_an_operator_cancel_names_what_it_cancelled_below_and_is_once_enough(
    store: TaskStore,
) -> None:
    a = await store.enqueue("wf.num", {"n": 1}, delay=3600)
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    c = await store.enqueue("wf.join", {"n": 3}, depends_on=[b])
    elsewhere = await store.enqueue("wf.join", {"n": 4}, depends_on=[a])
    done = await cancel_once(store, b)
    assert (done.status, done.already, done.with_it) == (TaskStatus.CANCELLED, False, [c])
    assert (await store.require(elsewhere)).status is TaskStatus.WAITING
    again = await cancel_once(store, b)
    assert (again.status, again.already, again.with_it) == (TaskStatus.CANCELLED, True, [])
    other = await store.enqueue("wf.num", {"n": 5})
    await burst(store).run()
    with pytest.raises(IllegalTransition):
        await cancel_once(store, other)  # completed: not something a cancel can undo


async def test_a_completed_dependency_counts_as_met(store: TaskStore) -> None:
    a = await store.enqueue("wf.num", {"n": 7})
    await burst(store).run()
    b = await store.enqueue("wf.join", {"n": 8}, depends_on=[a])
    assert (await store.require(b)).status is TaskStatus.CREATED
    await burst(store).run()
    assert (await store.require(b)).result["seen"] == {str(a): 7}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"name": "wf.num", "depends_on": [999999]}], "depends_on names no task: 999999"),
        ([{"name": "wf.num", "depends_on": ["nope"]}], "no task of the batch with the key 'nope'"),
        (
            [
                {"name": "wf.num", "key": "a", "depends_on": ["b"]},
                {"name": "wf.num", "key": "b", "depends_on": ["a"]},
            ],
            "makes a cycle",
        ),
        ([{"name": "wf.num", "key": "a", "depends_on": ["a"]}], "makes a cycle"),
        ([{"name": "wf.num", "depends_on": [0]}], "not a task id"),
        ([{"name": "wf.num", "depends_on": "a"}], "must be a list of task ids"),
        (
            [{"name": "wf.num", "key": "a"}, {"name": "wf.num", "key": "a"}],
            "two tasks of the batch have the key 'a'",
        ),
    ],
)
async def test_a_graph_that_cannot_run_is_refused_in_one_line_with_nothing_written(
    store: TaskStore, items: list, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        await store.enqueue_many(items)
    assert "\n" not in str(caught.value)
    assert await count_rows(store, TaskEntity) == 0
    assert await count_rows(store, TaskDependency) == 0


async def test_a_failed_dependency_is_refused_and_a_key_outside_a_batch_too(
    store: TaskStore,
) -> None:
    bad = await store.enqueue("wf.reject")
    await burst(store).run()
    with pytest.raises(InvalidInput, match=f"dependency {bad} is failed"):
        await store.enqueue("wf.num", depends_on=[bad])
    with pytest.raises(InvalidInput, match="keys name tasks of one enqueue_many batch"):
        await store.enqueue("wf.num", depends_on=["a"])
    assert await count_rows(store, TaskEntity) == 1


async def test_a_graph_enqueued_in_a_transaction_that_rolls_back_leaves_nothing(
    store: TaskStore,
) -> None:
    first = await store.enqueue("wf.num", {"n": 1})
    async with store.sessions() as session, session.begin():
        a = await store.enqueue("wf.num", {"n": 2}, session=session)
        await store.enqueue_many(
            [{"name": "wf.join", "payload": {"n": 3}, "depends_on": [a, first]}],
            session=session,
        )
        await session.rollback()
    assert await count_rows(store, TaskEntity) == 1
    assert await count_rows(store, TaskDependency) == 0
    assert (await store.require(first)).status is not TaskStatus.WAITING


async def test_purge_keeps_a_completed_dependency_that_a_task_still_waits_for(
    store: TaskStore,
) -> None:
    a = await store.enqueue("wf.num", {"n": 1})
    lone = await store.enqueue("wf.num", {"n": 2})
    await burst(store).run()
    blocker = await store.enqueue("wf.num", {"n": 3}, delay=3600)
    waiting = await store.enqueue("wf.join", {"n": 4}, depends_on=[a, blocker])
    assert await store.purge(older_than=0) == 1  # `lone` only
    assert await store.get(lone) is None
    assert (await store.require(a)).status is TaskStatus.COMPLETED
    assert (await store.require(waiting)).status is TaskStatus.WAITING


async def test_purge_keeps_a_dependency_until_every_dependent_has_completed(
    store: TaskStore,
) -> None:
    """Its dependents no longer wait, yet have not run: one scheduled for later (its
    dependency completed), and one that failed and may be retried."""
    a = await store.enqueue("wf.num", {"n": 1})
    later = await store.enqueue("wf.join", {"n": 2}, depends_on=[a], delay=3600)
    b = await store.enqueue("wf.num", {"n": 3})
    rejected = await store.enqueue("wf.reject", depends_on=[b])
    await burst(store).run()
    assert (await store.require(later)).status is TaskStatus.CREATED  # due in an hour
    assert (await store.require(rejected)).status is TaskStatus.FAILED
    assert await store.purge(older_than=0, statuses=["completed"]) == 0
    assert await store.retry(rejected) is TaskStatus.CREATED  # b's result is still there
    await store.cancel(rejected)
    await store.cancel(later)
    # The dependents go first; their dependencies in the next purge, as nothing needs them.
    assert await store.purge(older_than=0) == 2
    assert await store.purge(older_than=0) == 2
    assert [await store.get(i) for i in (a, b)] == [None, None]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_an_enqueue_in_an_open_transaction_leaves_its_running_dependencies_alone(
    store: TaskStore,
) -> None:
    """A caller's transaction may stay open for long: the dependencies it names keep their
    heartbeats and endings meanwhile (SQLite: that transaction holds the one write lock,
    so nothing else writes anyway). An ending it could not see is settled by the sweep."""
    from taskstore.consumer import Consumer

    done_dep = await store.enqueue("wf.num", {"n": 1})
    failing = await store.enqueue("wf.num", {"n": 2})
    worker = Consumer(store, "w-1", 30.0)
    try:
        claimed = {t.id: t for t in await worker.claim("default", 2)}
        async with store.sessions() as session, session.begin():
            ok = await store.enqueue("wf.join", {"n": 3}, depends_on=[done_dep], session=session)
            bad = await store.enqueue("wf.join", {"n": 4}, depends_on=[failing], session=session)
            with anyio.fail_after(5):  # before: held until the caller's commit
                async with store.transaction() as conn:
                    kept = await store.tasks.heartbeat(
                        conn, worker_id="w-1", lease_seconds=30.0, task_ids=list(claimed)
                    )
                assert kept == set(claimed)
                ending = (done_dep, claimed[done_dep].fence, None)
                assert await worker.complete([ending]) == {done_dep}
                error = {"type": "ValueError", "message": "no"}
                await worker.fail(failing, claimed[failing].fence, error, None)
        await worker.rescue(["default"])
        assert (await store.require(ok)).status is TaskStatus.CREATED
        cancelled = await store.require(bad)
        assert cancelled.status is TaskStatus.CANCELLED
        assert cancelled.error["type"] == "DependencyFailed"
    finally:
        await worker.close()


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_blocking_enqueue_in_an_open_transaction_leaves_its_running_dependency_alone(
    store: TaskStore, db_url: str
) -> None:
    """`enqueue_with` on a caller's blocking session, as `session=` does above."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from taskstore.consumer import Consumer
    from taskstore.sync import enqueue_with
    from tests.integration.test_sync_api import sync_url

    dep = await store.enqueue("wf.num", {"n": 1})
    worker = Consumer(store, "w-1", 30.0)
    engine = create_engine(sync_url(db_url))
    session = Session(engine)
    try:
        [claimed] = await worker.claim("default", 1)
        child = await anyio.to_thread.run_sync(
            lambda: enqueue_with(session, "wf.join", {"n": 2}, depends_on=[dep])
        )
        with anyio.fail_after(5):  # before: held until the caller's commit
            async with store.transaction() as conn:
                kept = await store.tasks.heartbeat(
                    conn, worker_id="w-1", lease_seconds=30.0, task_ids=[dep]
                )
            assert kept == {dep}
            assert await worker.complete([(dep, claimed.fence, None)]) == {dep}
        await anyio.to_thread.run_sync(session.commit)
        await worker.rescue(["default"])
        assert (await store.require(child)).status is TaskStatus.CREATED
    finally:
        await anyio.to_thread.run_sync(session.close)
        engine.dispose()
        await worker.close()


async def test_a_dependency_enqueued_in_the_same_open_transaction_is_found(
    store: TaskStore,
) -> None:
    async with store.sessions() as session, session.begin():
        first = await store.enqueue("wf.num", {"n": 1}, session=session)
        then = await store.enqueue("wf.join", {"n": 2}, depends_on=[first], session=session)
    assert (await store.require(then)).status is TaskStatus.WAITING
    await burst(store).run()
    assert (await store.require(then)).status is TaskStatus.COMPLETED


async def test_wait_returns_the_finished_task_and_times_out_otherwise(store: TaskStore) -> None:
    a = await store.enqueue("wf.num", {"n": 1})
    with pytest.raises(TimeoutError, match=rf"^task {a} did not finish within 0\.2s$"):
        await store.wait(a, timeout=0.2)
    with pytest.raises(TaskNotFound):
        await store.wait(999999, timeout=1)
    async with anyio.create_task_group() as group:

        async def run_later() -> None:
            await anyio.sleep(0.3)
            await burst(store).run()

        group.start_soon(run_later)
        began = time.monotonic()
        info = await store.wait(a, timeout=30)
        waited = time.monotonic() - began
    assert info.status is TaskStatus.COMPLETED and info.result["n"] == 1
    # Woken by the ending, not by the slow re-read (every 5 s where notifications come).
    assert waited < 4.0
    failed = await store.enqueue("wf.reject")
    await burst(store).run()
    assert (await store.wait(failed, timeout=1)).status is TaskStatus.FAILED


async def test_a_task_may_depend_on_more_ids_than_one_statement_takes(store: TaskStore) -> None:
    parts = await store.enqueue_many([{"name": "wf.num", "payload": {"n": 1}}] * 33_000)
    gather = await store.enqueue("wf.sum", depends_on=parts)  # PostgreSQL: 32,767 parameters
    assert (await store.require(gather)).status is TaskStatus.WAITING
    async with store.reading() as conn:
        count = select(func.count()).where(TaskDependency.task_id == gather)
        assert (await conn.execute(count)).scalar_one() == 33_000


async def test_an_id_past_64_bits_names_no_task_and_no_dependency(store: TaskStore) -> None:
    huge = 2**70
    assert await store.get(huge) is None
    for action in (store.require, store.cancel, store.retry, store.wait):
        with pytest.raises(TaskNotFound, match=f"no task with id {huge}"):
            await action(huge)
    with pytest.raises(InvalidInput, match="which is not a task id"):
        await store.enqueue("wf.num", {"n": 1}, depends_on=[huge])


async def test_a_task_id_that_is_not_an_integer_is_refused_not_missing(store: TaskStore) -> None:
    task_id = await store.enqueue("wf.num", {"n": 1})
    for action in (store.get, store.require, store.cancel, store.retry, store.wait):
        with pytest.raises(InvalidInput, match=f"a task id is an integer, got '{task_id}'"):
            await action(str(task_id))
    with pytest.raises(InvalidInput, match="timeout must be a number of seconds, got '1'"):
        await store.wait(task_id, timeout="1")


async def test_a_wait_of_no_time_answers_for_a_finished_or_unknown_task(store: TaskStore) -> None:
    done = await store.enqueue("wf.num", {"n": 1})
    await burst(store).run()
    assert (await store.wait(done, timeout=0)).status is TaskStatus.COMPLETED
    with pytest.raises(TaskNotFound):
        await store.wait(999999, timeout=0)
    with pytest.raises(InvalidInput, match="timeout must be a number of seconds"):
        await store.wait(done, timeout=float("nan"))


async def test_a_task_that_failed_twice_then_completed_has_three_attempts_logged(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("wf.flaky")
    for _ in range(3):
        await anyio.sleep(0.05)  # past the backoff
        await burst(store).run()
    info = await store.require(task_id)
    assert info.status is TaskStatus.COMPLETED and info.attempts == 3
    log = (await task_links(store, info)).attempts_log
    assert [(e["attempt"], e["outcome"], e["error_type"]) for e in log] == [
        (1, "retried", "RuntimeError"),
        (2, "retried", "RuntimeError"),
        (3, "completed", None),
    ]
    assert log[0]["error_message"] == "attempt 1 went wrong"
    assert all(e["started_at"] <= e["finished_at"] for e in log)
    assert log[0]["finished_at"] <= log[1]["started_at"] and all(e["worker_id"] for e in log)


async def test_a_task_retried_by_hand_numbers_its_runs_on_across_the_fresh_budget(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("wf.reject")
    await burst(store).run()
    await store.retry(task_id)
    await burst(store).run()
    log = (await task_links(store, await store.require(task_id))).attempts_log
    assert [(e["number"], e["attempt"], e["outcome"]) for e in log] == [
        (1, 1, "failed"),
        (2, 1, "failed"),
    ]


async def test_retry_with_dependents_puts_what_the_failure_cancelled_back_to_waiting(
    store: TaskStore,
) -> None:
    a = await store.enqueue("wf.reject")
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    c = await store.enqueue("wf.join", {"n": 3}, depends_on=[b])
    own = await store.enqueue("wf.join", {"n": 4}, depends_on=[a])
    other = await store.enqueue("wf.num", {"n": 9}, delay=3600)
    blocked = await store.enqueue("wf.join", {"n": 5}, depends_on=[a, other])
    await burst(store).run()
    await store.cancel(other)
    assert (await store.require(blocked)).status is TaskStatus.CANCELLED
    assert await store.retry(a, with_dependents=True) is TaskStatus.CREATED
    statuses = {i: (await store.require(i)).status for i in (a, b, c, own, blocked)}
    assert statuses == {
        a: TaskStatus.CREATED,
        b: TaskStatus.WAITING,
        c: TaskStatus.WAITING,
        own: TaskStatus.WAITING,
        blocked: TaskStatus.CANCELLED,  # it also waits for `other`, cancelled since
    }
    assert (await store.require(b)).error is None


async def test_a_dependent_a_retry_leaves_cancelled_names_the_dependency_that_still_holds_it(
    store: TaskStore,
) -> None:
    a = await store.enqueue("wf.reject")
    other = await store.enqueue("wf.num", {"n": 9}, delay=3600)
    blocked = await store.enqueue("wf.join", {"n": 5}, depends_on=[a, other])
    await burst(store).run()
    assert (await store.require(blocked)).error["dependency"] == a
    await store.cancel(other)
    await store.retry(a, with_dependents=True)
    left = await store.require(blocked)
    assert left.status is TaskStatus.CANCELLED
    assert left.error == {
        "type": "DependencyFailed",
        "message": f"dependency {other} (wf.num) ended cancelled",
        "dependency": other,
    }


async def test_cli_retry_with_dependents_names_the_tasks_that_wait_again(
    store: TaskStore,
) -> None:
    a = await store.enqueue("wf.reject")
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    c = await store.enqueue("wf.join", {"n": 3}, depends_on=[b])
    other = await store.enqueue("wf.num", {"n": 9}, delay=3600)
    blocked = await store.enqueue("wf.join", {"n": 5}, depends_on=[a, other])
    await burst(store).run()
    await store.cancel(other)
    url = store.settings.database_url.render_as_string(hide_password=False)
    argv = [sys.executable, "-m", "taskstore.cli", "retry", str(a), "--with-dependents"]
    done = await anyio.run_process([*argv, "--database-url", url], check=False)
    assert done.returncode == 0, done.stderr
    # c (below b) too; not `blocked`, which also waits for the cancelled `other`
    lines = done.stdout.decode().splitlines()
    assert lines == [f"task {a} is created", f"waiting for it again: {b}, {c}"]
    assert (await store.require(blocked)).status is TaskStatus.CANCELLED
    # a failure whose cancelled dependents were purged since: the retry says so
    lone = await store.enqueue("wf.reject")
    below = await store.enqueue("wf.join", {"n": 6}, depends_on=[lone])
    await burst(store).run()
    async with store.transaction() as conn:
        await conn.execute(delete(TaskEntity).where(TaskEntity.id == below))
    argv[-2] = str(lone)
    done = await anyio.run_process([*argv, "--database-url", url], check=False)
    lines = done.stdout.decode().splitlines()
    assert lines == [f"task {lone} is created", "no dependent of it waits for it now"]


async def test_a_retried_dependent_waits_for_its_unfinished_dependency_and_then_runs_after_it(
    store: TaskStore,
) -> None:
    a = await store.enqueue("wf.num", {"n": 1})
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    await store.cancel(b)
    assert await store.retry(b) is TaskStatus.WAITING  # not created: `a` has not run
    with pytest.raises(
        IllegalTransition, match=f"cannot retry task {b}: it is waiting \\(only a failed"
    ):
        await store.retry(b)
    assert (await store.require(b)).error is None
    await burst(store).run()
    done = {i: await store.require(i) for i in (a, b)}
    assert {i: t.status for i, t in done.items()} == {
        a: TaskStatus.COMPLETED,
        b: TaskStatus.COMPLETED,
    }
    assert done[b].started_at >= done[a].finished_at
    assert done[b].result["seen"] == {str(a): 1}  # its dependency's result, not None


async def test_a_dependent_of_a_failed_or_cancelled_task_cannot_be_retried_alone(
    store: TaskStore,
) -> None:
    from taskstore.errors import IllegalTransition

    a = await store.enqueue("wf.reject")
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    await burst(store).run()
    assert (await store.require(b)).status is TaskStatus.CANCELLED
    with pytest.raises(IllegalTransition, match=f"its dependency {a} is failed"):
        await store.retry(b)
    assert (await store.require(b)).status is TaskStatus.CANCELLED  # nothing changed


async def test_the_dashboard_shows_a_tasks_workflow_in_steps(store: TaskStore) -> None:
    from taskstore.dashboard.data import task_detail

    a = await store.enqueue("wf.num", {"n": 1})
    b = await store.enqueue("wf.join", {"n": 2}, depends_on=[a])
    c = await store.enqueue("wf.join", {"n": 3}, depends_on=[a])
    d = await store.enqueue("wf.join", {"n": 4}, depends_on=[b, c])
    lone = await store.enqueue("wf.num", {"n": 5})
    steps = (await task_detail(store, c)).to_json()["workflow"]
    assert [[task["id"] for task in step] for step in steps] == [[a], [b, c], [d]]
    assert steps[2][0]["depends_on"] == [b, c] and steps[1][0]["status"] == "waiting"
    assert (await task_detail(store, lone)).to_json()["workflow"] == []
