"""Running one attempt of one task: call the handler and describe how it ended.

Nothing here writes to the database; `worker.runner` records the `Outcome`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import inspect
import threading
import time
import traceback
from typing import Any

import anyio

from taskstore.errors import InvalidInput
from taskstore.validation import encode_json
from worker.context import TaskContext
from worker.errors import NonRetryable, RegistrationError, TaskTimeout, WrongArguments
from worker.registry import TaskDef
from worker.wrappers import Middleware, wrap

_TRACEBACK_LIMIT = 16_000
_MESSAGE_LIMIT = 4_000
#: tasks whose sync handler's thread still runs (it may outlive a timeout or a stop), with
#: how many: a cancelled attempt's thread may still run beside its retried task's
THREADS_RUNNING: collections.Counter[int] = collections.Counter()
_THREADS_LOCK = threading.Lock()
_NO_MIDDLEWARE: list[Middleware] = []


@dataclasses.dataclass(slots=True)
class Running:
    """Book-keeping for an attempt in progress; `stop` cancels its handler.

    Attempts run as plain asyncio tasks: anyio's per-task scopes and handles cost more
    than a no-op handler, and the database drivers tie the worker to asyncio anyway.
    """

    task_id: int
    queue: str
    claimed_at: float
    handle: asyncio.Task[Any] | None = None
    reason: str | None = None  # "lost" (cancelled or rescued elsewhere) or "shutdown"
    name: str = ""

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            if self.handle is not None:
                self.handle.cancel()

    def absorb_stop(self) -> bool:
        """In an ``except CancelledError``: True (and the cancellation undone, so the
        bookkeeping that follows can run) if `stop` caused it; False if it is not ours
        (the whole worker is being cancelled) and must be re-raised."""
        if self.reason is None:
            return False
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        return True


@dataclasses.dataclass
class Outcome:
    """How an attempt ended: `result_json` on success, `error` on failure, or `abandoned`."""

    ctx: TaskContext | None
    result_json: str | None = None
    error: BaseException | None = None
    abandoned: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.abandoned is None


def error_document(
    error: BaseException,
    *,
    attempt: int,
    worker_id: str,
    max_attempts: int | None = None,
    limit_from: str | None = None,
) -> dict[str, Any]:
    """The JSON stored on the task for a failed attempt (with the attempt limit the
    worker applied, which for a task enqueued without one only its handler knows, and
    then `limit_from`: "handler" or "default", see `taskstore.formatting.applied_limit`)."""
    kind = type(error)
    trace = "".join(traceback.format_exception(error))
    return {
        "type": kind.__name__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}",
        "message": _message(error),
        "traceback": trace[-_TRACEBACK_LIMIT:],
        "attempt": attempt,
        "worker": worker_id,
        **({} if max_attempts is None else {"max_attempts": max_attempts}),
        **({} if limit_from is None else {"max_attempts_from": limit_from}),
    }


def _message(error: BaseException) -> str:
    """`str(error)`, its head where it is long (it is stored on the task and again on the
    attempt, and shown in lists), or a note where that raises: the failure must be
    recorded still."""
    try:
        message = str(error)
    except Exception as exc:
        return f"<its message could not be read: {type(exc).__name__}: {exc}>"
    if len(message) <= _MESSAGE_LIMIT:
        return message
    return f"{message[:_MESSAGE_LIMIT]}... ({len(message):,} characters in all)"


@functools.cache
def _keywords(fn: Any) -> tuple[frozenset[str], frozenset[str]] | None:
    """(required, accepted) keyword names after the context; None when anything goes."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = frozenset(p.name for p in named if p.default is p.empty)
    return required, frozenset(p.name for p in named)


def _check_arguments(definition: TaskDef, payload: dict[str, Any]) -> None:
    # Two set comparisons per task; the handler's signature explains a mismatch.
    shape = _keywords(definition.fn)
    if shape is None or shape[0] <= payload.keys() <= shape[1]:
        return
    said = f"payload does not fit {definition.name}"
    try:
        wrong = definition.signature.misfit(payload)
    except RegistrationError:  # a resolved handler no @task has checked
        wrong = None
    raise WrongArguments(f"{said}: {wrong}" if wrong else said)


