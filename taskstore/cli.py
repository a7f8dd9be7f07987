"""The `taskstore` command: migrate, enqueue, and inspect / retry / cancel / purge tasks.

Every command honours ``--database-url`` (or ``TASKSTORE_DATABASE_URL``); listings have
``--json`` (one JSON document on stdout, nothing else). Errors are one line on stderr:
exit code 2 for bad input or usage, 1 for runtime failures. Durations are typed the same
everywhere: ``30`` (seconds), ``30s``, ``5m``, ``1h``, ``7d``.

The commands live in `taskstore.cli_*` modules that import SQLAlchemy, the store, alembic
or the dashboard only inside the command that needs them: ``taskstore --help`` and a
quick ``taskstore enqueue`` do not pay for what they do not use.
"""

from __future__ import annotations

import click

from taskstore import cli_doctor, cli_queues, cli_status, cli_tasks, cli_workflows
from taskstore.cli_common import Command, Group, database_url_option
from taskstore.cli_enqueue import enqueue
from taskstore.dashboard.command import cli_command as dashboard_command


@click.group(cls=Group, name="taskstore", context_settings={"help_option_names": ["-h", "--help"]})
@database_url_option
def main(url: str | None) -> None:
    """taskstore: an async task queue whose queue is a database table."""


@main.command(cls=Command)
@database_url_option
def migrate(url: str | None) -> None:
    """Create or upgrade the schema (alembic upgrade head)."""
    from taskstore.cli_common import run_guarded
    from taskstore.cli_store import command_settings
    from taskstore.schema import HEAD, REVISIONS, current_revisions
    from taskstore.store import TaskStore

    settings = command_settings(url)

    async def go() -> frozenset[str]:
        store = TaskStore(settings)
        try:
            await store.migrate()
            return await current_revisions(store.engine, store.backend.read_options)
        finally:
            await store.close()

    unknown = sorted(run_guarded(go) - set(REVISIONS))
    click.echo(f"{settings.safe_url} is at revision {HEAD}")
    if unknown:
        click.echo(
            f"note: the database also holds revision {', '.join(unknown)}, which this taskstore"
            " does not know: a newer taskstore's, or your application's own (migrate those"
            " with your application's)",
            err=True,
        )


for command in [
    enqueue,
    *cli_status.COMMANDS,
    *cli_tasks.COMMANDS,
    *cli_queues.COMMANDS,
    *cli_workflows.COMMANDS,
    *cli_doctor.COMMANDS,
    dashboard_command,
]:
    main.add_command(command)

if __name__ == "__main__":
    main()
