"""flow: what flow control costs and whether its limits hold, on one worker process.

- drain of N no-op tasks with the queue unlimited, then with ``concurrency 50`` (the
  limited claim: a transaction that locks the queue's row and counts what runs);
- a ``rate 500/1s`` queue fed more than it may start, run for a fixed time: starts per
  second over the run, and the most starts in any one-second window (database clock);
- a drain of a tenth as many tasks spread over ten concurrency keys with
  ``key_concurrency 1`` (each key's tasks one at a time, in order).
"""

from __future__ import annotations

import asyncio
import collections
import time

from benchmarks import processes, report
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.raw import connected
from benchmarks.report import Result, say
from benchmarks.scenarios.common import (
    NOOP,
    drain_timeout,
    enqueue_noops,
    guarded,
    per_second,
    wait_until,
)
from benchmarks.scenarios.context import Context
from taskstore import TaskStore

NAME = "flow"
RATE = 500
KEYS = 10


def title(cfg: Config) -> str:
    return (
        f"flow: {cfg.tasks:,} no-op tasks drained by one worker (--concurrency "
        f"{cfg.concurrency}) with the queue unlimited and with concurrency 50; a rate "
        f"{RATE}/1s queue run for {_rate_seconds(cfg):g} s; {_keyed_tasks(cfg):,} tasks over "
        f"{KEYS} keys at key concurrency 1\n  ratio = limited / unlimited"
        + (f", the median of {cfg.pairs} pairs run alternately" if cfg.pairs > 1 else "")
    )


def _rate_seconds(cfg: Config) -> float:
    return 3.0 if cfg.quick else 20.0