async def _call(definition: TaskDef, ctx: TaskContext, payload: dict[str, Any]) -> Any:
    _check_arguments(definition, payload)
    if definition.is_async:
        return await definition.fn(ctx, **payload)
    # A thread cannot be interrupted: on timeout or cancellation we stop waiting for it.
    call = functools.partial(_in_thread, ctx.task_id, definition.fn, ctx, payload)
    return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)


def threads_running() -> set[int]:
    """The tasks whose sync handler's thread still runs, at one look."""
    with _THREADS_LOCK:
        return set(THREADS_RUNNING)


def _in_thread(task_id: int, fn: Any, ctx: TaskContext, payload: dict[str, Any]) -> Any:
    with _THREADS_LOCK:
        THREADS_RUNNING[task_id] += 1
    try:
        return fn(ctx, **payload)
    finally:
        with _THREADS_LOCK:
            THREADS_RUNNING[task_id] -= 1
            if not THREADS_RUNNING[task_id]:
                del THREADS_RUNNING[task_id]


async def _call_in_time(definition: TaskDef, ctx: TaskContext, payload: dict[str, Any]) -> Any:
    """The handler under its own timeout (`TaskTimeout` when that fires)."""
    if definition.timeout is None:  # most handlers: no timeout object to build per attempt
        return await _call(definition, ctx, payload)
    deadline = asyncio.timeout(definition.timeout)
    try:
        async with deadline:
            return await _call(definition, ctx, payload)
    except TimeoutError:
        # Ours only if our deadline fired; a handler's own TimeoutError (a socket, a
        # lock) is its error like any other, with its own message and traceback.
        if deadline.expired():
            limit = definition.timeout
            raise TaskTimeout(f"{definition.name} ran past its {limit}s timeout") from None
        raise


def _cancelled_from_outside() -> bool:
    """Was this attempt's task itself cancelled (the worker is being torn down)? A
    `CancelledError` that merely came out of the handler leaves it uncancelled."""
    current = asyncio.current_task()
    return current is None or current.cancelling() > 0


def _encode_result(value: Any) -> str | None:
    """The result as JSON text, checked like a payload: a value no database can store
    (NUL, a lone surrogate) fails its own task instead of the batch it is acked with."""
    if value is None:
        return None
    try:
        return encode_json(value, "the handler's return value")
    except InvalidInput as exc:
        raise NonRetryable(str(exc)) from None


async def attempt(
    definition: TaskDef,
    ctx: TaskContext,
    payload: dict[str, Any],
    running: Running,
    chain: list[Middleware] = _NO_MIDDLEWARE,
) -> Outcome:
    """Run the handler under its timeout, wrapped in `chain` (which sees a timeout as
    `TaskTimeout`); `running.stop()` abandons it."""
    started = time.perf_counter()
    outcome = Outcome(ctx)
    try:
        if chain:
            value = await wrap(chain, ctx, lambda: _call_in_time(definition, ctx, payload))()
        elif definition.timeout is None:  # most handlers: one coroutine frame fewer
            value = await _call(definition, ctx, payload)
        else:
            value = await _call_in_time(definition, ctx, payload)
        outcome.result_json = _encode_result(value)
    except asyncio.CancelledError as exc:
        if not running.absorb_stop() and _cancelled_from_outside():
            raise
        if running.reason is None:  # the handler's own: it awaited a task that was cancelled
            outcome.error = exc
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # the handler's, or TaskTimeout
        # sys.exit() in a handler (an argparse error, say) fails that task: let through,
        # it would end the worker and strand every task beside it until its lease ran out.
        outcome.error = exc
    if running.reason is not None:
        outcome.abandoned = running.reason
        outcome.error = None
    outcome.seconds = time.perf_counter() - started
    return outcome
