"""The `taskstore-worker` command: load app modules, then claim and run their tasks."""

from __future__ import annotations

import dataclasses
import importlib
import signal
import sys
from pathlib import Path

import anyio
import click

from taskstore.cli import fail, run_guarded
from taskstore.errors import InvalidInput, TaskStoreError
from taskstore.logs import configure_logging
from taskstore.settings import Settings
from taskstore.store import TaskStore
from taskstore.validation import check_queue
from worker.metrics import NoMetrics, PrometheusMetrics
from worker.registry import Registry, registry
from worker.runner import Worker, WorkerConfig


def _module_for_file(spec: str) -> str:
    """Import name for an app given as a file path; its folder root goes on sys.path."""
    path = Path(spec)
    if not path.is_file():
        raise InvalidInput(f"app file {spec} does not exist")
    resolved = path.resolve()
    try:
        parts = resolved.relative_to(Path.cwd()).with_suffix("").parts
        root = Path.cwd()
    except ValueError:
        parts, root = (resolved.stem,), resolved.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return ".".join(parts)


def load_app(spec: str) -> None:
    """Import an app module (dotted path or .py file) so its @task handlers register."""
    if spec.endswith(".py") or "/" in spec:
        module = _module_for_file(spec)
    else:
        module = spec
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # like `python -m`: the cwd is importable
    try:
        importlib.import_module(module)
    except TaskStoreError:
        raise
    except ModuleNotFoundError as exc:
        raise InvalidInput(f"cannot import app {spec!r}: {exc}") from None
    except Exception as exc:
        raise InvalidInput(f"app {spec!r} failed to import: {type(exc).__name__}: {exc}") from None


def parse_queues(specs: tuple[str, ...], known: Registry) -> dict[str, int | None]:
    """``media:4`` -> {"media": 4}; with no --queue, every queue the handlers declare."""
    if not specs:
        return dict.fromkeys(sorted(known.queues()) or ["default"])
    queues: dict[str, int | None] = {}
    for spec in specs:
        name, _, limit = spec.partition(":")
        check_queue(name)
        if limit and (not limit.isdigit() or int(limit) < 1):
            raise InvalidInput(f"invalid --queue {spec!r}: the limit after ':' must be >= 1")
        queues[name] = int(limit) if limit else None
    return queues


async def serve(url: str | None, config: WorkerConfig, metrics: NoMetrics | None = None) -> Worker:
    settings = Settings.from_env(url)
    # Each running handler may hold a session; leave room for the fetch/ack/heartbeat loops.
    settings = dataclasses.replace(
        settings, pool_size=max(settings.pool_size, config.concurrency + 4)
    )
    store = TaskStore(settings)
    try:
        if settings.auto_migrate:
            await store.migrate(if_needed=True)
        await store.open()
        worker = Worker(store, registry, config, metrics=metrics)
        async with anyio.create_task_group() as group:
            group.start_soon(_on_signals, worker)
            await worker.run()
            group.cancel_scope.cancel()
        return worker
    finally:
        await store.close()


async def _on_signals(worker: Worker) -> None:
    """First SIGTERM/SIGINT: stop gracefully. Second: cut off running handlers now."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if worker.stopping:
                worker.log.warning("second signal: cutting off running tasks")
                worker.cut_off()
            else:
                worker.log.info(
                    "stopping: finishing running tasks", signal=signal.Signals(signum).name
                )
                worker.stop()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--app",
    "apps",
    multiple=True,
    required=True,
    metavar="MODULE",
    help="Module (dotted path or .py file) whose @task handlers to serve. Repeatable.",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="Q[:N]",
    help="Queue to serve, with an optional concurrency limit. Repeatable. "
    "Default: every queue the handlers declare.",
)
@click.option(
    "--concurrency",
    default=10,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Handlers running at once, over all queues.",
)
@click.option("--burst", is_flag=True, help="Drain what is claimable now, then exit 0.")
@click.option(
    "--lease-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1.0),
    help="Lease on claimed tasks; renewed by heartbeats every third of it.",
)
@click.option(
    "--shutdown-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Grace period for running tasks on SIGTERM.",
)
@click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="Database URL (default: TASKSTORE_DATABASE_URL, then the settings chain).",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on this port (needs the metrics extra).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics endpoint listens on.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def main(
    apps: tuple[str, ...],
    queues: tuple[str, ...],
    concurrency: int,
    burst: bool,
    lease_seconds: float,
    shutdown_timeout: float,
    database_url: str | None,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Run registered task handlers: claim, execute, complete."""
    configure_logging(log_level)
    metrics: NoMetrics | None = None
    try:
        for spec in apps:
            load_app(spec)
        if not registry.tasks:
            raise InvalidInput(f"no @task handlers found in {', '.join(apps)}")
        config = WorkerConfig(
            queues=parse_queues(queues, registry),
            concurrency=concurrency,
            lease_seconds=lease_seconds,
            shutdown_timeout=shutdown_timeout,
            burst=burst,
        )
        if metrics_port is not None:
            metrics = PrometheusMetrics()
            metrics.serve(metrics_port, metrics_host)
    except TaskStoreError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:  # the metrics port is taken
        fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror}", 1)
    run_guarded(lambda: serve(database_url, config, metrics))


if __name__ == "__main__":
    main()
