"""``python -m benchmarks``: pick scenarios and backends, run them, print tables or JSON."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import click

from benchmarks import pgq_peer, processes
from benchmarks.config import BACKENDS, DEFAULT_POSTGRES_URL, Config
from benchmarks.databases import plain_dsn
from benchmarks.processes import byte_compile
from benchmarks.report import Result, document, render, say
from benchmarks.scenarios import ALL
from benchmarks.scenarios.context import Context
from taskstore.logs import configure_logging
from taskstore.settings import safe_url


async def run_all(cfg: Config, scenarios: list[str], backends: list[str]) -> list[Result]:
    """Every scenario on every backend, each on a fresh database."""
    results = []
    with tempfile.TemporaryDirectory(prefix="taskstore-bench-") as scratch:
        ctx = Context(cfg, Path(scratch))
        try:
            for name in scenarios:
                for backend in backends:
                    say(f"{name} on {backend} ...")
                    started = time.perf_counter()
                    results.append(await ALL[name].run(ctx, backend))
                    say(f"{name} on {backend}: {time.perf_counter() - started:.1f} s")
        finally:
            processes.kill_all()
    return results


async def check_postgres(url: str) -> str | None:
    """Why the PostgreSQL admin URL is unusable, or None."""
    try:
        conn = await asyncpg.connect(plain_dsn(url), timeout=10)
    except Exception as exc:
        return f"cannot connect to PostgreSQL at {safe_url(url)}: {exc}"
    await conn.close()
    return None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(list(ALL)),
    help="Scenario to run. Repeatable. Default: all but churn (half an hour: name it).",
)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=click.Choice(list(BACKENDS)),
    help="Database to run on. Repeatable. Default: both.",
)
@click.option("--quick", is_flag=True, help="Small sizes (what CI runs); well under 2 minutes.")
@click.option(
    "--tasks",
    type=click.IntRange(1),
    default=None,
    help="Tasks to drain and to enqueue in batches [default: 20,000; quick: 2,000].",
)
@click.option(
    "--seconds",
    type=click.FloatRange(0.5),
    default=None,
    help="Length of the sustained run [default: 10; quick: 3].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Worker concurrency (pgqueuer: its --batch-size).",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="drain: worker processes per queue (taskstore and pgqueuer alike), started together.",
)
@click.option(
    "--handler-ms",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="drain: each no-op handler sleeps this long (taskstore and pgqueuer alike).",
)
@click.option(
    "--pairs",
    type=click.IntRange(1, 50),
    default=1,
    show_default=True,
    help="flow: drain the queue unlimited and limited this many times, alternating; "
    "the ratio reported is the median of the pairs'.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Producer rate of the sustained run in tasks/s (0: as fast as it can).",
)
@click.option(
    "--minutes",
    type=click.FloatRange(1),
    default=None,
    help="Length of the churn run [default: 30; quick: 2]; its producer runs at --rate "
    "(default there: 500 tasks/s).",
)
@click.option(
    "--postgres-url",
    default=DEFAULT_POSTGRES_URL,
    show_default=True,
    metavar="URL",
    help="Admin URL; each scenario creates and drops its own bench_* database.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def main(
    scenarios: tuple[str, ...],
    backends: tuple[str, ...],
    quick: bool,
    tasks: int | None,
    seconds: float | None,
    concurrency: int,
    processes: int,
    handler_ms: float,
    pairs: int,
    rate: float,
    minutes: float | None,
    postgres_url: str,
    as_json: bool,
) -> None:
    """Measure taskstore on SQLite and PostgreSQL, beside pgqueuer and raw SQL."""
    configure_logging("WARNING")  # in-process library logs go to stderr, never stdout
    cfg = Config.for_run(
        quick=quick,
        postgres_url=postgres_url,
        tasks=tasks,
        seconds=seconds,
        concurrency=concurrency,
        producer_rate=rate,
        processes=processes,
        minutes=minutes,
        handler_ms=handler_ms,
        pairs=pairs,
    )
    chosen = list(dict.fromkeys(scenarios)) or [
        name for name, module in ALL.items() if not getattr(module, "EXPLICIT", False)
    ]
    on = [b for b in BACKENDS if b in backends] if backends else list(BACKENDS)
    if "postgres" in on:
        if problem := asyncio.run(check_postgres(postgres_url)):
            raise click.ClickException(problem + " (or run with --backend sqlite)")
        if not pgq_peer.available():
            say("pgqueuer: " + pgq_peer.NOT_INSTALLED)
    byte_compile()  # start-up figures without compiling the checkout
    results = asyncio.run(run_all(cfg, chosen, on))
    titles = {name: ALL[name].title(cfg) for name in chosen}
    click.echo(document(cfg.public(), results) if as_json else render(results, titles))
    if any(r.errors for r in results):
        sys.exit(1)
