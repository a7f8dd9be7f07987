"""drain: N pre-enqueued no-op tasks drained by real worker processes in burst mode (one,
or with ``--processes N`` one supervisor of N), timed from process start to exit (start-up
included), beside pgqueuer's worker(s) in drain mode and the raw claim/ack loop here."""

from __future__ import annotations

from pathlib import Path

from benchmarks import marks, pgq_peer, processes, report, server_cpu
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase
from benchmarks.processes import Child, Exit
from benchmarks.raw import connected
from benchmarks.report import Result, say
from benchmarks.scenarios.common import drain_timeout, enqueue_noops, guarded, per_second
from benchmarks.scenarios.context import Context

NAME = "drain"


def title(cfg: Config) -> str:
    workers = (
        "one worker process"
        if cfg.processes == 1
        else f"{cfg.processes} worker processes (taskstore: one supervisor of {cfg.processes})"
    )
    tasks = f"tasks sleeping {cfg.handler_ms:g} ms" if cfg.handler_ms else "no-op tasks"
    return (
        f"drain: {cfg.tasks:,} {tasks} drained by {workers}, timed from the first "
        f"start to the last exit\n  (taskstore --concurrency {cfg.concurrency}; pgqueuer "
        f"--batch-size {cfg.concurrency}; raw: one in-process claimer, {cfg.claim_batch} per "
        "claim)\n  ratio = taskstore / peer; 'x / y' = taskstore / pgqueuer"
    )


async def run(ctx: Context, backend: str) -> Result:
    cfg, errors = ctx.cfg, []
    async with ctx.database(backend) as db:
        say("  taskstore ...")
        ts = await guarded("taskstore", _taskstore(db, cfg), errors)
        say("  raw ...")
        raw = await guarded("raw", _raw(db, cfg), errors)
        pgq = await ctx.peer(backend, lambda: _pgqueuer(db, cfg), errors)
    ratios = {
        "taskstore/pgqueuer": report.ratio(ts.get("rate"), pgq.get("rate")),
        "taskstore/raw": report.ratio(ts.get("rate"), raw.get("rate")),
    }
    cells = [
        ("taskstore", report.figure(ts, "rate", report.rate)),
        ("pgqueuer", report.figure(pgq, "rate", report.rate)),
        ("ratio", report.times(ratios["taskstore/pgqueuer"])),
        ("raw", report.figure(raw, "rate", report.rate)),
        ("ratio", report.times(ratios["taskstore/raw"])),
        ("after first task", report.figure(ts, "rate_after_first_task", report.rate)),
        ("/", report.figure(pgq, "rate_after_first_task", report.rate)),
        ("first task at", report.figure(ts, "first_task_s", report.seconds)),
        ("/", report.figure(pgq, "first_task_s", report.seconds)),
        ("CPU us/task", report.figure(ts, "cpu_us_per_task", _us)),
        ("/", report.figure(pgq, "cpu_us_per_task", _us)),
        ("of it db", report.figure(ts, "db_cpu_us_per_task", _us)),
        ("/", report.figure(pgq, "db_cpu_us_per_task", _us)),
        ("peak RSS", report.figure(ts, "peak_rss_mb", report.mb)),
        ("/", report.figure(pgq, "peak_rss_mb", report.mb)),
    ]
    data = {"taskstore": ts, "pgqueuer": pgq, "raw": raw, "ratios": ratios}
    return Result(NAME, backend, data, cells, errors)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def figures(
    children: list[tuple[Child, Exit]],
    tasks: int,
    first_file: Path,
    db_cpu: float | None = None,
    processes: int | None = None,
) -> dict:
    """Rates, timings and CPU per task of drained worker processes started together
    (`db_cpu`: the database server's CPU seconds over the drain, where it was measured)."""
    first = marks.read_first_start(first_file)
    began = min(child.started for child, _ in children)
    ended = max(child.started + exit.seconds for child, exit in children)
    seconds = ended - began
    worker_cpu = sum(exit.cpu_seconds for _, exit in children)
    return {
        "tasks": tasks,
        "processes": processes or len(children),
        "seconds": round(seconds, 4),
        "rate": per_second(tasks, seconds),
        "first_task_s": None if first is None else round(first - began, 4),
        "rate_after_first_task": None if first is None else per_second(tasks, ended - first),
        "peak_rss_mb": round(max(exit.peak_rss_mb for _, exit in children), 1),
        "worker_cpu_us_per_task": round(worker_cpu / tasks * 1e6, 1),
        "db_cpu_us_per_task": None if db_cpu is None else round(db_cpu / tasks * 1e6, 1),
        "cpu_us_per_task": round((worker_cpu + (db_cpu or 0.0)) / tasks * 1e6, 1),
    }


async def _taskstore(db: BenchDatabase, cfg: Config) -> dict:
    await enqueue_noops(db.url, cfg.tasks, cfg.enqueue_batch)
    first = db.workdir / "first-taskstore"
    env = {marks.FIRST_START_ENV: str(first), **_handler_env(cfg)}
    server = await _server(db)
    cpu_before = server_cpu.cpu_seconds(server)
    # N processes run as deployed: one supervisor (`--processes N`), its workers forked
    # from its zygote; its CPU time includes theirs.
    supervised = ("--processes", str(cfg.processes)) if cfg.processes > 1 else ()
    child = processes.taskstore_worker(
        db.url, db.workdir, "--burst", *supervised, concurrency=cfg.concurrency, env=env
    )
    await child.wait(drain_timeout(cfg.tasks))
    exits = [(child, child.check("taskstore-worker"))]
    db_cpu = _spent(cpu_before, server_cpu.cpu_seconds(server))
    async with connected(db) as raw:
        done = await raw.count("completed")
    if done != cfg.tasks:
        raise RuntimeError(f"{done:,} of {cfg.tasks:,} tasks completed")
    return figures(exits, cfg.tasks, first, db_cpu, cfg.processes)


async def _server(db: BenchDatabase) -> int | None:
    return await server_cpu.postmaster_pid(db.raw) if db.backend == "postgres" else None


def _handler_env(cfg: Config) -> dict[str, str]:
    return {marks.HANDLER_MS_ENV: str(cfg.handler_ms)} if cfg.handler_ms else {}


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


async def _raw(db: BenchDatabase, cfg: Config) -> dict:
    async with connected(db) as raw:
        await raw.insert(cfg.tasks, cfg.enqueue_batch)
        done, seconds = await raw.drain(cfg.claim_batch)
    return {"tasks": done, "seconds": round(seconds, 4), "rate": per_second(done, seconds)}


async def _pgqueuer(db: BenchDatabase, cfg: Config) -> dict:
    first = db.workdir / "first-pgqueuer"
    env = {marks.FIRST_START_ENV: str(first), **_handler_env(cfg)}
    async with pgq_peer.PgqClient.installed(db.raw) as client:
        await client.insert(cfg.tasks, cfg.enqueue_batch)
        server = await _server(db)
        cpu_before = server_cpu.cpu_seconds(server)
        children = [
            pgq_peer.worker(db.raw, db.workdir, "--drain", batch_size=cfg.concurrency, env=env)
            for _ in range(cfg.processes)
        ]
        exits = []
        for child in children:
            await child.wait(drain_timeout(cfg.tasks))
            exits.append((child, child.check("pgqueuer worker")))
        db_cpu = _spent(cpu_before, server_cpu.cpu_seconds(server))
        left = await client.queued()
    if left:
        raise RuntimeError(f"{left:,} of {cfg.tasks:,} jobs left in the queue")
    return figures(exits, cfg.tasks, first, db_cpu)
