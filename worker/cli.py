"""The `taskstore-worker` command: load app modules, then claim and run their tasks."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from taskstore.cli_common import Command, Duration, database_url_option, fail, run_guarded
from taskstore.errors import InvalidInput, TaskStoreError
from worker.apps import find_app, load_app

if TYPE_CHECKING:
    from taskstore.store import TaskStore
    from worker.metrics import NoMetrics
    from worker.registry import Registry
    from worker.runner import Worker, WorkerConfig


def parse_queues(specs: tuple[str, ...], known: Registry) -> dict[str, int | None]:
    """``media:4`` -> {"media": 4}; with no --queue, every queue the handlers declare."""
    from taskstore.validation import check_queue

    if not specs:
        return dict.fromkeys(sorted(known.queues()) or ["default"])
    queues: dict[str, int | None] = {}
    for spec in specs:
        name, _, limit = spec.partition(":")
        check_queue(name)
        if limit and (not limit.isdigit() or int(limit) < 1):
            raise InvalidInput(
                f"invalid --queue {spec!r}: the limit after ':' must be a whole number >= 1"
            )
        queues[name] = int(limit) if limit else None
    return queues


async def serve(url: str | None, config: WorkerConfig, metrics: NoMetrics | None = None) -> Worker:
    """Open the store (migrating it if allowed and needed), run the worker until stopped."""
    import anyio

    from taskstore.settings import Settings
    from taskstore.store import TaskStore
    from worker.registry import registry
    from worker.runner import Worker

    settings = Settings.from_env(url)
    # Each running handler may hold a session; leave room for the fetch/ack/heartbeat loops.
    settings = dataclasses.replace(
        settings, pool_size=max(settings.pool_size, config.concurrency + 4)
    )
    store = TaskStore(settings)
    try:
        if settings.auto_migrate:
            await _migrate(store)
        await store.open()
        worker = Worker(store, registry, config, metrics=metrics)
        if _early_stop:
            worker.stop()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_on_signals, worker)
                await worker.run()
                group.cancel_scope.cancel()
        except BaseExceptionGroup as group_error:
            raise _alone(group_error) from None
        if worker.state.failure is not None:
            raise TaskStoreError(worker.state.failure)
        return worker
    finally:
        await store.close()


async def _migrate(store: TaskStore) -> None:
    """Bring the schema up to date; a new SQLite file is said with its path, because a
    mistyped one would otherwise leave a worker idling on an empty queue unseen."""
    from taskstore.logs import get_logger
    from taskstore.settings import sqlite_file

    path = sqlite_file(store.settings)
    new = path is not None and _made_first(path)
    await store.migrate(if_needed=True)
    if new:
        get_logger("taskstore.worker").info("created a new database", path=str(path.resolve()))


def _made_first(path: Path) -> bool:
    """Create the file empty (SQLite's new database), and its folder, unless it is there:
    True for the one of several workers starting at once (`--processes`) that made it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except OSError:  # there already, or no folder to be had: SQLite will say which
        return False
    return True


def _alone(group: BaseExceptionGroup) -> BaseException:
    """The one error a task group raised, unwrapped (a group of several stays one), so
    that it reaches the user as its own one line, not as "unhandled errors"."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


_early_stop: list[int] = []


def _stop_early(signum: int, _frame: object) -> None:
    _early_stop.append(signum)


async def _on_signals(worker: Worker) -> None:
    """SIGTERM/SIGINT (or SIGHUP: the terminal closed): stop gracefully. A second one, or
    `CUT_OFF`: cut off running handlers now; but under a supervisor a repeated stop is
    the same stop (see `worker.supervised`)."""
    import anyio

    from worker.supervised import CUT_OFF, STOPS

    repeat_cuts_off = worker.config.supervisor_pid is None
    with anyio.open_signal_receiver(*STOPS, CUT_OFF) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == CUT_OFF or (worker.stopping and repeat_cuts_off):
                worker.log.warning("cutting off running tasks", signal=name)
                worker.cut_off()
            elif not worker.stopping:
                worker.log.info("stopping: finishing running tasks", signal=name)
                worker.stop()


def prepare(
    apps: tuple[str, ...],
    queues: tuple[str, ...],
    *,
    default_queues: tuple[str, ...] = (),
    **options: float | bool,
) -> WorkerConfig:
    """Load the apps and build the worker's configuration (bad input: `InvalidInput`).

    Without --queue, `default_queues` are served besides the handlers' own; with them no
    handler need be registered up front (a resolver on the registry finds handlers as
    tasks are claimed: ``manage.py taskstore_worker``).
    """
    from worker.registry import registry
    from worker.runner import WorkerConfig

    for spec in apps:
        load_app(spec)
    if not registry.tasks and not default_queues:
        raise InvalidInput(f"no @task handlers found in {', '.join(apps)}")
    if queues or not default_queues:
        served = parse_queues(queues, registry)
    else:
        served = dict.fromkeys(sorted(registry.queues().union(default_queues)))
    return WorkerConfig(queues=served, **options)  # type: ignore[arg-type]


_WORKER_OPTIONS = (
    click.option(
        "--queue",
        "queues",
        multiple=True,
        metavar="Q[:N]",
        help="Queue to serve, with an optional concurrency limit. Repeatable. "
        "Default: every queue the handlers declare.",
    ),
    click.option(
        "--concurrency",
        default=10,
        show_default=True,
        type=click.IntRange(1, 10_000),
        help="Handlers running at once, over all queues.",
    ),
    click.option("--burst", is_flag=True, help="Drain what is claimable now, then exit 0."),
    click.option(
        "--lease-seconds",
        default=30.0,
        show_default=True,
        type=Duration(minimum=1.0),
        metavar="DURATION",
        help="Lease on claimed tasks (30, 30s, 2m); renewed by heartbeats every third of it.",
    ),
    click.option(
        "--shutdown-timeout",
        default=30.0,
        show_default=True,
        type=Duration(),
        metavar="DURATION",
        help="Grace period for running tasks on SIGTERM (30, 30s, 2m).",
    ),
    click.option(
        "--poll-max",
        "poll_max_seconds",
        default=None,
        type=Duration(minimum=0.05),
        metavar="DURATION",
        help="Longest pause between claims of an idle worker. Default: 2s on PostgreSQL "
        "(notifications wake it at once), 1s on SQLite.",
    ),
    click.option(
        "--metrics-port",
        default=None,
        type=click.IntRange(1, 65535),
        metavar="PORT",
        help="Serve Prometheus metrics on this port (needs the metrics extra).",
    ),
    click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address the metrics endpoint listens on.",
    ),
    click.option(
        "--log-level",
        default="INFO",
        show_default=True,
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    ),
    database_url_option,
    # The read end of a pipe from `--processes`' supervisor, which holds the LISTEN.
    click.option("--wake-fd", type=int, default=None, hidden=True),
    # The supervisor that started this worker: the worker stops once it has ended.
    click.option("--supervisor-pid", type=int, default=None, hidden=True),
)


def worker_options(fn: Callable[..., None]) -> Callable[..., None]:
    """Every `taskstore-worker` option but ``--app``, for commands that run a worker in
    another setting (``manage.py taskstore_worker``); they call `run_worker`."""
    for option in reversed(_WORKER_OPTIONS):
        fn = option(fn)
    return fn


def run_worker(
    url: str | None,
    apps: tuple[str, ...],
    queues: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
    *,
    default_queues: tuple[str, ...] = (),
    **options: float | bool,
) -> None:
    """Load the apps, then claim and run tasks until stopped (errors: one line, exit code)."""
    from worker.supervised import CUT_OFF

    # A SIGTERM while the apps import and the store opens (a deploy stopping a worker that
    # is still starting) is a graceful stop once the worker exists, not a kill.
    signal.signal(signal.SIGTERM, _stop_early)
    signal.signal(signal.SIGHUP, _stop_early)  # a closed terminal: not a kill either
    signal.signal(CUT_OFF, _stop_early)  # nothing runs yet: a stop, not a core dump
    from taskstore.logs import configure_logging

    configure_logging(log_level)
    metrics: NoMetrics | None = None
    try:
        config = prepare(apps, queues, default_queues=default_queues, **options)
        if metrics_port is not None:
            from worker.metrics import PrometheusMetrics

            metrics = PrometheusMetrics()
            metrics.serve(metrics_port, metrics_host)
    except TaskStoreError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:  # the metrics port is taken: so would it be at every restart
        fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror}", 2)
    run_guarded(lambda: serve(url, config, metrics))
    _exit_past_threads()


def _exit_past_threads() -> None:
    """Exit now even if sync handlers' threads still run (cut off at a stop): the README
    promises the process ends after the grace period, and their tasks are handed back
    to start again only after it has (see `worker.completer.THREAD_EXIT_SECONDS`)."""
    from worker.execution import threads_running

    if threads_running():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


processes_option = click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(0, 1024),
    metavar="N",
    help="Run N worker processes under one supervisor that restarts any that dies "
    "(0: one per CPU core; 1: this process alone, unsupervised). With --metrics-port P, "
    "process i serves on P + i.",
)


@click.command(
    name="taskstore-worker",
    cls=Command,
    context_settings={"help_option_names": ["-h", "--help"]},
    extra_hint="an app goes in --app MODULE, a queue in --queue Q",
)
@click.option(
    "--app",
    "apps",
    multiple=True,
    required=True,
    metavar="MODULE",
    help="Module (dotted path or .py file) whose @task handlers to serve. Repeatable. "
    "A file is imported by its package's name (the folders up to the package root).",
)
@processes_option
@worker_options
def main(url: str | None, apps: tuple[str, ...], processes: int, **options: Any) -> None:
    """Run registered task handlers: claim, execute, complete."""
    if processes != 1:
        supervise_workers(sys.argv[1:], processes, url, options, run_worker=_run_options, apps=apps)
    run_worker(url, apps, **options)


def supervise_workers(
    args: list[str],
    processes: int,
    url: str | None,
    options: dict[str, Any],
    *,
    run_worker: Callable[[list[str]], None],
    program: Sequence[str] | None = None,
    apps: Sequence[str] = (),
) -> NoReturn:
    """`--processes`: run that many workers with `args` (less --processes) under one
    supervisor, then exit with its code. A new program is `program` and the options.
    An app of `apps` that is not there is said once, here, not by every worker."""
    from taskstore.logs import configure_logging
    from worker.supervisor import WORKER_PROGRAM, cpu_count, supervise

    try:
        for spec in apps:
            find_app(spec)
    except InvalidInput as exc:
        fail(str(exc), 2)
    configure_logging(str(options["log_level"]))
    count = processes or cpu_count()
    port = options.get("metrics_port")
    if port is not None and port + count - 1 > 65535:
        fail(
            f"--metrics-port {port} with {count} processes needs ports up to "
            f"{port + count - 1}; the last port is 65535",
            2,
        )
    code = supervise(
        args, count, port, url=url, run_worker=run_worker, program=program or WORKER_PROGRAM
    )
    # Every worker has ended and been reaped: unloading the worker's modules from this
    # process would only make its exit (a burst run's end) a tenth of a second later.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_options(options: list[str]) -> None:
    """A supervised worker's life, forked from its supervisor's zygote."""
    main.main(args=options, prog_name="taskstore-worker")


if __name__ == "__main__":
    main()
