"""Queues as the overview lists them: counts per status next to their flow control.

`store.stats()` knows each queue's counts and oldest due task, `store.queues()` each
queue's settings (and also the queues that have settings but no task yet); `queue_rows`
joins the two. `settings_json` is the reply of the pause / resume endpoints.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from taskstore.records import QueueInfo, QueueSettings, QueueStats


@dataclasses.dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of the overview's queue table (None: no limit of that kind)."""

    name: str
    counts: dict[str, int]
    oldest_pending_seconds: float | None
    paused: bool = False
    concurrency: int | None = None
    rate: str | None = None
    key_concurrency: int | None = None


def queue_rows(stats: list[QueueStats], infos: list[QueueInfo]) -> list[QueueRow]:
    """Every queue with tasks or settings, by name.

    Counts come from `stats` (the same read as the status cards above the table), so a
    row never disagrees with the totals; `infos` adds the settings.
    """
    by_name = {s.queue: s for s in stats}
    settings = {i.name: i for i in infos}
    rows = []
    for name in sorted(by_name.keys() | settings.keys()):
        counted, info = by_name.get(name), settings.get(name)
        row = QueueRow(
            name,
            counted.counts if counted else {},
            counted.oldest_pending_seconds if counted else None,
        )
        if info is not None:
            row = dataclasses.replace(
                row,
                paused=info.paused,
                concurrency=info.concurrency,
                rate=info.rate,
                key_concurrency=info.key_concurrency,
            )
        rows.append(row)
    return rows


def settings_json(settings: QueueSettings) -> dict[str, Any]:
    """A queue's settings with the keys of a `QueueInfo` (`GET /api/queues`), no counts."""
    return {
        "name": settings.name,
        "paused": settings.paused,
        "concurrency": settings.concurrency,
        "rate": settings.rate,
        "key_concurrency": settings.key_concurrency,
    }
