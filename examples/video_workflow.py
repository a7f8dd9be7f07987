"""Example workflow: probe a video, then transcribe and caption it in parallel, then index
it once both are done, each step reading what the steps before it returned.

The whole graph goes in with one `enqueue_many` call: keys name tasks of the batch, and
``depends_on`` lists the keys (or ids of older tasks) a task waits for. Nothing is
downloaded: each step derives its output from the URL, so the example runs anywhere.

Run it (embedded SQLite, no set-up):  python -m examples.video_workflow
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from taskstore import TaskStore
from worker import TaskContext, task


@task(queue="media")
async def probe(ctx: TaskContext, url: str) -> dict:
    return {"url": url, "seconds": 60 + len(url) % 60}


@task(queue="media")
async def transcribe(ctx: TaskContext) -> dict:
    [video] = (await ctx.dependency_results()).values()
    return {"url": video["url"], "words": video["seconds"] * 2}


@task(queue="media")
async def caption(ctx: TaskContext, language: str) -> dict:
    [video] = (await ctx.dependency_results()).values()
    return {"url": video["url"], "language": language, "lines": video["seconds"] // 4}


@task(queue="media")
async def index(ctx: TaskContext) -> dict:
    found = await ctx.dependency_results()  # {task id: result} of transcribe and caption
    words = sum(r.get("words", 0) for r in found.values())
    lines = sum(r.get("lines", 0) for r in found.values())
    return {"indexed": next(iter(found.values()))["url"], "words": words, "caption_lines": lines}


def pipeline(url: str) -> list[dict]:
    """One video's workflow, as `enqueue_many` items."""
    here = "examples.video_workflow"
    return [
        {"name": f"{here}.probe", "queue": "media", "payload": {"url": url}, "key": "probe"},
        {"name": f"{here}.transcribe", "queue": "media", "key": "text", "depends_on": ["probe"]},
        {
            "name": f"{here}.caption",
            "queue": "media",
            "payload": {"language": "en"},
            "key": "captions",
            "depends_on": ["probe"],
        },
        {"name": f"{here}.index", "queue": "media", "depends_on": ["text", "captions"]},
    ]


async def enqueue_and_wait() -> None:
    async with TaskStore.from_url() as store:
        ids = await store.enqueue_many(pipeline("https://example.com/talk.mp4"))
        print(
            f"enqueued the workflow: probe {ids[0]}, transcribe {ids[1]}, caption {ids[2]}, "
            f"index {ids[3]}",
            flush=True,
        )
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "--app", "examples.video_workflow",
            "--queue", "media", "--burst", "--log-level", "WARNING",
        )  # fmt: skip
        info = await store.wait(ids[3], timeout=60)
        print(f"index {info.status.value}: {info.result}", flush=True)
        await worker.wait()


def main() -> None:
    subprocess.run([sys.executable, "-m", "taskstore.cli", "migrate"], check=True)
    asyncio.run(enqueue_and_wait())


if __name__ == "__main__":
    main()
