"""depth: per-task cost of claim + ack through the store's repository, with a small and
a large table (mostly completed history, plus a batch of claimable tasks).

The claim path must not slow down as history piles up: the partial claim index holds only
claimable rows. History is generated server-side (``generate_series`` on PostgreSQL, a
recursive CTE on SQLite); on PostgreSQL it is then vacuumed and analysed, as autovacuum
would soon do.
"""

from __future__ import annotations

import time

from benchmarks import report
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.raw import connected
from benchmarks.report import Result, say
from benchmarks.scenarios.common import enqueue_noops, guarded
from benchmarks.scenarios.context import Context
from taskstore import TaskStore

NAME = "depth"
WORKER_ID = "bench-depth"


def title(cfg: Config) -> str:
    small, large = cfg.depth_sizes
    return (
        f"depth: claim + ack per task (store.tasks.claim / complete_many, batches of "
        f"{cfg.claim_batch}), {cfg.depth_claimable:,} claimable among {small:,} vs "
        f"{large:,} rows; ratio = large / small"
    )


async def run(ctx: Context, backend: str) -> Result:
    cfg, errors = ctx.cfg, []
    async with ctx.database(backend) as db:
        ts = await guarded("taskstore", _taskstore(db, cfg), errors)
    small, large = (_label(n) for n in cfg.depth_sizes)
    ratios = {"large/small": report.ratio(ts.get("large_us"), ts.get("small_us"))}
    cells = [
        (small + " rows", report.figure(ts, "small_us", report.us)),
        (large + " rows", report.figure(ts, "large_us", report.us)),
        ("ratio", report.times(ratios["large/small"])),
        ("i.e.", report.figure(ts, "large_rate", report.rate)),
    ]
    return Result(NAME, backend, {"taskstore": ts, "ratios": ratios}, cells, errors)


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1_000}k"


async def _taskstore(db: BenchDatabase, cfg: Config) -> dict:
    figures: dict[str, float | int] = {}
    present = 0
    for key, total in zip(("small", "large"), cfg.depth_sizes, strict=True):
        history = total - present - cfg.depth_claimable
        say(f"  {total:,} rows: adding {history:,} history rows ...")
        await _add_history(db, history)
        await enqueue_noops(db.url, cfg.depth_claimable, cfg.enqueue_batch)
        done, seconds = await _claim_and_ack(db.url, cfg.claim_batch)
        if done != cfg.depth_claimable:
            raise RuntimeError(f"claimed {done:,} of {cfg.depth_claimable:,} tasks")
        figures[key + "_rows"] = total
        figures[key + "_us"] = round(seconds / done * 1e6, 2)
        figures[key + "_rate"] = done / seconds
        present = total
    return figures


async def _add_history(db: BenchDatabase, count: int) -> None:
    if count <= 0:
        return
    async with connected(db) as raw:
        await raw.add_history(count)


async def _claim_and_ack(url: str, batch: int) -> tuple[int, float]:
    """Claim and complete until nothing is claimable, as a worker's two transactions do."""
    done = 0
    async with TaskStore.from_url(url) as store:
        started = time.perf_counter()
        while True:
            async with store.transaction() as conn:
                claimed = await store.tasks.claim(
                    conn, worker_id=WORKER_ID, queue="default", limit=batch, lease_seconds=30
                )
            if not claimed:
                return done, time.perf_counter() - started
            acks = [(t.id, t.fence, None) for t in claimed]
            async with store.transaction() as conn:
                await store.tasks.complete_many(conn, worker_id=WORKER_ID, done=acks)
            done += len(claimed)
