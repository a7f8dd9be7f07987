"""A second app with its own handler, for workers of two apps sharing one queue."""

from __future__ import annotations

from tests.apps.execlog import log_execution
from worker import TaskContext, task


@task(name="other.echo")
async def echo(ctx: TaskContext, word: str) -> str:
    log_execution(ctx)
    return word
