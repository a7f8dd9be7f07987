"""What each dashboard view shows, gathered from a `TaskStore` (no web framework here).

Every function returns frozen snapshots; `to_json` turns them into the `/api/` documents.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import inspect as orm_inspect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskstore.dashboard import queries
from taskstore.dashboard.flow import QueueRow, queue_rows
from taskstore.dashboard.params import TaskFilter
from taskstore.models import MediaEntity
from taskstore.records import QueueInfo, QueueStats, TaskInfo, Unserved
from taskstore.repositories.media import (
    CaptionRepository,
    MediaRepository,
    TranscriptRepository,
)
from taskstore.repositories.workers import WorkerInfo
from taskstore.store import TaskStore
from taskstore.task_detail import TaskLinks, task_links


def jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601 strings; everything else stored here is JSON already."""
    return value.isoformat() if isinstance(value, dt.datetime) else value


def entity_json(entity: Any) -> dict[str, Any]:
    """Every mapped column of an ORM entity, including those of user subclasses."""
    mapper = orm_inspect(entity).mapper
    return {attr.key: jsonable(getattr(entity, attr.key)) for attr in mapper.column_attrs}


@dataclasses.dataclass(frozen=True, slots=True)
class Overview:
    """The front page: counts and flow control per queue, tasks no live worker can run,
    recent throughput and live workers."""

    database: str
    queues: list[QueueStats]
    flow: list[QueueInfo]
    unserved: list[Unserved]
    recent: dict[str, dict[str, int]]
    throughput: list[dict[str, Any]]
    workers: list[WorkerInfo]

    def rows(self) -> list[QueueRow]:
        """The queue table: counts and settings, queues with settings but no task too."""
        return queue_rows(self.queues, self.flow)

    def totals(self) -> dict[str, int]:
        """Counts per status over all queues."""
        out: dict[str, int] = {}
        for queue in self.queues:
            for status, count in queue.counts.items():
                out[status] = out.get(status, 0) + count
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "queues": [q.to_json() for q in self.queues],
            "totals": self.totals(),
            "finished_recently": self.recent,
            "workers_alive": sum(w.alive for w in self.workers),
            "unserved": [u.to_json() for u in self.unserved],
        }


async def overview(store: TaskStore, minutes: int = 60) -> Overview:
    # One read after another: a page (refreshed every few seconds) holds one pooled
    # connection at a time.
    return Overview(
        database=store.settings.safe_url,
        queues=await store.stats(),
        flow=await store.queues(),
        unserved=await store.unserved(),
        recent=await store.finished_recently(),
        throughput=await store.throughput(minutes=minutes),
        workers=await store.workers(),
    )


def throughput_json(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: jsonable(value) for key, value in point.items()} for point in points]


@dataclasses.dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of the task list, newest first, and where it sits among all matches."""

    filters: TaskFilter
    tasks: list[TaskInfo]
    next_before_id: int | None
    prev_after_id: int | None
    total: int
    first_position: int  # of the page's first task, counting the newest match as 1

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [t.to_json() for t in self.tasks],
            "total": self.total,
            "next_before_id": self.next_before_id,
            "prev_after_id": self.prev_after_id,
        }


async def task_page(store: TaskStore, filters: TaskFilter) -> TaskPage:
    """The page `filters` asks for: below `before_id`, above `after_id`, or the newest."""
    if filters.after_id is None:
        rows = await store.list(**filters.store_kwargs())
        shown = rows[: filters.limit]
    else:
        rows = await queries.page_above(store, filters, filters.after_id)
        shown = rows[: filters.limit][::-1]
    # An empty page (past either end) still knows which side has tasks.
    top = shown[0].id if shown else _bound(filters)
    counts = await queries.counts(store, filters, top)
    older = counts.total - counts.newer - len(shown)
    return TaskPage(
        filters,
        shown,
        next_before_id=shown[-1].id if shown and older > 0 else None,
        prev_after_id=shown[0].id if shown and counts.newer > 0 else None,
        total=counts.total,
        first_position=counts.newer + 1,
    )


def _bound(filters: TaskFilter) -> int | None:
    if filters.before_id is not None:
        return filters.before_id - 1
    return filters.after_id


@dataclasses.dataclass(frozen=True, slots=True)
class TaskDetail:
    """A task and the result entities it produced."""

    task: TaskInfo
    media: list[dict[str, Any]]
    transcripts: list[dict[str, Any]]
    captions: list[dict[str, Any]]
    links: TaskLinks

    def to_json(self) -> dict[str, Any]:
        return {
            **self.task.to_json(),
            **self.links.to_json(),
            "workflow": self.links.workflow,
            "media": self.media,
            "transcripts": self.transcripts,
            "captions": self.captions,
        }


async def task_detail(store: TaskStore, task_id: int) -> TaskDetail:
    """The task (`TaskNotFound` if missing) and its media, transcripts and captions."""
    info = await store.require(task_id)
    links = await task_links(store, info, graph=True)
    async with store.sessions() as session:  # read only: closed without a commit
        media = await _media_of(session, task_id)
        transcripts = await TranscriptRepository(session).by_task(task_id)
        captions = await CaptionRepository(session).by_task(task_id)
        return TaskDetail(
            info,
            media,
            [entity_json(t) for t in transcripts],
            [entity_json(c) for c in captions],
            links,
        )


async def _media_of(session: AsyncSession, task_id: int) -> list[dict[str, Any]]:
    """The task's media rows: whole, for the types this process has imported; by their
    common columns, for a user subclass it has not (loading those through the ORM fails:
    the dashboard does not import the application's models)."""
    known = [identity for identity in MediaEntity.__mapper__.polymorphic_map if identity]
    media = [entity_json(m) for m in await MediaRepository(session).by_task(task_id, known)]
    table = MediaEntity.__table__
    other = table.c.media_type.not_in(known)
    rows = await session.execute(select(table).where(table.c.task_id == task_id, other))
    media += [{key: jsonable(value) for key, value in row._mapping.items()} for row in rows]
    return sorted(media, key=lambda m: m["id"])
