"""``manage.py taskstore_worker [taskstore-worker options]``: run Django tasks.

The worker serves the queues of the backend's QUEUES (or those given with --queue) and
runs every Django task claimed from them: those of each installed app's ``tasks`` module
are loaded at start, any other is found by its module path when first claimed; beside
them, the taskstore ``@task`` handlers of any ``--app``. Django's own options
(--settings, --pythonpath, -v, --skip-checks, ...) are Django's; the rest are the worker's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import click
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskstore.cli_common import Command as ClickCommand
from taskstore.cli_common import fail
from worker.cli import processes_option, run_worker, supervise_workers, worker_options


class Command(BaseCommand):
    help = "Run Django tasks from the taskstore database (options: see --help)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, add_help=False, **kwargs)

        def parse_args(args: Any = None, namespace: Any = None) -> argparse.Namespace:
            # Django's options are Django's; everything else, in order, is the worker's.
            known, rest = parser.parse_known_args(args, namespace)
            known.worker_args = rest
            return known

        parser.parse_args = parse_args
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        # A worker started as a new program (by --processes) runs this command again.
        restart = [sys.executable, sys.argv[0], "taskstore_worker", "--skip-checks"]
        for name in ("settings", "pythonpath"):
            if options.get(name):
                restart += [f"--{name}", options[name]]
        try:
            django_worker.main(
                args=list(options["worker_args"]),
                prog_name="taskstore_worker",
                obj={"args": list(options["worker_args"]), "program": restart},
            )
        except SystemExit as done:
            # click ends every run with sys.exit; a Django command that succeeded returns,
            # so ``call_command("taskstore_worker", "--burst")`` works in tests and scripts,
            # and one that failed raises CommandError there, as Django's own commands do.
            if done.code in (0, None):
                return
            if self._called_from_command_line:  # manage.py: the line is said, exit with it
                raise
            raise CommandError(
                f"taskstore_worker stopped with exit code {done.code} (its error is above)",
                returncode=done.code if isinstance(done.code, int) else 1,
            ) from None


@click.command(
    name="taskstore-worker",
    cls=ClickCommand,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--backend",
    "alias",
    default="default",
    show_default=True,
    metavar="ALIAS",
    help="The TASKS backend whose tasks to run (its QUEUES are served by default).",
)
@click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="MODULE",
    help="Also serve the taskstore @task handlers of this module. Repeatable.",
)
@processes_option
@worker_options
@click.pass_context
def django_worker(
    context: click.Context, url: str | None, alias: str, apps: tuple[str, ...], **options: Any
) -> None:
    """Run Django tasks (and taskstore @task handlers) from the taskstore database."""
    from django.tasks import task_backends
    from django.tasks.exceptions import InvalidTaskBackend

    from taskstore.contrib.django.backend import TaskstoreBackend
    from taskstore.contrib.django.handlers import discover, resolve
    from worker.registry import registry

    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        from django.conf import settings

        known = ", ".join(sorted(settings.TASKS)) or "none"
        fail(f"--backend {alias}: TASKS has no such backend (it has: {known})", 2)
    if not isinstance(backend, TaskstoreBackend):
        fail(f"TASKS[{alias!r}] is {type(backend).__name__}, not the taskstore backend", 2)
    for problem in backend.check():  # also under --skip-checks: the worker needs them right
        if problem.is_serious():  # (a warning Django's own check run has printed)
            fail(f"TASKS[{alias!r}]: {problem.msg}", 2)
    try:
        url = url or backend.database_url
    except ImproperlyConfigured as exc:
        fail(str(exc), 2)
    if resolve not in registry.resolvers:
        registry.resolvers.append(resolve)
    try:
        discover(registry, alias)
    except Exception as exc:  # an app's tasks module fails to import
        fail(f"cannot load the Django tasks: {type(exc).__name__}: {exc}", 2)
    queues = tuple(sorted(backend.queues)) or ("default",)
    processes = options.pop("processes")
    if processes != 1:
        _supervise(context, processes, url, options, apps)
    run_worker(url, apps, default_queues=queues, **options)


def _supervise(
    context: click.Context,
    processes: int,
    url: str,
    options: dict[str, Any],
    apps: tuple[str, ...],
) -> None:
    """``--processes N``: workers forked from a zygote of this process (Django set up, its
    tasks loaded); as new programs, this command again."""
    from django.db import connections

    connections.close_all()  # no child may share a connection opened here
    started = context.obj or {}

    def run_one(args: list[str]) -> None:
        django_worker.main(args=args, prog_name="taskstore_worker")

    supervise_workers(
        started.get("args", []),
        processes,
        url,
        options,
        run_worker=run_one,
        program=started.get("program"),
        apps=apps,
    )