def _keyed_tasks(cfg: Config) -> int:
    return max(KEYS, cfg.tasks // 10)


async def run(ctx: Context, backend: str) -> Result:
    cfg, errors = ctx.cfg, []
    pairs = []
    for n in range(1, cfg.pairs + 1):  # alternating, so both see the machine's drift alike
        suffix = f" ({n} of {cfg.pairs})" if cfg.pairs > 1 else ""
        async with ctx.database(backend) as db:
            say(f"  unlimited{suffix} ...")
            plain = await guarded("unlimited", _drain(db, cfg, None), errors)
        async with ctx.database(backend) as db:
            say(f"  concurrency 50{suffix} ...")
            limited = await guarded("concurrency 50", _drain(db, cfg, 50), errors)
        ratio = report.ratio(limited.get("rate"), plain.get("rate"))
        pairs.append({"unlimited": plain, "concurrency_50": limited, "ratio": ratio})
    async with ctx.database(backend) as db:
        say(f"  rate {RATE}/1s ...")
        rated = await guarded("rate", _rated(db, cfg), errors)
    async with ctx.database(backend) as db:
        say(f"  key concurrency 1 over {KEYS} keys ...")
        keyed = await guarded("keyed", _keyed(db, cfg), errors)
    middle = _median_pair(pairs)
    plain, limited, ratio = middle["unlimited"], middle["concurrency_50"], middle["ratio"]
    cells = [
        ("unlimited", report.figure(plain, "rate", report.rate)),
        ("concurrency 50", report.figure(limited, "rate", report.rate)),
        ("ratio" if len(pairs) == 1 else f"median ratio of {len(pairs)}", report.times(ratio)),
        (f"rate {RATE}/1s", report.figure(rated, "starts_per_second", report.rate)),
        ("most in 1 s", report.figure(rated, "most_in_one_second", str)),
        (f"{KEYS} keys, 1 each", report.figure(keyed, "rate", report.rate)),
    ]
    if len(pairs) > 1:
        cells.insert(3, ("each", " ".join(report.times(p["ratio"]) for p in pairs)))
    data = {**middle, "rate": rated, "keyed": keyed, "pairs": pairs}
    return Result(NAME, backend, data, cells, errors)


def _median_pair(pairs: list[dict]) -> dict:
    """The pair whose ratio is the median (the lower middle one of an even count)."""
    measured = sorted((p for p in pairs if p["ratio"] is not None), key=lambda p: p["ratio"])
    return measured[(len(measured) - 1) // 2] if measured else pairs[0]


async def _drain(db: BenchDatabase, cfg: Config, concurrency: int | None) -> dict:
    if concurrency is not None:
        async with TaskStore.from_url(db.url) as store:
            await store.set_queue("default", concurrency=concurrency)
    await enqueue_noops(db.url, cfg.tasks, cfg.enqueue_batch)
    return await _burst(db, cfg, cfg.tasks)


async def _keyed(db: BenchDatabase, cfg: Config) -> dict:
    count = _keyed_tasks(cfg)
    async with TaskStore.from_url(db.url) as store:
        await store.set_queue("default", key_concurrency=1)
        items = [
            {"name": NOOP, "payload": {}, "concurrency_key": f"k{i % KEYS}"} for i in range(count)
        ]
        for start in range(0, count, cfg.enqueue_batch):
            await store.enqueue_many(items[start : start + cfg.enqueue_batch])
    return await _burst(db, cfg, count)


async def _burst(db: BenchDatabase, cfg: Config, count: int) -> dict:
    """Drain the `count` tasks waiting with one burst worker, timed from spawn to exit."""
    child = processes.taskstore_worker(db.url, db.workdir, "--burst", concurrency=cfg.concurrency)
    await child.wait(drain_timeout(count))
    exit = child.check("taskstore-worker")
    async with connected(db) as raw:
        done = await raw.count("completed")
    if done != count:
        raise RuntimeError(f"{done:,} of {count:,} tasks completed")
    return {
        "tasks": done,
        "seconds": round(exit.seconds, 4),
        "rate": per_second(done, exit.seconds),
    }


async def _rated(db: BenchDatabase, cfg: Config) -> dict:
    seconds = _rate_seconds(cfg)
    async with TaskStore.from_url(db.url) as store:
        await store.set_queue("default", rate=f"{RATE}/1s")
    await enqueue_noops(db.url, int(RATE * (seconds + 5)), cfg.enqueue_batch)
    child = processes.taskstore_worker(db.url, db.workdir, concurrency=cfg.concurrency)
    async with connected(db) as raw:
        await wait_until(lambda: _any_done(raw), 60, "the first start", child)
    deadline = time.monotonic() + seconds + 1
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if (exit := child.poll()) is not None:
            raise RuntimeError(f"worker exited with {exit.returncode}{child.tail()}")
    child.kill()
    async with TaskStore.from_url(db.url) as store:
        starts = sorted(await _starts(store))
    figures = _window_figures(starts, seconds)
    if figures.get("starts", 0) < 0.95 * RATE * seconds:
        # A short run is the one worth explaining: keep what the worker said.
        figures["worker_log"] = child.tail(20)
        say(f"  rate {RATE}/1s fell short; starts by second: {figures.get('by_second')}")
    return figures


async def _any_done(raw) -> bool:
    return await raw.count("completed") > 0


async def _starts(store: TaskStore) -> list[float]:
    from sqlalchemy import select

    from taskstore.models.task import TaskEntity

    table = TaskEntity.__table__
    async with store.reading() as conn:
        rows = await conn.execute(select(table.c.started_at).where(table.c.started_at.is_not(None)))
        return [row[0].timestamp() for row in rows]


def _window_figures(starts: list[float], seconds: float) -> dict:
    """Starts per second over `seconds` from the first start, and the most in any 1 s."""
    if not starts:
        return {"error": "no task started"}
    first = starts[0]
    inside = [t for t in starts if t < first + seconds]
    by_second = collections.Counter(int(t - first) for t in inside)
    most, j = 0, 0
    for i, t in enumerate(starts):
        while starts[j] <= t - 1.0:
            j += 1
        most = max(most, i - j + 1)
    return {
        "by_second": [by_second[s] for s in range(int(seconds))],
        "starts": len(inside),
        "seconds": seconds,
        "starts_per_second": per_second(len(inside), seconds),
        "most_in_one_second": most,
    }
