"""Worker pieces that need no database: registry, retry policy, queue specs, attempts."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from sqlalchemy.engine import make_url

from taskstore.consumer import Ending
from taskstore.errors import InvalidInput
from taskstore.records import ClaimedTask
from tests.unit.fake_consumer import FakeConsumer
from worker import NonRetryable, RegistrationError, Registry, task
from worker.cli import parse_queues
from worker.errors import TaskTimeout, WrongArguments
from worker.execution import Running, attempt, error_document
from worker.retry import MAX_BACKOFF_SECONDS, backoff_seconds, should_retry
from worker.runner import Worker, WorkerConfig


def test_task_name_defaults_to_module_and_function() -> None:
    reg = Registry()

    @task(registry=reg, queue="media", max_attempts=5, timeout=60, backoff=2)
    async def transcribe(ctx, video_id: str) -> dict:
        return {}

    definition = reg.get(f"{__name__}.transcribe")
    assert definition is transcribe
    assert (definition.queue, definition.max_attempts, definition.timeout, definition.backoff) == (
        "media",
        5,
        60,
        2,
    )


def test_duplicate_task_names_are_refused_naming_the_first_owner() -> None:
    reg = Registry()

    @task(name="dup.name", registry=reg)
    async def first(ctx) -> None: ...

    with pytest.raises(RegistrationError, match=r"already registered by .*first") as info:

        @task(name="dup.name", registry=reg)
        async def second(ctx) -> None: ...

    where = r"first \(test_worker_units.py:\d+\); test_worker_units.py:\d+ defines it again: "
    assert re.search(where + r"give one of them another name, @task\(name=...\)$", str(info.value))


def test_a_module_registering_a_task_twice_from_one_line_is_asked_about_imports() -> None:
    """A module imported under two names, or reloaded, defines the same handler again."""
    reg = Registry()
    source = "async def handler(ctx):\n    pass\n"
    for _ in range(2):
        scope: dict[str, Any] = {"__name__": "twice"}
        exec(compile(source, "twice.py", "exec"), scope)
        if not reg.tasks:
            task(name="twice.handler", registry=reg)(scope["handler"])
    with pytest.raises(RegistrationError, match=r"registered twice from twice.py:1: is its"):
        task(name="twice.handler", registry=reg)(scope["handler"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "bad name!"}, "invalid task name"),
        ({"queue": "Bad"}, "invalid queue name"),
        ({"max_attempts": 0}, "cannot register 'ok.name': max_attempts must be an integer"),
        ({"max_attempts": 20_000}, "max_attempts must be an integer from 1 to 10000"),
        ({"timeout": -1}, "cannot register 'ok.name': timeout"),
        ({"timeout": float("nan")}, "timeout must be a positive number, got nan"),
        ({"backoff": float("inf")}, "backoff must be a positive number, got inf"),
        ({"backoff": 0}, "backoff"),
    ],
)
def test_invalid_registrations_are_refused(options: dict, message: str) -> None:
    with pytest.raises(RegistrationError, match=message):
        task(registry=Registry(), **{"name": "ok.name", **options})(lambda ctx: None)


def test_decorated_function_is_still_callable() -> None:
    @task(name="plain.call", registry=Registry())
    def add(ctx, a: int, b: int) -> int:
        return a + b

    assert add(None, 2, 3) == 5


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt_no in range(1, 6):
        ceiling = 2.0 * 2 ** (attempt_no - 1)
        values = [backoff_seconds(2.0, attempt_no, rng) for _ in range(200)]
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert max(values) - min(values) > ceiling / 4  # really jittered
    assert backoff_seconds(1.0, 60, rng) <= MAX_BACKOFF_SECONDS
    # max_attempts goes up to 10,000: past attempt 1024 a float doubling overflows
    for attempt_no in (1025, 10_000):
        assert MAX_BACKOFF_SECONDS / 2 <= backoff_seconds(1.0, attempt_no, rng) <= 3600
        assert backoff_seconds(1e-300, attempt_no, rng) <= MAX_BACKOFF_SECONDS


def test_retry_policy() -> None:
    assert should_retry(RuntimeError(), attempt=1, max_attempts=3)
    assert not should_retry(RuntimeError(), attempt=3, max_attempts=3)
    assert not should_retry(NonRetryable(), attempt=1, max_attempts=3)


def test_queue_specs_parse_limits() -> None:
    assert parse_queues(("media:4", "email:16", "default"), Registry()) == {
        "media": 4,
        "email": 16,
        "default": None,
    }
    reg = Registry()
    task(name="a.b", queue="media", registry=reg)(lambda ctx: None)
    assert parse_queues((), reg) == {"media": None}


@pytest.mark.parametrize("spec", ["Media", "media:0", "media:x", ""])
def test_bad_queue_specs_are_refused(spec: str) -> None:
    with pytest.raises(InvalidInput):
        parse_queues((spec,), Registry())


def test_a_queue_limit_that_is_not_a_number_is_named_as_such() -> None:
    with pytest.raises(InvalidInput, match="the limit after ':' must be a whole number >= 1"):
        parse_queues(("fast:x",), Registry())


class FakeCtx:
    used_session = None
    task_id = 1
    attempt = 1


async def run_attempt(fn, payload: dict, **options):
    reg = Registry()
    definition = task(name="unit.fn", registry=reg, **options)(fn)
    return await attempt(definition, FakeCtx(), payload, Running(1, "default", 0.0))


async def test_attempt_encodes_the_result_as_json() -> None:
    async def ok(ctx, x: int) -> dict:
        return {"double": x * 2}

    outcome = await run_attempt(ok, {"x": 4})
    assert outcome.ok and outcome.result_json == '{"double":8}'


async def test_attempt_reports_a_result_that_is_not_json_as_non_retryable() -> None:
    async def bad(ctx) -> object:
        return {1, 2}

    outcome = await run_attempt(bad, {})
    assert isinstance(outcome.error, NonRetryable) and "not JSON" in str(outcome.error)


async def test_attempt_times_out() -> None:
    async def slow(ctx) -> None:
        await anyio.sleep(10)

    outcome = await run_attempt(slow, {}, timeout=0.05)
    assert isinstance(outcome.error, TaskTimeout)


async def test_a_handlers_own_timeout_error_is_its_error_not_a_task_timeout() -> None:
    reg = Registry()

    @task(name="t.smtp", registry=reg, timeout=60)
    async def smtp(ctx) -> None:
        raise TimeoutError("smtp server did not answer")

    outcome = await attempt(reg.get("t.smtp"), FakeCtx(), {}, Running(1, "default", 0.0))
    assert type(outcome.error) is TimeoutError
    assert str(outcome.error) == "smtp server did not answer"


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_handler_calling_sys_exit_fails_its_task_not_the_worker(kind: str) -> None:
    # sys.exit() deep in a handler (an argparse error, say) is that task's error: were
    # it to escape, the worker would die and every task beside it lose its lease.
    async def async_exit(ctx) -> None:
        raise SystemExit(3)

    def sync_exit(ctx) -> None:
        raise SystemExit(3)

    outcome = await run_attempt(async_exit if kind == "async" else sync_exit, {})
    assert type(outcome.error) is SystemExit and outcome.error.code == 3
    assert error_document(outcome.error, attempt=1, worker_id="w")["type"] == "SystemExit"


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("raised", [asyncio.CancelledError, KeyboardInterrupt])
async def test_a_cancelled_error_or_interrupt_from_a_handler_fails_its_task(
    kind: str, raised: type[BaseException]
) -> None:
    # Awaiting a helper task that was cancelled raises CancelledError in the handler,
    # though nobody cancelled the attempt: that is the handler's error to retry, not a
    # silent end that leaves the task to its lease.
    async def async_handler(ctx) -> None:
        if raised is KeyboardInterrupt:
            raise KeyboardInterrupt
        helper = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        helper.cancel()
        await helper

    def sync_handler(ctx) -> None:
        raise raised

    outcome = await run_attempt(async_handler if kind == "async" else sync_handler, {})
    assert type(outcome.error) is raised and outcome.abandoned is None


async def test_cancelling_the_attempts_task_itself_still_ends_it() -> None:
    """A cancellation of the worker's own (not `Running.stop`) must get through."""

    async def slow(ctx) -> None:
        await anyio.sleep(10)

    definition = task(name="unit.slow", registry=Registry())(slow)
    handle = asyncio.ensure_future(attempt(definition, FakeCtx(), {}, Running(1, "q", 0.0)))
    await anyio.sleep(0.05)
    handle.cancel()
    with anyio.fail_after(5), pytest.raises(asyncio.CancelledError):
        await handle


