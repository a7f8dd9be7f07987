"""startup: how long a worker process takes from spawn to its first task's start, and to
its exit, with one task waiting (median of five spawns), beside pgqueuer's worker."""

from __future__ import annotations

import statistics

from benchmarks import marks, pgq_peer, processes, report
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.report import Result, say
from benchmarks.scenarios.common import enqueue_noops, guarded
from benchmarks.scenarios.context import Context

NAME = "startup"
SPAWNS = 5


def title(cfg: Config) -> str:
    return (
        f"startup: a burst worker spawned with one task waiting, {SPAWNS} times; median seconds "
        "from spawn to the task's start and to the process's exit\n  'x / y' = taskstore / pgqueuer"
    )


async def run(ctx: Context, backend: str) -> Result:
    errors: list[str] = []
    async with ctx.database(backend) as db:
        say("  taskstore ...")
        ts = await guarded("taskstore", _spawns(db, _taskstore), errors)
        pgq = await ctx.peer(backend, lambda: _pgqueuer_spawns(db), errors)
    cells = [
        ("first task at", report.figure(ts, "first_task_s", report.seconds)),
        ("/", report.figure(pgq, "first_task_s", report.seconds)),
        ("exit at", report.figure(ts, "exit_s", report.seconds)),
        ("/", report.figure(pgq, "exit_s", report.seconds)),
    ]
    return Result(NAME, backend, {"taskstore": ts, "pgqueuer": pgq}, cells, errors)


async def _spawns(db: BenchDatabase, one) -> dict:
    firsts, exits = [], []
    for i in range(SPAWNS):
        first, exit_s = await one(db, i)
        firsts.append(first)
        exits.append(exit_s)
    return {
        "first_task_s": round(statistics.median(firsts), 4),
        "exit_s": round(statistics.median(exits), 4),
        "spawns": SPAWNS,
    }


async def _taskstore(db: BenchDatabase, i: int) -> tuple[float, float]:
    await enqueue_noops(db.url, 1, 1)
    first = db.workdir / f"first-taskstore-{i}"
    env = {marks.FIRST_START_ENV: str(first)}
    child = processes.taskstore_worker(db.url, db.workdir, "--burst", concurrency=10, env=env)
    await child.wait(60)
    exit = child.check("taskstore-worker")
    return _timings(child, exit, first)


async def _pgqueuer_spawns(db: BenchDatabase) -> dict:
    async with pgq_peer.PgqClient.installed(db.raw) as client:

        async def one(db: BenchDatabase, i: int) -> tuple[float, float]:
            first = db.workdir / f"first-pgqueuer-{i}"
            env = {marks.FIRST_START_ENV: str(first)}
            await client.insert(1, 1)
            child = pgq_peer.worker(db.raw, db.workdir, "--drain", batch_size=10, env=env)
            await child.wait(60)
            return _timings(child, child.check("pgqueuer worker"), first)

        return await _spawns(db, one)


def _timings(child, exit, first_file) -> tuple[float, float]:
    started = marks.read_first_start(first_file)
    if started is None:
        raise RuntimeError("no task started")
    return started - child.started, exit.seconds
