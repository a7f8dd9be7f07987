"""Execution middleware: order, what it sees, what it changes; no database needed."""

from __future__ import annotations

import contextlib

import pytest

from worker import Registry, middleware, task
from worker.execution import Running, attempt


class FakeCtx:
    used_session = None
    attempt = 1
    name = "unit.fn"
    queue = "default"


async def run(reg: Registry, fn, payload: dict | None = None):
    definition = task(name="unit.fn", registry=reg)(fn)
    return await attempt(
        definition, FakeCtx(), payload or {}, Running(1, "default", 0.0), reg.middleware
    )


async def test_middleware_wraps_attempts_in_registration_order_and_sees_the_result() -> None:
    reg, seen = Registry(), []

    @middleware(registry=reg)
    async def outer(ctx, call_next):
        seen.append("outer in")
        result = await call_next()
        seen.append(f"outer saw {result}")
        return result

    @middleware(registry=reg)
    def inner(ctx):
        @contextlib.asynccontextmanager
        async def around():
            seen.append("inner in")
            yield
            seen.append("inner out")

        return around()

    async def handler(ctx, x: int) -> int:
        seen.append("handler")
        return x * 2

    outcome = await run(reg, handler, {"x": 21})
    assert outcome.ok and outcome.result_json == "42"
    assert seen == ["outer in", "inner in", "handler", "inner out", "outer saw 42"]


async def test_middleware_sees_the_handlers_exception_and_may_change_the_outcome() -> None:
    reg, seen = Registry(), []

    @middleware(registry=reg)
    async def observe(ctx, call_next):
        try:
            return await call_next()
        except ValueError as exc:
            seen.append(type(exc).__name__)
            raise

    @middleware(registry=reg)
    def context_manager(ctx):
        @contextlib.asynccontextmanager
        async def around():
            try:
                yield
            except ValueError:
                seen.append("cm saw it")
                raise

        return around()

    async def broken(ctx) -> None:
        raise ValueError("bad")

    outcome = await run(reg, broken)
    assert isinstance(outcome.error, ValueError) and seen == ["cm saw it", "ValueError"]

    reg2 = Registry()

    @middleware(registry=reg2)
    async def swallow(ctx, call_next):
        try:
            return await call_next()
        except ValueError:
            return {"recovered": True}

    outcome = await run(reg2, broken)
    assert outcome.ok and outcome.result_json == '{"recovered":true}'


async def test_without_middleware_the_handler_is_called_directly() -> None:
    async def handler(ctx) -> str:
        return "plain"

    assert (await run(Registry(), handler)).result_json == '"plain"'


def test_a_sync_middleware_taking_call_next_is_refused_when_registered() -> None:
    with pytest.raises(TypeError, match="must be an async def"):
        middleware(lambda ctx, call_next: None, registry=Registry())
    with pytest.raises(TypeError, match="must be callable"):
        middleware(42, registry=Registry())


async def test_the_prometheus_metrics_middleware_counts_starts_and_times_handlers() -> None:
    import anyio

    from worker import Snooze
    from worker.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    chain = [metrics.attempt_middleware()]

    async def ok(ctx) -> int:
        return 1

    async def broken(ctx) -> None:
        raise RuntimeError("no")

    async def later(ctx) -> None:
        raise Snooze(5)

    async def slow(ctx) -> None:
        await anyio.sleep(5)

    for fn, options in ((ok, {}), (broken, {}), (later, {}), (slow, {"timeout": 0.05})):
        definition = task(name="unit.fn", registry=Registry(), **options)(fn)
        await attempt(definition, FakeCtx(), {}, Running(1, "default", 0.0), chain)

    # (outcomes are counted as the worker records them: see tests/integration/test_worker)
    labels = {"queue": "default", "name": "unit.fn"}
    assert metrics.registry.get_sample_value("taskstore_tasks_started_total", labels) == 4
    timed = metrics.registry.get_sample_value("taskstore_task_duration_seconds_count", labels)
    assert timed == 4
