"""OpenTelemetry for attempts: a consumer span per attempt that continues the producer's
trace (the ``traceparent`` its task carries, see `taskstore.tracing`), as middleware.

    from worker.tracing import instrument
    instrument()            # in the app module the worker loads, after configuring the SDK

Attributes: task id, name, queue, attempt, and the outcome (``completed``, or the error's
type, recorded as an exception with an error status). Needs the ``otel`` extra.
"""

from __future__ import annotations

from typing import Any

from worker.context import TaskContext
from worker.registry import Registry, middleware, registry
from worker.wrappers import CallNext

TRACER = "taskstore.worker"


async def trace_attempt(ctx: TaskContext, call_next: CallNext) -> Any:
    """Middleware: run the attempt inside a consumer span continuing the producer's trace."""
    from opentelemetry import propagate, trace

    parent = propagate.extract({"traceparent": ctx.trace_context}) if ctx.trace_context else None
    attributes = {
        "messaging.system": "taskstore",
        "messaging.operation.type": "process",
        "messaging.destination.name": ctx.queue,
        "taskstore.task.id": ctx.task_id,
        "taskstore.task.name": ctx.name,
        "taskstore.task.attempt": ctx.attempt,
    }
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(
        f"taskstore run {ctx.name}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            result = await call_next()
        except BaseException as exc:
            span.set_attribute("taskstore.outcome", type(exc).__name__)
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)[:200]))
            raise
        span.set_attribute("taskstore.outcome", "completed")
        return result


def instrument(target: Registry = registry) -> None:
    """Trace every attempt of `target`'s worker (once, however often called)."""
    import opentelemetry.trace  # noqa: F401 - fail here, clearly, without the extra

    if trace_attempt not in target.middleware:
        middleware(trace_attempt, registry=target)
