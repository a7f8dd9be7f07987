"""Execution middleware: code that wraps every attempt a worker runs.

A middleware is either ``async def mw(ctx, call_next)`` (it awaits ``call_next()`` and
sees the handler's return value or exception), or a function of ``ctx`` returning an
async context manager (it sees an exception in ``__aexit__``). They wrap each attempt in
registration order, the first registered outermost, around the handler's timeout (which
reaches them as `TaskTimeout`). What one raises is the attempt's error; what the
outermost returns is its result. The worker's Prometheus metrics and
`worker.tracing.instrument` are middleware of this kind.

    @middleware
    async def timed(ctx, call_next):
        started = time.perf_counter()
        try:
            return await call_next()
        finally:
            log.info("attempt", task=ctx.name, seconds=time.perf_counter() - started)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

CallNext = Callable[[], Awaitable[Any]]
#: ``async def mw(ctx, call_next)``, or ``mw(ctx)`` returning an async context manager
Middleware = Callable[..., Any]


def _takes_call_next(fn: Middleware) -> bool:
    try:
        return len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):
        return False


def check(fn: Middleware) -> Middleware:
    """`fn` as a middleware, or `TypeError` naming what is wrong with it."""
    if not callable(fn):
        raise TypeError(f"middleware must be callable, got {type(fn).__name__}")
    if _takes_call_next(fn) and not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"middleware {getattr(fn, '__qualname__', fn)!r} takes (ctx, call_next), so it "
            "must be an async def"
        )
    return fn


def wrap(chain: list[Middleware], ctx: Any, call: CallNext) -> CallNext:
    """`call` wrapped by `chain`, the first middleware outermost."""
    for mw in reversed(chain):
        call = _one(mw, ctx, call)
    return call


def _one(mw: Middleware, ctx: Any, call_next: CallNext) -> CallNext:
    if _takes_call_next(mw):

        async def around() -> Any:
            return await mw(ctx, call_next)

        return around

    async def within() -> Any:
        async with mw(ctx):
            return await call_next()

    return within
