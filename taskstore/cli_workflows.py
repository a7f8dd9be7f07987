"""`taskstore wait`: block until a task has finished, for scripts and pipelines.

Exit codes: 0 completed, 1 failed or cancelled, 3 still unfinished after ``--timeout``
(an unknown task is 2, as for `show`; an unreachable database 1). A timeout says where
the task stands: running, scheduled, in a paused queue, in a queue no live worker
serves, or waiting for a dependency (and then where the first one it waits for stands).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import click

from taskstore.cli_common import Command, Duration, database_url_option, emit_json, fail
from taskstore.cli_store import with_store
from taskstore.states import TaskStatus

if TYPE_CHECKING:
    from taskstore.records import TaskInfo
    from taskstore.store import TaskStore

TIMED_OUT = 3


@click.command(cls=Command)
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
            return None, {"standing": await standing(store, task_id)}
        links = (await task_links(store, info)).to_json() if as_json else {}
        return info, {**info.to_json(), **links}  # as `show --json` prints it

    info, doc = with_store(url, go)
    if info is None:
        fail(f"task {task_id} did not finish within {timeout:g}s: {doc['standing']}", TIMED_OUT)
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"task {task_id} {info.status.value}")
        if info.error:
            click.echo(f"{info.error.get('type')}: {info.error.get('message')}")
    raise SystemExit(0 if info.status is TaskStatus.COMPLETED else 1)


#: how far `standing` follows a chain of waiting tasks to the one holding it up
CHAIN_FOLLOWED = 20


async def standing(store: TaskStore, task_id: int) -> str:
    """Where an unfinished task stands, for a timeout's message: "it is running (...)",
    or for a waiting one "it waits for task 4, 5; task 4 is ready, but ..."."""
    info = await store.require(task_id)
    pending = await _pending(store, task_id) if info.status is TaskStatus.WAITING else []
    if not pending:
        return f"it {await _state(store, info)}"
    head = pending[0]
    for _ in range(CHAIN_FOLLOWED):
        further = await _pending(store, head.id) if head.status is TaskStatus.WAITING else []
        if not further:
            break
        head = further[0]
    ids = ", ".join(str(t.id) for t in pending)
    return f"it waits for task {ids}; task {head.id} {await _state(store, head)}"


async def _pending(store: TaskStore, task_id: int) -> list[TaskInfo]:
    """The task's dependencies that have not completed, by id."""
    async with store.reading() as conn:
        ids = await store.tasks.dependencies(conn, task_id)
        found = [await store.tasks.get(conn, d) for d in ids]
    return [t for t in found if t is not None and t.status is not TaskStatus.COMPLETED]


async def _state(store: TaskStore, info: TaskInfo) -> str:
    """What holds up one task that is not waiting for another ("is ready, but ...")."""
    if info.status is TaskStatus.RUNNING:
        return f"is running (attempt {info.attempts}, on worker {info.worker_id})"
    if info.status not in (TaskStatus.CREATED, TaskStatus.NOT_FINISHED):
        return f"is {info.status.value}"
    if info.run_at > dt.datetime.now(dt.UTC):
        return f"is scheduled for {info.run_at.isoformat(timespec='seconds')}"
    if any(q.name == info.queue and q.paused for q in await store.queues()):
        return f"is ready, but its queue {info.queue} is paused"
    for u in await store.unserved():
        if (u.queue, u.name) == (info.queue, info.name):
            return f"is ready in queue {info.queue}, but {u.reason}"
    return "is ready, not yet claimed"


COMMANDS = [wait]
