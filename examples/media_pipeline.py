"""Example pipeline: probe a video, then transcribe it; results land in polymorphic rows.

``probe_video`` records a `VideoEntity` and enqueues ``transcribe`` in the same
transaction as its own completion (so a failed probe leaves neither); ``transcribe`` loads
the video back through `MediaEntity` (polymorphically) and records a `TranscriptEntity`
with its `CaptionEntity` rows. Nothing is downloaded: the "probe" derives metadata from
the URL, so the example runs anywhere.

Run it end to end (embedded SQLite, no set-up):  python -m examples.media_pipeline
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys

from taskstore import TaskStore
from taskstore.models import CaptionEntity, TranscriptEntity, VideoEntity
from taskstore.models.media import new_media_id
from taskstore.repositories import MediaRepository
from worker import NonRetryable, TaskContext, task

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "the",
    "queue",
    "drains",
]


@task(queue="media", max_attempts=3, timeout=30)
async def probe_video(
    ctx: TaskContext, url: str, title: str | None = None, video_id: str | None = None
) -> dict:
    """Record the video's metadata (on the row `video_id` if the caller stored one), then
    ask for a transcript."""
    if not url.startswith(("http://", "https://")):
        raise NonRetryable(f"cannot probe {url!r}: not an http(s) URL")
    digest = hashlib.sha256(url.encode()).digest()
    width, height = [(1280, 720), (1920, 1080), (640, 360)][digest[1] % 3]
    async with ctx.session() as session:
        video = await session.get(VideoEntity, video_id) if video_id else None
        if video_id and video is None:
            raise NonRetryable(f"no video with id {video_id!r}")
        if video is None:
            video = VideoEntity(id=new_media_id(), url=url, title=title)
            session.add(video)
        video.duration = 30.0 + digest[0]
        video.width, video.height = width, height
        video.task_id = ctx.task_id
        result = {"video_id": video.id, "duration": video.duration}
    await ctx.enqueue(
        "examples.media_pipeline.transcribe", {"video_id": result["video_id"]}, queue="media"
    )
    return result


@task(queue="media", max_attempts=3, timeout=60)
async def transcribe(ctx: TaskContext, video_id: str) -> dict:
    """Write a (made-up) transcript with one caption per segment."""
    async with ctx.session() as session:
        media = await MediaRepository(session).read(video_id)  # a VideoEntity comes back
        seconds = int(getattr(media, "duration", None) or 30)
        segments = [
            {"start": float(s), "end": float(s + 10), "text": " ".join(WORDS[s % 7 : s % 7 + 5])}
            for s in range(0, seconds, 10)
        ]
        session.add(
            TranscriptEntity(
                media_id=media.id,
                task_id=ctx.task_id,
                language="en",
                text=" ".join(seg["text"] for seg in segments),
                segments=segments,
            )
        )
        session.add_all(
            CaptionEntity(
                media_id=media.id, task_id=ctx.task_id, text=seg["text"], timestamp=seg["start"]
            )
            for seg in segments
        )
    return {"segments": len(segments)}


VIDEOS = [
    {"url": "https://example.org/talks/queues.mp4", "title": "Queues are tables"},
    {"url": "https://example.org/talks/leases.mp4", "title": "Leases and fencing"},
    {"url": "https://example.org/talks/sqlite.mp4", "title": "SQLite in production"},
    {"url": "https://example.org/talks/notify.mp4", "title": "LISTEN/NOTIFY"},
    {"url": "ftp://example.org/broken.mp4", "title": "A video we cannot probe"},
]


async def enqueue_examples() -> list[int]:
    async with TaskStore.from_url(None) as store:
        return await store.enqueue_many(
            [
                {"name": "examples.media_pipeline.probe_video", "payload": v, "queue": "media"}
                for v in VIDEOS
            ]
        )


def run(*args: str) -> None:
    print(
        "$",
        " ".join(["taskstore" if args[1] == "taskstore.cli" else "taskstore-worker", *args[2:]]),
        flush=True,
    )
    subprocess.run([sys.executable, *args], check=True)


def main() -> None:
    run("-m", "taskstore.cli", "migrate")
    ids = asyncio.run(enqueue_examples())
    print(f"enqueued {len(ids)} probe_video tasks: {ids}", flush=True)
    run("-m", "worker.cli", "--app", "examples.media_pipeline", "--burst", "--log-level", "WARNING")
    run("-m", "taskstore.cli", "status")


if __name__ == "__main__":
    main()
