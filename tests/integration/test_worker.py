"""The worker runtime in-process, on both backends: results, failures, retries, sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from taskstore import InvalidInput, TaskStatus, TaskStore
from taskstore.models import MediaEntity, TranscriptEntity, VideoEntity
from worker import (
    NonRetryable,
    Registry,
    Snooze,
    TaskContext,
    Worker,
    WorkerConfig,
    middleware,
    task,
)
from worker.state import UNRECORDED

reg = Registry()


@task(name="t.echo", registry=reg)
async def echo(ctx: TaskContext, value: object) -> dict:
    return {"value": value, "attempt": ctx.attempt, "queue": ctx.queue, "id": ctx.task_id}


@task(name="t.write_then_fail", registry=reg, max_attempts=2, backoff=0.01)
async def write_then_fail(ctx: TaskContext) -> None:
    async with ctx.session() as session:
        session.add(VideoEntity(id=f"w{ctx.task_id}-{ctx.attempt}", url="u", task_id=ctx.task_id))
        await session.flush()
    raise RuntimeError(f"exploded on attempt {ctx.attempt}")


@task(name="t.write", registry=reg)
async def write(ctx: TaskContext, n: int) -> None:
    async with ctx.session() as session:
        session.add(VideoEntity(id=f"ok{n}", url="u", duration=1.0, task_id=ctx.task_id))
        session.add(TranscriptEntity(media_id=f"ok{n}", task_id=ctx.task_id, text="t"))


@task(name="t.clashing_rows", registry=reg, max_attempts=1)
async def clashing_rows(ctx: TaskContext) -> None:
    """Two videos of one id, left for the completion to flush."""
    async with ctx.session() as session:
        for url in ("a", "b"):
            session.add(VideoEntity(id=f"clash{ctx.task_id}", url=url, task_id=ctx.task_id))


class _Elsewhere(DeclarativeBase):
    """A model whose table no migration has made (the application's forgot to run)."""


class Unmigrated(_Elsewhere):
    __tablename__ = "not_migrated_yet"
    id: Mapped[int] = mapped_column(primary_key=True)


@task(name="t.unmigrated_rows", registry=reg, max_attempts=1)
async def unmigrated_rows(ctx: TaskContext) -> None:
    async with ctx.session() as session:
        session.add(Unmigrated(id=ctx.task_id))


@task(name="t.commits_itself", registry=reg, max_attempts=1)
async def commits_itself(ctx: TaskContext) -> None:
    async with ctx.session() as session:
        session.add(VideoEntity(id=f"own{ctx.task_id}", url="u", task_id=ctx.task_id))
        await session.commit()
    raise RuntimeError("failed after its rows were committed")


@task(name="t.not_json", registry=reg, max_attempts=1)
async def not_json(ctx: TaskContext) -> object:
    return {1, 2}


@task(name="t.snooze", registry=reg)
async def snooze(ctx: TaskContext) -> None:
    raise Snooze(3600)


@task(name="t.reject", registry=reg, max_attempts=5)
async def reject(ctx: TaskContext) -> None:
    raise NonRetryable("never")


@task(name="t.slow", registry=reg, timeout=0.2, max_attempts=1)
async def slow(ctx: TaskContext) -> None:
    await anyio.sleep(30)


@task(name="t.sleep", registry=reg)
async def sleeper(ctx: TaskContext, seconds: float) -> str:
    await anyio.sleep(seconds)
    return "done"


#: (task id, ctx.attempt) of each run of t.take_your_time, as they start and as they end
started_runs: list[tuple[int, int]] = []
ended_runs: list[tuple[int, int]] = []


@task(name="t.take_your_time", registry=reg)
async def take_your_time(ctx: TaskContext) -> int:
    started_runs.append((ctx.task_id, ctx.attempt))
    run = len(started_runs)
    await anyio.sleep(1.0)
    ended_runs.append((ctx.task_id, ctx.attempt))
    return run


@task(name="t.elsewhere", registry=reg, queue="other", priority=7)
async def elsewhere(ctx: TaskContext) -> None:
    return None


@task(name="t.sync_uses_ctx", registry=reg, max_attempts=1)
def sync_uses_ctx(ctx: TaskContext) -> dict:
    """A plain def handler awaiting the context's methods in a loop of its own."""
    asyncio.run(ctx.set_progress(0.5))
    child = asyncio.run(ctx.enqueue("t.elsewhere"))
    results = asyncio.run(ctx.dependency_results())
    try:
        asyncio.run(_open_session(ctx))
    except InvalidInput as exc:
        refused = str(exc)
    return {"child": child, "results": {str(k): v for k, v in results.items()}, "no": refused}


async def _open_session(ctx: TaskContext) -> None:
    async with ctx.session():
        pass


#: (start, end) monotonic times of each run of t.sync_slow
sync_runs: list[list[float]] = []


@task(name="t.sync_slow", registry=reg)
def sync_slow(ctx: TaskContext) -> int:
    run = [time.monotonic(), 0.0]
    sync_runs.append(run)
    time.sleep(1.0)  # a thread: nothing can stop it
    run[1] = time.monotonic()
    return len(sync_runs)


@task(name="t.square", registry=reg)
def square(ctx: TaskContext, x: int) -> int:
    return x * x


@task(name="t.parent", registry=reg, max_attempts=1)
async def parent(ctx: TaskContext, fail: bool) -> None:
    await ctx.enqueue("t.echo", {"value": "child"})
    if fail:
        raise RuntimeError("parent failed")


@task(name="t.parent_by_name", registry=reg)
async def parent_by_name(ctx: TaskContext) -> None:
    await ctx.enqueue("t.elsewhere")


@task(name="t.progress", registry=reg)
async def progress(ctx: TaskContext) -> None:
    await ctx.set_progress(0.5)


def make_worker(store: TaskStore, **overrides) -> Worker:
    options = {"queues": {"default": None}, "burst": True, "lease_seconds": 10.0} | overrides
    return Worker(store, reg, WorkerConfig(**options))


def live_worker(store: TaskStore, **overrides) -> Worker:
    return make_worker(store, burst=False, poll_max_seconds=0.1, **overrides)


async def run_until(
    worker: Worker, done: Callable[[], Awaitable[bool]], limit_seconds: float = 20.0
) -> Worker:
    """Run a (non-burst) worker until `done()` is true, then stop it gracefully."""
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(limit_seconds):
            while not await done():  # noqa: ASYNC110 - polling the database is the point
                await anyio.sleep(0.05)
        worker.stop()
    return worker


async def status_of(store: TaskStore, task_id: int) -> TaskStatus:
    return (await store.require(task_id)).status


async def test_handler_return_value_is_stored_as_the_json_result(store: TaskStore) -> None:
    task_id = await store.enqueue("t.echo", {"value": [1, "two"]})
    await make_worker(store).run()
    info = await store.require(task_id)
    assert info.status is TaskStatus.COMPLETED
    assert info.result == {"value": [1, "two"], "attempt": 1, "queue": "default", "id": task_id}


async def test_burst_worker_drains_many_tasks_through_batched_acks(store: TaskStore) -> None:
    ids = await store.enqueue_many(
        [{"name": "t.echo", "payload": {"value": i}} for i in range(300)]
    )
    worker = make_worker(store, concurrency=16)
    await worker.run()
    assert worker.counts["completed"] == 300
    assert {s.queue: s.counts for s in await store.stats()} == {"default": {"completed": 300}}
    assert (await store.require(ids[123])).result["value"] == 123


async def test_session_writes_commit_with_the_completion_and_load_polymorphically(
    store: TaskStore,
) -> None:
    ids = await store.enqueue_many([{"name": "t.write", "payload": {"n": n}} for n in range(5)])
    await make_worker(store).run()
    async with store.sessions() as session:
        media = (await session.scalars(select(MediaEntity).order_by(MediaEntity.id))).all()
        transcripts = (await session.scalars(select(TranscriptEntity))).all()
    assert [type(m) for m in media] == [VideoEntity] * 5
    assert {m.task_id for m in media} == set(ids) and media[0].duration == 1.0
    assert len(transcripts) == 5


async def test_a_failing_handler_leaves_no_result_rows_and_its_error_is_stored(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("t.write_then_fail")

    async def finished() -> bool:
        return await status_of(store, task_id) is TaskStatus.FAILED

    worker = await run_until(live_worker(store), finished)
    info = await store.require(task_id)
    assert info.attempts == 2 and worker.counts["retried"] == 1
    assert info.error["type"] == "RuntimeError"
    assert info.error["message"] == "exploded on attempt 2"
    assert "Traceback" in info.error["traceback"] and info.error["worker"] == worker.worker_id
    async with store.sessions() as session:
        assert (await session.scalar(select(func.count()).select_from(MediaEntity))) == 0


async def test_rows_a_handler_left_that_the_database_refuses_fail_the_attempt_with_its_error(
    store: TaskStore,
) -> None:
    """Not a completion lost to the database, waiting out its lease: the handler's data."""
    task_id = await store.enqueue("t.clashing_rows")
    worker = make_worker(store)
    await worker.run()
    info = await store.require(task_id)
    assert (info.status, info.attempts, worker.counts["failed"]) == (TaskStatus.FAILED, 1, 1)
    assert info.error["type"] == "sqlalchemy.exc.IntegrityError"
    async with store.sessions() as session:
        assert (await session.scalar(select(func.count()).select_from(MediaEntity))) == 0


async def test_rows_for_a_table_not_migrated_yet_fail_the_attempt_with_the_databases_error(
    store: TaskStore,
) -> None:
    """Not an outage of the database (left to the lease, rerun, then 'earlier attempts
    never finished'): the handler's rows, refused, with the reason on the task."""
    task_id = await store.enqueue("t.unmigrated_rows")
    worker = make_worker(store)
    with anyio.fail_after(30):
        await worker.run()
    info = await store.require(task_id)
    assert (info.status, info.attempts, worker.counts["failed"]) == (TaskStatus.FAILED, 1, 1)
    assert worker.counts[UNRECORDED] == 0
    assert "not_migrated_yet" in info.error["message"]


async def test_a_handler_cannot_commit_the_attempts_session_itself(store: TaskStore) -> None:
    """Its rows would stay though the attempt fails: the commit is the completion's."""
    task_id = await store.enqueue("t.commits_itself")
    await make_worker(store).run()
    info = await store.require(task_id)
    assert (info.status, info.error["type"]) == (TaskStatus.FAILED, "taskstore.errors.InvalidInput")
    assert "ctx.session() is committed with the task's completion" in info.error["message"]
    async with store.sessions() as session:
        assert (await session.scalar(select(func.count()).select_from(MediaEntity))) == 0


async def test_metrics_count_each_attempt_by_the_outcome_the_worker_recorded(
    store: TaskStore,
) -> None:
    """Not the handler's return alone: a result that is not JSON, or rows the completion
    could not flush, fail the attempt after the handler (and its middleware) returned."""
    from worker.metrics import PrometheusMetrics

    names = ["t.echo", "t.write", "t.not_json", "t.clashing_rows", "t.reject", "t.snooze"]
    payloads = [{"value": 1}, {"n": 1}, {}, {}, {}, {}]
    await store.enqueue_many(
        [{"name": n, "payload": p} for n, p in zip(names, payloads, strict=True)]
    )
    metrics = PrometheusMetrics()
    config = WorkerConfig(queues={"default": None}, burst=True)
    await Worker(store, reg, config, metrics=metrics).run()

    def sample(metric: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(metric, {"queue": "default", **labels})

    outcomes = {
        (name, outcome): sample("taskstore_tasks_finished_total", name=name, outcome=outcome)
        for name in names
        for outcome in ("completed", "error", "snoozed")
    }
    assert {key for key, count in outcomes.items() if count} == {
        ("t.echo", "completed"),
        ("t.write", "completed"),
        ("t.not_json", "error"),
        ("t.clashing_rows", "error"),
        ("t.reject", "error"),
        ("t.snooze", "snoozed"),
    }
    assert set(outcomes.values()) == {None, 1.0}
    for name in names:
        assert sample("taskstore_tasks_started_total", name=name) == 1
        assert sample("taskstore_task_duration_seconds_count", name=name) == 1


async def test_non_retryable_error_fails_at_once(store: TaskStore) -> None:
    task_id = await store.enqueue("t.reject")
    await make_worker(store).run()
    info = await store.require(task_id)
    assert (info.status, info.attempts) == (TaskStatus.FAILED, 1)
    assert info.error["type"] == "worker.errors.NonRetryable"


async def test_a_task_with_no_handler_here_is_handed_back_without_spending_an_attempt(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("t.not_registered", max_attempts=1)
    worker = make_worker(store)
    await worker.run()
    info = await store.require(task_id)
    assert (info.status, info.attempts) == (TaskStatus.CREATED, 0)
    assert info.error["type"] == "UnknownTask" and "t.not_registered" in info.error["message"]
    assert info.run_at > dt.datetime.now(dt.UTC)  # offered again a moment later
    assert worker.counts["handed_back"] == 1


async def test_a_burst_worker_hands_back_one_claim_of_a_name_nobody_serves_and_exits(
    store: TaskStore,
) -> None:
    # Many tasks of a name no worker has: the claims leave it alone once it is handed back,
    # so the worker neither hands back every one of them nor keeps claiming them.
    await store.enqueue_many([{"name": "t.not_registered"} for _ in range(60)])
    ours = await store.enqueue("t.echo", {"value": "hi"})
    worker = make_worker(store, concurrency=5)
    with anyio.fail_after(30):
        await worker.run()
    assert worker.counts["handed_back"] <= 5
    assert (await store.require(ours)).status is TaskStatus.COMPLETED
    waiting = await store.list(name="t.not_registered", limit=100)
    assert {(t.status, t.attempts) for t in waiting} == {(TaskStatus.CREATED, 0)}
    assert len(waiting) == 60


async def test_a_task_no_live_worker_can_run_fails_as_unknown_after_the_grace_period(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("t.not_registered", max_attempts=1)
    worker = make_worker(store, unserved_grace_seconds=0.0)
    await worker.run()
    info = await store.require(task_id)
    assert info.status is TaskStatus.FAILED
    assert info.error["type"] == "UnknownTask" and "t.not_registered" in info.error["message"]
    assert info.error["worker"] == worker.worker_id


async def test_payload_that_does_not_fit_the_signature_fails_without_retry(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("t.echo", {"wrong": 1})
    await make_worker(store).run()
    info = await store.require(task_id)
    assert (info.status, info.attempts) == (TaskStatus.FAILED, 1)
    assert info.error["type"] == "worker.errors.WrongArguments"
    assert info.error["message"] == (
        "payload does not fit t.echo: missing argument 'value'; "
        "unexpected argument 'wrong' (it takes: value)"
    )


async def test_timeout_cancels_the_handler_and_fails_the_attempt(store: TaskStore) -> None:
    task_id = await store.enqueue("t.slow")
    began = time.monotonic()
    await make_worker(store).run()
    info = await store.require(task_id)
    assert info.status is TaskStatus.FAILED and info.error["type"] == "worker.errors.TaskTimeout"
    assert time.monotonic() - began < 20  # cancelled, not slept out


async def test_sync_handlers_run_in_a_thread(store: TaskStore) -> None:
    task_id = await store.enqueue("t.square", {"x": 12})
    await make_worker(store).run()
    assert (await store.require(task_id)).result == 144


async def test_follow_up_enqueued_by_a_handler_exists_only_if_it_completes(
    store: TaskStore,
) -> None:
    await store.enqueue("t.parent", {"fail": True})
    ok = await store.enqueue("t.parent", {"fail": False})
    await make_worker(store).run()
    children = [t for t in await store.list() if t.name == "t.echo"]
    assert len(children) == 1 and children[0].status is TaskStatus.COMPLETED
    assert (await store.require(ok)).status is TaskStatus.COMPLETED


async def test_a_follow_up_by_name_takes_its_handlers_queue_and_priority(
    store: TaskStore,
) -> None:
    await store.enqueue("t.parent_by_name")
    await make_worker(store).run()
    [child] = [t for t in await store.list() if t.name == "t.elsewhere"]
    assert (child.queue, child.priority) == ("other", 7)


async def test_a_plain_def_handler_can_await_the_contexts_methods_in_its_own_loop(
    store: TaskStore,
) -> None:
    dep = await store.enqueue_many([{"name": "t.echo", "payload": {"value": 1}, "key": "d"}])
    task_id = await store.enqueue("t.sync_uses_ctx", depends_on=dep)
    await make_worker(store).run()
    info = await store.require(task_id)
    assert info.status is TaskStatus.COMPLETED, info.error
    assert info.result["results"] == {
        str(dep[0]): {"value": 1, "attempt": 1, "queue": "default", "id": dep[0]}
    }
    assert "ctx.session() is for async handlers" in info.result["no"]
    child = await store.require(info.result["child"])
    assert (child.name, child.queue) == ("t.elsewhere", "other")


async def test_progress_is_recorded_on_the_task(store: TaskStore) -> None:
    task_id = await store.enqueue("t.progress")
    await make_worker(store).run()
    assert (await store.require(task_id)).progress == 1.0  # completion sets 1.0


async def test_a_running_task_cancelled_by_an_operator_is_stopped(store: TaskStore) -> None:
    task_id = await store.enqueue("t.sleep", {"seconds": 60})
    began = time.monotonic()

    worker = live_worker(store, lease_seconds=1.5)

    async def cancel_when_running() -> bool:
        status = await status_of(store, task_id)
        if status is TaskStatus.RUNNING:
            await store.cancel(task_id)
        return status is TaskStatus.CANCELLED and not worker.running

    await run_until(worker, cancel_when_running)
    assert time.monotonic() - began < 30  # far less than the handler's 60 s
    info = await store.require(task_id)
    assert info.status is TaskStatus.CANCELLED and info.result is None


async def cancel_and_retry_once_it_runs(store: TaskStore, task_id: int, runs: list) -> Worker:
    """Run a live worker; once the handler has started (`runs` has an entry), cancel the
    task and retry it at once, so the worker claims it again before any heartbeat; stop
    when it completed."""
    worker = live_worker(store, lease_seconds=30)  # no heartbeat within the test
    retried = False

    async def retried_and_done() -> bool:
        nonlocal retried
        status = await status_of(store, task_id)
        if not retried and runs:
            await store.cancel(task_id)
            await store.retry(task_id)
            retried = True
        return status is TaskStatus.COMPLETED and not worker.running

    return await run_until(worker, retried_and_done)


async def test_a_task_retried_while_its_cancelled_attempt_runs_completes_with_the_new_one(
    store: TaskStore,
) -> None:
    """Cancel, then retry at once: this worker claims the task again before a heartbeat
    stopped the cancelled attempt. The old one stops; the new one's result is the task's."""
    started_runs.clear()
    ended_runs.clear()
    task_id = await store.enqueue("t.take_your_time")
    worker = await cancel_and_retry_once_it_runs(store, task_id, started_runs)
    info = await store.require(task_id)
    assert started_runs == [(task_id, 1), (task_id, 1)]  # a retry: a fresh set of attempts
    assert ended_runs == [(task_id, 1)]  # the cancelled run was stopped
    assert (info.result, info.attempts) == (2, 1)
    assert worker.state.counts["completed"] == 1


async def test_a_retried_sync_task_starts_after_its_cancelled_attempts_thread_ended(
    store: TaskStore,
) -> None:
    """The cancelled attempt's thread cannot be stopped: the retried attempt, claimed by
    the same worker, waits for it instead of running beside it."""
    sync_runs.clear()
    task_id = await store.enqueue("t.sync_slow")
    await cancel_and_retry_once_it_runs(store, task_id, sync_runs)
    assert len(sync_runs) == 2
    (_, first_end), (second_start, _) = sync_runs
    assert second_start >= first_end  # one after the other, never side by side
    assert (await store.require(task_id)).result == 2


@pytest.mark.parametrize("queues", [{"a": 1, "b": None}])
async def test_per_queue_limits_cap_concurrency(store: TaskStore, queues: dict) -> None:
    await store.enqueue_many(
        [{"name": "t.sleep", "payload": {"seconds": 0.2}, "queue": "a"} for _ in range(3)]
    )
    worker = make_worker(store, queues=queues, concurrency=8)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, worker.in_flight["a"])
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        await worker.run()
        group.cancel_scope.cancel()
    assert peak == 1
    assert {s.queue: s.counts for s in await store.stats()} == {"a": {"completed": 3}}


async def test_a_task_whose_attempts_all_crashed_is_failed_not_retried_forever(
    store: TaskStore,
) -> None:
    task_id = await store.enqueue("t.echo", {"value": 1})  # max_attempts: the handler's (3)
    for crash in range(3):  # three workers took it and died before finishing
        async with store.transaction() as conn:
            await store.tasks.claim(
                conn,
                worker_id="crasher",
                queue="default",
                limit=1,
                lease_seconds=-1,
                orphans=crash > 0,
            )
            await store.tasks.rescue_expired(conn)
    await make_worker(store).run()
    info = await store.require(task_id)
    assert (info.status, info.attempts) == (TaskStatus.FAILED, 4)
    assert "earlier attempts never finished" in info.error["message"]


async def test_a_workers_middleware_wraps_each_attempt_and_sees_its_outcome(
    store: TaskStore,
) -> None:
    seen: list[tuple[int, str]] = []
    local = Registry()
    task(name="t.echo", registry=local)(echo.fn)
    task(name="t.reject", registry=local, max_attempts=5)(reject.fn)

    @middleware(registry=local)
    async def record(ctx: TaskContext, call_next) -> object:
        try:
            result = await call_next()
        except Exception as exc:
            seen.append((ctx.task_id, type(exc).__name__))
            raise
        seen.append((ctx.task_id, "ok"))
        return result

    ok = await store.enqueue("t.echo", {"value": 1})
    bad = await store.enqueue("t.reject")
    await Worker(store, local, WorkerConfig(queues={"default": None}, burst=True)).run()
    assert sorted(seen) == [(ok, "ok"), (bad, "NonRetryable")]
    assert (await store.require(bad)).status is TaskStatus.FAILED


async def test_a_burst_worker_says_how_many_tasks_it_leaves_due_later(store: TaskStore) -> None:
    """A burst run starts only what is due; a snoozed or delayed task left behind is named,
    not taken for lost."""
    from structlog.testing import capture_logs

    from worker import Snooze

    local = Registry()

    @task(name="t.snoozes", registry=local)
    async def snoozes(ctx: TaskContext) -> None:
        raise Snooze(30)

    await store.enqueue("t.snoozes")
    await store.enqueue("t.snoozes", delay=600)
    worker = Worker(store, local, WorkerConfig(queues={"default": None}, burst=True))
    with anyio.fail_after(30), capture_logs() as logs:
        await worker.run()
    [said] = [line for line in logs if line["event"].startswith("burst done")]
    assert said["tasks"] == 2
    assert 25 <= said["first_due_in_seconds"] <= 30


async def test_a_burst_worker_that_leaves_nothing_due_later_says_nothing_of_it(
    store: TaskStore,
) -> None:
    from structlog.testing import capture_logs

    await store.enqueue("t.echo", {"value": 1})
    await store.enqueue("t.echo", {"value": 2}, queue="elsewhere", delay=600)
    worker = Worker(store, reg, WorkerConfig(queues={"default": None}, burst=True))
    with anyio.fail_after(30), capture_logs() as logs:
        await worker.run()
    assert not [line for line in logs if line["event"].startswith("burst done")]
    assert (await store.stats())[0].counts == {"completed": 1}


async def test_a_burst_worker_on_a_paused_queue_says_its_tasks_are_left_and_why(
    store: TaskStore,
) -> None:
    from structlog.testing import capture_logs

    await store.enqueue_many([{"name": "t.echo", "payload": {"value": i}} for i in range(2)])
    await store.pause_queue("default")
    worker = Worker(store, reg, WorkerConfig(queues={"default": None}, burst=True))
    with anyio.fail_after(30), capture_logs() as logs:
        await worker.run()
    [said] = [line for line in logs if line["event"].startswith("burst done")]
    assert (said["tasks"], said["first_due_in_seconds"], said["paused"]) == (2, 0.0, ["default"])
