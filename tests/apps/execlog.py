"""Execution log shared by the test apps (it registers no task of its own).

Every execution appends "task_id attempt pid" to the file named by TEST_EXEC_LOG, one
line per execution, so tests count executions across processes.
"""

from __future__ import annotations

import os

from worker import TaskContext


def log_execution(ctx: TaskContext) -> None:
    path = os.environ.get("TEST_EXEC_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{ctx.task_id} {ctx.attempt} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
