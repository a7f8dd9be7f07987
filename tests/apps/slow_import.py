"""A worker app that takes a second to import (a big model, a slow package), and says when
its import began in the file named by TEST_IMPORT_MARKER."""

from __future__ import annotations

import os
import time
from pathlib import Path

from worker import TaskContext, task

Path(os.environ["TEST_IMPORT_MARKER"]).write_text("importing")
time.sleep(1.0)


@task(name="slow_import.noop")
async def noop(ctx: TaskContext) -> None:
    return None
