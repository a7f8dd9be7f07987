"""Writes `postgres.sql` and `sqlite.sql` beside this file: every hot statement of the task
store as the code compiles it for that database's driver, to read in one place.

Run ``python docs/sql/render.py`` after changing a statement; a test fails while the files
and the code differ.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect

from taskstore.backends import backend_for
from taskstore.repositories.tasks import TaskRepository

HERE = Path(__file__).resolve().parent
DATABASES = {
    "postgres": ("postgresql", asyncpg_dialect),
    "sqlite": ("sqlite", aiosqlite_dialect),
}


def hot_statements(repo: TaskRepository) -> list[tuple[str, str, Any]]:
    """(title, what it does, statement) for every statement on the hot paths."""
    return [
        (
            "enqueue, enqueue_many",
            "a batch of new tasks, any size, one statement",
            repo._insert_plain,
        ),
        ("enqueue of one task", "its values bound directly", repo._insert_one),
        (
            "enqueue with dedup_key",
            "one row per key; a live task's key is skipped",
            repo._insert_dedup,
        ),
        ("claim", "a batch, claimed and started at once", repo._claim[False, False]),
        ("orphan claim", "one task rescued from a dead worker", repo._claim[True, False]),
        (
            "limited claim",
            "a queue with flow control, its row locked; per-key limit applied",
            repo._limited_claim[False, True, False],
        ),
        (
            "counted claim",
            "a queue whose only limit is its concurrency, counted in the claim itself",
            repo._counted_claim[False, False],
        ),
        (
            "keyed claim",
            "a queue whose only limit is its key concurrency, gated in the claim itself",
            repo._keyed_claim[False, False],
        ),
        ("ack", "completions of a batch, fenced on (id, worker, attempt)", repo._complete),
        (
            "ack and refill",
            "completions, and the claim of the slots they free (where one statement can)",
            repo._handoff,
        ),
        (
            "keyed ack and refill",
            "completions, and the keyed claim of the keys they free (where one statement can)",
            repo._keyed_handoff,
        ),
        ("retry", "a failed attempt with attempts left, fenced", repo._fail[True]),
        ("fail", "a failed attempt with none left, fenced", repo._fail[False]),
        ("heartbeat", "every lease the worker holds, in one statement", repo._heartbeat),
        ("interrupt", "attempts cut off by a graceful stop, not charged", repo._interrupt),
        ("release", "claimed tasks never run, handed back uncharged", repo._release),
        ("rescue", "tasks whose lease expired", repo.rescue_statement()),
    ]


def render(database: str) -> str:
    backend_name, make_dialect = DATABASES[database]
    dialect = make_dialect()
    repo = TaskRepository(backend_for(backend_name))
    parts = [
        f"-- Hot statements of taskstore on {database}, as compiled for its driver.",
        "-- Written by docs/sql/render.py from the code; do not edit by hand.",
    ]
    for title, what, statement in hot_statements(repo):
        if statement is None:
            continue
        compiled = statement.compile(dialect=dialect)
        names = compiled.positiontup or []
        parts.append(f"\n-- {title}: {what}")
        if names:
            parts.append("-- parameters: " + ", ".join(names))
        parts.append(str(compiled).strip() + ";")
    return "\n".join(parts) + "\n"


def main() -> int:
    for database in DATABASES:
        (HERE / f"{database}.sql").write_text(render(database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
