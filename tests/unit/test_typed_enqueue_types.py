"""A type checker (mypy) checks `transcribe.enqueue(store, ...)` against the handler's own
parameters: right calls pass, and each wrong one is reported on its own line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PRODUCER = """
from taskstore import TaskStore
from taskstore.sync import SyncTaskStore
from worker import TaskContext, task


@task(queue="media")
async def transcribe(ctx: TaskContext, video_id: str, lang: str | None = None) -> dict:
    return {}


async def produce(store: TaskStore, sync_store: SyncTaskStore) -> None:
    one: int = await transcribe.enqueue(store, video_id="v1")
    direct: int = transcribe.enqueue(sync_store, video_id="v1", lang="en")
    later: int = await transcribe.using(delay=30, dedup_key="v1").enqueue(store, video_id="v2")
    many: list[int] = await transcribe.enqueue_many(store, [{"video_id": "a"}])
    synced: list[int] = transcribe.enqueue_many(sync_store, [{"video_id": "a"}])
    result: dict = await transcribe(None, "v1")
    await transcribe.enqueue(store, video_id=1)  # wrong: type
    await transcribe.enqueue(store, vid="v1")  # wrong: unknown name
    await transcribe.enqueue(store)  # wrong: missing argument
    transcribe.using(priority="high")  # wrong: option type
    not_awaited: int = transcribe.enqueue(store, video_id="v1")  # wrong: async store


from taskstore import task as misplaced  # wrong: the decorator is worker's
from worker import middleware, Snooze  # every public name is known to the checker
"""


def test_type_checkers_check_enqueue_arguments_against_the_handler(tmp_path: Path) -> None:
    source = tmp_path / "producer_sample.py"
    source.write_text(PRODUCER)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--ignore-missing-imports",
            "--follow-imports=silent",
            "--no-error-summary",
            str(source),
        ],
        cwd=tmp_path,  # as a user's project: taskstore found installed, not beside it
        capture_output=True,
        text=True,
        timeout=600,
    )
    reported = {int(m) for m in re.findall(r"producer_sample\.py:(\d+): error", result.stdout)}
    lines = PRODUCER.splitlines()
    wrong = {n for n, line in enumerate(lines, start=1) if "# wrong" in line}
    assert wrong and reported == wrong, result.stdout + result.stderr