async def test_attempt_checks_arguments_before_calling() -> None:
    called = []

    async def fn(ctx, a: int) -> None:
        called.append(a)

    outcome = await run_attempt(fn, {"b": 1})
    assert isinstance(outcome.error, WrongArguments) and not called


async def test_sync_handler_runs_off_the_event_loop_thread() -> None:
    import threading

    main = threading.get_ident()

    def where(ctx) -> bool:
        return threading.get_ident() != main

    outcome = await run_attempt(where, {})
    assert outcome.result_json == "true"


async def test_a_stopped_attempt_is_abandoned_not_failed() -> None:
    running = Running(1, "default", 0.0)

    async def slow(ctx) -> None:
        await anyio.sleep(10)

    definition = task(name="unit.slow", registry=Registry())(slow)
    # As the worker runs it: the attempt is its own task, which `stop` cancels.
    running.handle = asyncio.ensure_future(attempt(definition, FakeCtx(), {}, running))
    await anyio.sleep(0.05)  # the handler is asleep
    running.stop("lost")
    with anyio.fail_after(5):  # the stop ends it, not its 10 s
        outcome = await running.handle
    assert outcome.abandoned == "lost" and outcome.error is None


def test_error_document_has_type_message_and_traceback() -> None:
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        doc = error_document(exc, attempt=2, worker_id="w1")
    assert (doc["type"], doc["message"], doc["attempt"], doc["worker"]) == (
        "ValueError",
        "bad value",
        2,
        "w1",
    )
    assert "Traceback" in doc["traceback"]


