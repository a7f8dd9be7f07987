"""Pieces every scenario uses: guarded measurements, waiting, producing, percentiles."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from benchmarks.processes import Child
from benchmarks.raw import RawQueue
from benchmarks.report import say
from taskstore import TaskStore

NOOP = "bench.noop"
STAMP = "bench.stamp"


async def guarded(system: str, work: Coroutine[Any, Any, dict], errors: list[str]) -> dict:
    """Run one system's measurement; a failure becomes {"error": ...}, not a crash."""
    try:
        return await work
    except Exception as exc:
        message = f"{system}: {type(exc).__name__}: {exc}"
        say("  error: " + message)
        errors.append(message)
        return {"error": f"{type(exc).__name__}: {exc}"}


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    within: float,
    what: str,
    child: Child | None = None,
    every: float = 0.02,
) -> None:
    """Poll `check` until it holds; TimeoutError naming `what` past `within` seconds.

    With `child`, a worker that dies meanwhile fails the wait at once.
    """
    deadline = time.monotonic() + within
    while not await check():
        if child is not None and (exit := child.poll()) is not None:
            raise RuntimeError(f"worker exited with {exit.returncode}{child.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {within:.0f} s waiting for {what}")
        await asyncio.sleep(every)


def completed_at_least(raw: RawQueue, count: int) -> Callable[[], Awaitable[bool]]:
    """A `wait_until` check: at least `count` tasks are completed."""

    async def check() -> bool:
        return await raw.count("completed") >= count

    return check


async def enqueue_noops(url: str, count: int, batch: int) -> float:
    """Enqueue `count` no-op tasks with `enqueue_many`; returns the seconds taken."""
    async with TaskStore.from_url(url) as store:
        async with store.reading():
            pass  # connected before the clock starts, as the raw probe is
        started = time.perf_counter()
        for done in range(0, count, batch):
            size = min(batch, count - done)
            await store.enqueue_many([{"name": NOOP, "payload": {}}] * size)
        return time.perf_counter() - started


async def produce(
    send: Callable[[int], Awaitable[Any]], batch: int, seconds: float, rate: float
) -> tuple[int, float]:
    """Call ``send(batch)`` for `seconds`, paced to `rate` tasks/s (0: flat out).

    Returns (tasks sent, seconds elapsed).
    """
    sent, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        if rate > 0 and sent > rate * elapsed:
            await asyncio.sleep(min(0.01, sent / rate - elapsed))
            continue
        await send(batch)
        sent += batch
    return sent, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every figure is a real sample)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def per_second(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def drain_timeout(tasks: int) -> float:
    """Generous: a worker slower than 200 tasks/s is broken, not slow."""
    return 60 + tasks / 200
