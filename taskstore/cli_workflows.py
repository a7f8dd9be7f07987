"""`taskstore wait`: block until a task has finished, for scripts and pipelines.

Exit codes: 0 completed, 1 failed or cancelled, 3 still unfinished after ``--timeout``
(an unknown task is 2, as for `show`; an unreachable database 1). A timeout says where
the task stands: running, scheduled, in a paused queue, in a queue no live worker
serves, or waiting for a dependency (and then where the first one it waits for stands).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from taskstore.cli_common import (
    ONE_TASK,
    Command,
    Duration,
    database_url_option,
    emit_json,
    fail,
)
from taskstore.cli_store import with_store
from taskstore.states import TaskStatus

if TYPE_CHECKING:
    from taskstore.records import TaskInfo
    from taskstore.store import TaskStore

TIMED_OUT = 3


@click.command(cls=Command, extra_hint=ONE_TASK)
@click.argument("task_id", type=int)
@click.option(
    "--timeout",
    type=Duration(),
    default=None,
    help="Give up after this long (e.g. 30, 90s, 5m) with exit code 3. Default: wait on.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the task as `show --json` does.")
@database_url_option
def wait(url: str | None, task_id: int, timeout: float | None, as_json: bool) -> None:
    """Wait until a task has finished: exit 0 if it completed, 1 if it failed or was
    cancelled, 3 on timeout."""

    async def go(store: TaskStore) -> tuple[TaskInfo | None, dict[str, Any]]:
        from taskstore.task_detail import task_links

        try:
            info = await store.wait(task_id, timeout=timeout)
        except TimeoutError:
            return None, {"standing": await _standing(store, task_id)}
        links = (await task_links(store, info)).to_json() if as_json else {}
        return info, {**info.to_json(), **links}  # as `show --json` prints it

    info, doc = with_store(url, go)
    if info is None:
        fail(f"task {task_id} did not finish within {timeout:g}s{doc['standing']}", TIMED_OUT)
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"task {task_id} {info.status.value}")
        # A completed task keeps the error of an earlier attempt: history, not its outcome.
        if info.error and info.status is not TaskStatus.COMPLETED:
            from taskstore.formatting import error_summary

            click.echo(error_summary(info.error.get("type"), info.error.get("message")))
    raise SystemExit(0 if info.status is TaskStatus.COMPLETED else 1)


async def _standing(store: TaskStore, task_id: int) -> str:
    """The tail of a timeout's message, ': it waits for task 4; ...', or nothing where
    that cannot be read: the timeout is the answer, and a failure to say more must not
    change it."""
    from taskstore.standing import standing

    try:
        return ": " + await standing(store, await store.require(task_id))
    except Exception:
        return ""


COMMANDS = [wait]