def test_a_huge_error_message_is_stored_as_its_head_with_its_length() -> None:
    doc = error_document(RuntimeError("x" * 2_000_000), attempt=1, worker_id="w")
    assert doc["message"] == "x" * 4000 + "... (2,000,000 characters in all)"
    assert len(doc["traceback"]) <= 16_000


def test_an_error_whose_message_cannot_be_read_is_still_recorded() -> None:
    """A failure that could not be written would leave its task to a lease expiry."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("boom in str")

    doc = error_document(Unprintable(), attempt=1, worker_id="w1")
    assert doc["type"].endswith("Unprintable")
    assert doc["message"] == "<its message could not be read: ValueError: boom in str>"
    assert "Unprintable" in doc["traceback"]


def test_a_failure_records_the_limit_applied_and_show_reads_it_back() -> None:
    from taskstore.formatting import attempt_limit

    doc = error_document(ValueError("x"), attempt=1, worker_id="w1", max_attempts=1)
    assert attempt_limit(None, doc) == "1 (its handler's @task)"  # as recorded before "from"
    assert attempt_limit(5, doc) == "5"
    assert attempt_limit(None, None).startswith("3 (default")
    for limit_from, said in (
        ("handler", "3 (its handler's @task)"),
        ("default", "3 (the @task default: its handler sets none)"),
    ):
        doc = error_document(
            ValueError("x"), attempt=1, worker_id="w1", max_attempts=3, limit_from=limit_from
        )
        assert attempt_limit(None, doc) == said


def fake_worker(consumer: FakeConsumer, reg: Registry | None = None, **config: Any) -> Worker:
    """A worker whose store is a `FakeConsumer`: no database anywhere."""
    store = SimpleNamespace(
        settings=SimpleNamespace(
            retention_seconds=0,
            safe_url="sqlite:///fake.db",
            backend="sqlite",
            database_url=make_url("sqlite://"),  # no file to watch
        )
    )
    options = {"queues": {"default": None}, "concurrency": 8, **config}
    return Worker(store, reg or Registry(), WorkerConfig(**options), consumer=consumer)


def idle_worker(consumer: FakeConsumer) -> Worker:
    worker = fake_worker(consumer)

    def start(task: ClaimedTask) -> None:  # bookkeeping only: no handler runs
        worker.running[task.id] = Running(task.id, task.queue, 0.0)

    worker.outcomes.start = start  # type: ignore[method-assign]
    return worker


async def test_an_idle_worker_claims_one_orphan_and_nothing_beside_it() -> None:
    claims = FakeConsumer(orphans=[7, 8], fresh=[1, 2, 3])
    worker = idle_worker(claims)
    assert await worker.fetcher.claim_round() == (1, True)
    assert (claims.claims, list(worker.running)) == ([(1, True)], [7])


async def test_with_no_orphan_left_the_worker_claims_a_batch_again() -> None:
    claims = FakeConsumer(orphans=[], fresh=[1, 2, 3])
    worker = idle_worker(claims)
    assert await worker.fetcher.claim_round() == (3, True)
    assert claims.claims == [(1, True), (8, False)]
    assert not worker.state.orphans_waiting


async def test_orphans_found_while_tasks_run_wait_until_those_tasks_end() -> None:
    claims = FakeConsumer(orphans=[7], fresh=[1, 2, 3])
    worker = idle_worker(claims)
    worker.running[1] = Running(1, "default", 0.0)  # flagged during the claim linger
    assert await worker.fetcher.claim_round() == (0, False)
    assert claims.claims == []


async def test_an_orphan_is_claimed_only_once_a_completion_write_under_way_has_ended() -> None:
    """The orphan may kill the process: completions on their way to the database would be
    lost with it, and their innocent tasks run again."""
    claims = FakeConsumer(orphans=[7])
    worker = idle_worker(claims)
    release, written = anyio.Event(), []

    async def slow_complete(done: Sequence[Ending]) -> set[int]:
        await release.wait()
        written.extend(done)
        return {task_id for task_id, _, _ in done}

    claims.complete = slow_complete  # type: ignore[method-assign]
    worker.completer.add(3, 1, None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.completer.flush)  # takes the batch off the buffer, then waits
        await anyio.sleep(0.01)
        assert not worker.completer.acks and not written
        tg.start_soon(worker.fetcher.claim_round)
        await anyio.sleep(0.05)
        assert claims.claims == []  # still waiting for the write
        release.set()
    assert written == [(3, 1, None)] and claims.claims == [(1, True)]


def test_a_worker_whose_handlers_end_fast_claims_the_next_batch_while_one_runs() -> None:
    worker = idle_worker(FakeConsumer())
    worker.state.in_flight["default"] = 8  # a whole batch is running
    assert worker.fetcher.free("default") == 0  # handlers of unknown speed: nothing ahead
    worker.state.note_duration("default", "t.fast", 0.001)
    assert worker.fetcher.free("default") == 8  # fast ones: one more batch, no more
    worker.state.in_flight["default"] = 16
    assert worker.fetcher.free("default") == 0


def test_where_writers_take_turns_one_claim_takes_both_batches_of_fast_handlers() -> None:
    consumer = FakeConsumer()
    consumer.one_writer = True
    worker = idle_worker(consumer)
    worker.state.note_duration("default", "t.fast", 0.001)
    assert worker.fetcher.free("default") == 16  # the running batch and the one ahead
    worker.state.in_flight["default"] = 3
    assert worker.fetcher.free("default") == 13
    for _ in range(40):
        worker.state.note_duration("default", "t.fast", 2.0)
    assert worker.fetcher.free("default") == 5  # slow ones: never ahead of free slots


def test_slow_handlers_or_a_stop_turn_claiming_ahead_off() -> None:
    worker = idle_worker(FakeConsumer())
    worker.state.in_flight["default"] = 8
    worker.state.note_duration("default", "t.fast", 0.001)
    for _ in range(40):
        worker.state.note_duration("default", "t.fast", 2.0)
    assert worker.fetcher.free("default") == 0
    worker.state.queue_seconds["default"] = 0.001
    worker.stop()
    assert worker.fetcher.free("default") == 0


def test_a_queue_with_its_own_limit_never_claims_ahead_of_it() -> None:
    worker = fake_worker(FakeConsumer(), queues={"media": 2, "default": None})
    worker.state.note_duration("default", "t.fast", 0.001)
    worker.state.in_flight["media"] = 2
    assert worker.fetcher.free("media") == 0
    assert (
        worker.fetcher.free("default") == 8
    )  # the other queue still claims ahead, a batch at most


async def test_completions_of_a_full_limited_queue_claim_only_what_the_worker_can_hold() -> None:
    consumer = FakeConsumer(fresh=[11, 12, 13, 14])
    consumer.refill_queues.add("default")
    worker = idle_worker(consumer)
    worker.state.orphans_waiting = False
    worker.state.in_flight["default"] = 5  # of 8
    for task_id in (1, 2, 3):
        worker.completer.add(task_id, 1, None)
    await worker.completer.flush()
    assert consumer.refills == [(3, "default", 3)]  # room for 3 more, reserved meanwhile
    assert sorted(worker.running) == [11, 12, 13]  # started as soon as the write returned
    assert worker.state.in_flight["default"] == 5  # the reservation was given back
    worker.stop()
    worker.completer.add(4, 1, None)
    await worker.completer.flush()
    assert len(consumer.refills) == 1  # a stopping worker starts nothing new
    assert [t for t, _, _ in consumer.completed] == [1, 2, 3, 4]


class SlowClaims(FakeConsumer):
    """A claim that stays out until released; completion writes refill at once."""

    def __init__(self) -> None:
        super().__init__(fresh=range(11, 20))
        self.refill_queues.add("q1")
        self.release = anyio.Event()

    async def claim(self, queue: str, limit: int, *, orphans: bool = False) -> list[ClaimedTask]:
        await self.release.wait()
        return await super().claim(queue, limit, orphans=orphans)

    async def complete_and_claim(
        self, done: Sequence[Ending], queue: str, limit: int
    ) -> tuple[set[int], list[ClaimedTask]]:
        self.refills.append((len(done), queue, limit))
        return await self.complete(done), await FakeConsumer.claim(self, queue, limit)


async def test_a_completion_write_during_a_claim_leaves_that_claims_room_to_it() -> None:
    """A queue limited here (`--queue q1:2`) and in the database: the claim out and a
    refill planned meanwhile must not both take the room."""
    consumer = SlowClaims()
    worker = fake_worker(consumer, queues={"q1": 2})
    worker.state.orphans_waiting = False
    started: list[int] = []

    def start(task: ClaimedTask) -> None:  # as `Outcomes.start` counts: no handler runs
        worker.state.in_flight[task.queue] += 1
        started.append(task.id)

    worker.outcomes.start = start  # type: ignore[method-assign]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.fetcher.claim_round)
            await anyio.sleep(0.01)  # the claim of q1's 2 free slots is out
            for task_id in (1, 2):  # two earlier q1 tasks ended meanwhile
                worker.completer.add(task_id, 1, None)
            await worker.completer.flush()
            consumer.release.set()
    assert consumer.refills == [] and len(started) == 2
    assert worker.state.in_flight["q1"] == 2


async def test_where_writers_take_turns_a_claim_writes_the_pending_completions_too() -> None:
    consumer = FakeConsumer(fresh=[11, 12, 13])
    consumer.one_writer = True
    worker = idle_worker(consumer)
    worker.state.orphans_waiting = False
    for task_id in (1, 2):
        worker.completer.add(task_id, 1, None)
    assert await worker.fetcher.claim_round() == (3, True)
    assert consumer.units == [(2, 8)]  # one unit: both completions and the claim
    assert (consumer.claims, worker.completer.acks) == ([(8, False)], [])
    assert [t for t, _, _ in consumer.completed] == [1, 2]


async def test_completions_whose_claim_failed_are_kept_oldest_first_for_the_next_write() -> None:
    consumer = FakeConsumer(fresh=[11])
    consumer.one_writer, consumer.fail_units = True, 1
    worker = idle_worker(consumer)
    worker.state.orphans_waiting = False
    worker.completer.add(1, 1, None)
    worker.completer.add(2, 1, None)
    assert await worker.fetcher.claim_round() == (0, True)
    worker.completer.add(3, 1, None)  # finished while the claim was failing
    assert [t for t, _, _ in worker.completer.acks] == [1, 2, 3]
    assert consumer.completed == []
    await worker.completer.flush()
    assert [t for t, _, _ in consumer.completed] == [1, 2, 3]
    assert worker.running.keys() == {11}  # the write took the freed room too


async def test_claimed_ahead_tasks_wait_for_a_handler_slot_and_a_stopped_one_never_runs() -> None:
    reg = Registry()
    now_running, most, ran = [0], [0], []
    gate = anyio.Event()

    @task(name="t.slow", registry=reg)
    async def slow(ctx) -> None:
        now_running[0] += 1
        most[0] = max(most[0], now_running[0])
        ran.append(ctx.task_id)
        await gate.wait()
        now_running[0] -= 1

    worker = fake_worker(FakeConsumer(), reg, concurrency=2)
    worker.state.name_seconds["t.slow"] = 0.001  # known to end fast: claimed ahead, they wait
    for task_id in range(1, 6):
        worker.outcomes.start(ClaimedTask(task_id, "t.slow", "default", {}, 1, None, 0, fence=1))
    await anyio.sleep(0.05)
    assert sorted(ran) == [1, 2]  # two slots: the other three wait, claimed
    worker.running[5].stop("lost")  # cancelled elsewhere before it started
    gate.set()
    with anyio.fail_after(5):
        await asyncio.gather(*(run.handle for run in list(worker.running.values())))
    assert (sorted(ran), most[0]) == ([1, 2, 3, 4], 2)
    assert sorted(task_id for task_id, _, _ in worker.completer.acks) == [1, 2, 3, 4]


def _quick_and_long(consumer: FakeConsumer, gate: anyio.Event) -> Worker:
    """A one-slot worker whose "t.quick" handlers are known to end fast, and whose
    "t.long" ones have never run here; both wait for `gate`."""
    reg = Registry()

    @task(name="t.quick", registry=reg)
    async def quick(ctx) -> None:
        await gate.wait()

    @task(name="t.long", registry=reg)
    async def long(ctx) -> None:
        await gate.wait()

    worker = fake_worker(consumer, reg, concurrency=1)
    worker.state.note_duration("default", "t.quick", 0.001)
    return worker


async def _start(worker: Worker, *tasks: tuple[int, str]) -> None:
    """Start these (task id, name) claimed tasks, and let them settle."""
    for task_id, name in tasks:
        worker.outcomes.start(ClaimedTask(task_id, name, "default", {}, 1, None, 0, fence=4))
    await anyio.sleep(0.05)


async def _let_go(worker: Worker, gate: anyio.Event) -> None:
    """Open the gate, and wait for every running handler to end."""
    gate.set()
    with anyio.fail_after(5):
        await asyncio.gather(*(run.handle for run in list(worker.running.values())))


async def test_a_task_claimed_ahead_whose_handler_may_be_slow_is_handed_back_at_once() -> None:
    """Claims ahead follow the queue's handlers; a task among them whose own handler is
    not known to end fast goes back for another worker to start now, and its queue is no
    longer claimed ahead."""
    consumer, gate = FakeConsumer(), anyio.Event()
    worker = _quick_and_long(consumer, gate)
    worker.state.in_flight["default"] = 1
    assert worker.fetcher.free("default") == 1  # its slot is taken: one batch ahead
    worker.state.in_flight["default"] = 0
    await _start(worker, (1, "t.quick"), (2, "t.quick"), (3, "t.long"))
    assert consumer.released == [(3, 4)]  # unknown speed: not held behind the slot
    assert sorted(worker.running) == [1, 2]  # the quick one ahead waits for the slot
    assert worker.fetcher.free("default") == 0  # in flight 2, and no more claims ahead
    await _let_go(worker, gate)
    assert sorted(task_id for task_id, _, _ in worker.completer.acks) == [1, 2]


async def test_after_a_hand_back_its_queue_is_claimed_again_only_into_a_free_slot() -> None:
    """The task handed back is first in line again: the next claim of its queue waits for
    a free slot, so that task starts here, however fast the queue's other handlers end
    meanwhile, instead of coming in a batch claimed ahead and going back again."""
    consumer, gate = FakeConsumer(), anyio.Event()
    worker = _quick_and_long(consumer, gate)
    await _start(worker, (1, "t.quick"), (2, "t.long"))
    assert consumer.released == [(2, 4)]
    worker.state.note_duration("default", "t.quick", 0.001)  # quick ones end fast again
    assert worker.fetcher.free("default") == 0  # its slot is taken: nothing ahead
    await _let_go(worker, gate)
    assert worker.fetcher.free("default") == 1  # the slot is free: claim into it
    await worker.fetcher.claim_round()
    worker.state.in_flight["default"] = 1
    assert worker.fetcher.free("default") == 1  # that claim had a free slot: ahead again


class _RateHeld(FakeConsumer):
    """Queue "api" waits `hold` seconds for its next rate slot; "other" is empty."""

    hold = 0.25

    def held_back(self, queue: str) -> float:
        return self.hold if queue == "api" else 0.0


async def test_an_idle_worker_waits_no_longer_than_a_held_queues_next_slot() -> None:
    consumer = _RateHeld()
    worker = fake_worker(consumer, queues={"api": None, "other": None}, poll_min_seconds=1.0)
    waits: list[float] = []

    async def idle_wait(seconds: float) -> None:
        waits.append(seconds)
        worker.state.stopping = True

    worker.fetcher._idle_wait = idle_wait  # type: ignore[method-assign]
    with anyio.fail_after(10):
        await worker.fetcher.run()
    # The other queue's back-off (1 s here) would sleep past the slot: at most the hold.
    assert waits == [consumer.hold]


def test_claims_ahead_follow_each_queues_own_handlers() -> None:
    worker = fake_worker(FakeConsumer(), queues={"fast": None, "slow": None}, concurrency=3)
    worker.state.note_duration("fast", "t.add", 0.001)
    worker.state.in_flight["slow"] = 1
    assert worker.fetcher.free("fast") == 3  # 2 free slots and a batch ahead; a batch a claim
    assert worker.fetcher.free("slow") == 2  # never run here: only the free slots


async def test_a_burst_worker_drains_its_queue_through_the_consumer_alone() -> None:
    reg = Registry()

    @task(name="t.x", registry=reg)
    async def work(ctx) -> dict:
        if ctx.task_id == 3:
            raise ValueError("three is bad")
        return {"id": ctx.task_id}

    consumer = FakeConsumer(fresh=range(1, 21))
    worker = fake_worker(consumer, reg, burst=True)
    with anyio.fail_after(10):
        await worker.run()
    assert sorted(t for t, _, _ in consumer.completed) == [i for i in range(1, 21) if i != 3]
    assert consumer.failed[0][:3] == (3, 1, "ValueError") and consumer.failed[0][3] > 0
    assert consumer.beats >= 1 and consumer.pools[False] == []


class FullQueue(FakeConsumer):
    """A queue at its concurrency limit: claims take only free slots, which only the
    worker's own completion writes free. A write takes longer than the hold on claims,
    as on a loaded machine: while one is under way, the queue looks held no more."""

    def __init__(self, fresh: range, slots: int) -> None:
        super().__init__(fresh=fresh)
        self.refill_queues.add("default")
        self.slots = slots
        self.writing = False

    async def claim(self, queue: str, limit: int, *, orphans: bool = False) -> list[ClaimedTask]:
        tasks = await super().claim(queue, min(limit, self.slots), orphans=orphans)
        self.slots -= len(tasks)
        return tasks

    async def complete(self, done: Sequence[Ending]) -> set[int]:
        self.writing = True
        await anyio.sleep(0.05)
        self.slots += len(done)
        self.writing = False
        return await super().complete(done)

    def waits_for_endings(self) -> bool:
        return self.slots == 0

    def held_back(self, queue: str) -> float:
        return 0.01 if self.slots == 0 else 0.0

    def waiting_on_limits(self, queues: list[str]) -> bool:
        return self.slots == 0 and not self.writing


async def test_a_burst_worker_at_a_queue_limit_waits_for_the_write_that_claims_its_next_tasks() -> (
    None
):
    reg = Registry()

    @task(name="t.x", registry=reg)
    async def work(ctx) -> None:
        return None

    consumer = FullQueue(range(1, 21), slots=4)
    worker = fake_worker(consumer, reg, burst=True)
    with anyio.fail_after(10):
        await worker.run()
    assert sorted(t for t, _, _ in consumer.completed) == list(range(1, 21))
    assert consumer.refills  # later batches came with the completion writes


async def test_a_stopped_worker_hands_back_cut_off_and_never_started_tasks_uncharged() -> None:
    reg = Registry()

    @task(name="t.x", registry=reg)
    async def forever(ctx) -> None:
        await anyio.sleep(3600)

    consumer = FakeConsumer(fresh=[1, 2, 3])
    worker = fake_worker(consumer, reg, concurrency=1, shutdown_timeout=0.05)
    worker.state.queue_seconds["default"] = 0.001  # fast so far: the worker claims ahead
    worker.state.name_seconds["t.x"] = 0.001
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.run)
            while len(worker.running) < 2:  # noqa: ASYNC110 - polling the worker is the point
                await anyio.sleep(0.01)
            worker.stop()
    assert [t for t, _, _ in consumer.interrupted] == [1]  # it ran: cut off
    assert consumer.released == [(2, 1)]  # claimed ahead, never started
    assert consumer.completed == [] and consumer.failed == []


def test_a_task_runs_in_a_thread_until_the_last_of_its_threads_ends() -> None:
    """A cancelled attempt's thread may still run beside its retried task's: the task's
    thread is not over when the first of the two ends."""
    from worker import execution

    gates = [threading.Event(), threading.Event()]
    entered = threading.Barrier(3)

    def handler(ctx: object, n: int) -> None:
        entered.wait(timeout=10)
        gates[n].wait(timeout=10)

    threads = [
        threading.Thread(target=execution._in_thread, args=(7, handler, None, {"n": n}))
        for n in (0, 1)
    ]
    for thread in threads:
        thread.start()
    entered.wait(timeout=10)
    gates[0].set()
    threads[0].join(timeout=10)
    assert 7 in execution.threads_running()
    gates[1].set()
    threads[1].join(timeout=10)
    assert 7 not in execution.threads_running()


class SaidLog:
    """A worker log that keeps what was said."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = error = debug = warning

    def about(self, event: str) -> list[dict[str, Any]]:
        return [fields for said, fields in self.lines if said == event]


@pytest.mark.parametrize("is_async", [True, False])
async def test_a_handler_that_blocks_the_event_loop_is_named_and_a_thread_that_blocks_is_not(
    is_async: bool,
) -> None:
    reg = Registry()

    def block(ctx: Any) -> None:
        time.sleep(2.0)  # the mistake the warning is for, in an async handler

    async def block_async(ctx: Any) -> None:
        block(ctx)

    task(name="t.x", registry=reg)(block_async if is_async else block)
    consumer = FakeConsumer(fresh=[1])
    worker = fake_worker(consumer, reg)
    worker.state.log = said = SaidLog()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(10):
            while not consumer.completed:  # noqa: ASYNC110 - the fake's record is the point
                await anyio.sleep(0.05)
        await anyio.sleep(0.8)  # past the watcher's next look
        worker.stop()
    warned = said.about("the event loop was blocked")
    if not is_async:
        assert warned == []  # a plain def handler runs in a thread: the loop ran on
        return
    [fields] = warned
    assert fields["async_handlers"] == ["t.x"] and fields["seconds"] >= 1.0
    assert "plain def handler" in fields["hint"]
