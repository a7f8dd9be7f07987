"""memory: a burst worker's peak RSS while draining many tasks, and its RSS sampled
against progress, to show it does not grow with the number of tasks processed."""

from __future__ import annotations

import asyncio
import time

from benchmarks import processes, report
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.processes import Child
from benchmarks.raw import RawQueue, connected
from benchmarks.report import Result, say
from benchmarks.scenarios.common import drain_timeout, enqueue_noops, guarded
from benchmarks.scenarios.context import Context

NAME = "memory"
_SAMPLE_SECONDS = 0.1
_MARKS = (0.25, 0.5, 0.75)


def title(cfg: Config) -> str:
    return (
        f"memory: taskstore-worker --burst draining {cfg.memory_tasks:,} tasks; peak RSS "
        "(VmHWM) and RSS when 25/50/75/100% were processed"
    )


async def run(ctx: Context, backend: str) -> Result:
    cfg, errors = ctx.cfg, []
    async with ctx.database(backend) as db:
        ts = await guarded("taskstore", _taskstore(db, cfg), errors)
    at = ts.get("rss_at_mb", {})
    cells = [("peak", report.figure(ts, "peak_rss_mb", report.mb))]
    cells += [(f"@{k}", report.mb(at.get(k))) for k in ("25%", "50%", "75%", "end")]
    cells += [("growth 25%->end", report.figure(ts, "growth_mb", report.mb))]
    return Result(NAME, backend, {"taskstore": ts}, cells, errors)


async def _taskstore(db: BenchDatabase, cfg: Config) -> dict:
    say(f"  enqueueing {cfg.memory_tasks:,} tasks ...")
    await enqueue_noops(db.url, cfg.memory_tasks, cfg.enqueue_batch)
    child = processes.taskstore_worker(db.url, db.workdir, "--burst", concurrency=cfg.concurrency)
    async with connected(db) as raw:
        samples = await _sample(child, raw, cfg.memory_tasks, drain_timeout(cfg.memory_tasks))
    exit = child.check("taskstore-worker")
    return _summary(samples, exit.peak_rss_mb, cfg.memory_tasks)


async def _sample(child: Child, raw: RawQueue, total: int, within: float) -> list[tuple]:
    """(seconds, RSS MB, tasks processed) until the child exits."""
    samples: list[tuple] = []
    while child.poll() is None:
        rss = child.rss_mb()
        left = await raw.count("claimable")
        elapsed = round(time.time() - child.started, 2)
        if rss is not None:
            samples.append((elapsed, round(rss, 1), total - left))
        if elapsed > within:
            child.kill()
            raise TimeoutError(f"worker still running after {within:.0f} s")
        await asyncio.sleep(_SAMPLE_SECONDS)
    return samples


def _summary(samples: list[tuple], peak: float, total: int) -> dict:
    at: dict[str, float | None] = {}
    for fraction in _MARKS:
        hit = next((s for s in samples if s[2] >= fraction * total), None)
        at[f"{fraction:.0%}"] = None if hit is None else hit[1]
    at["end"] = samples[-1][1] if samples else None
    growth = None if at["25%"] is None or at["end"] is None else round(at["end"] - at["25%"], 1)
    return {
        "tasks": total,
        "peak_rss_mb": round(peak, 1),
        "rss_at_mb": at,
        "growth_mb": growth,
        "samples": [{"s": s[0], "rss_mb": s[1], "processed": s[2]} for s in samples],
    }
