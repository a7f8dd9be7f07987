"""Status predicates: the same set of statuses on both backends, and on SQLite never an IN
list that it would rebuild as a temporary b-tree for every row a claim or completion
changes (see `taskstore.models.status_sql`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from taskstore import TaskStore
from taskstore.models.task import TaskEntity, status_in
from taskstore.states import ACTIVE, FINISHED, TaskStatus
from tests.conftest import fresh_sqlite

T = TaskEntity.__table__
#: an IN list of three values or more
LONG_IN_LIST = re.compile(r"IN \('[^']*', '[^']*', '")


@pytest.fixture
async def sqlite_store(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[TaskStore]:
    """A migrated SQLite store (these tests are about SQLite's own plans)."""
    async with TaskStore.from_url(fresh_sqlite(sqlite_template, tmp_path)) as opened:
        yield opened


def _sql(statement, dialect) -> str:
    return str(statement.compile(dialect=dialect))


def test_a_long_status_list_is_a_chain_of_equalities_on_sqlite_and_an_in_list_on_postgres():
    statement = select(T.c.id).where(status_in(FINISHED))
    assert "(status = 'cancelled' OR status = 'completed' OR status = 'failed')" in _sql(
        statement, sqlite.dialect()
    )
    assert "status IN ('cancelled', 'completed', 'failed')" in _sql(statement, postgresql.dialect())
    short = select(T.c.id).where(status_in(frozenset({TaskStatus.CREATED, TaskStatus.RUNNING})))
    assert "status IN ('created', 'running')" in _sql(short, sqlite.dialect())


def test_statements_with_different_status_sets_do_not_share_a_cached_compilation():
    one = select(T.c.id).where(status_in(FINISHED))
    other = select(T.c.id).where(status_in(ACTIVE))
    assert one._generate_cache_key() != other._generate_cache_key()


async def test_the_migrated_sqlite_schema_tests_no_long_status_list(sqlite_store: TaskStore):
    async with sqlite_store.reading() as conn:
        schema = (
            await conn.execute(
                text("SELECT group_concat(sql, ';') FROM sqlite_master WHERE tbl_name = :t"),
                {"t": "taskstore_tasks"},
            )
        ).scalar_one()
    assert "ck_taskstore_tasks_status_valid" in schema
    assert not LONG_IN_LIST.search(schema)


async def test_the_status_check_still_refuses_an_unknown_status(store: TaskStore):
    task_id = await store.enqueue("t.check")
    with pytest.raises(IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(T.update().where(T.c.id == task_id).values(status="lost"))
    assert (await store.get(task_id)).status == TaskStatus.CREATED


async def test_a_live_dedup_key_is_still_taken_once_and_free_again_after_the_task_ends(
    store: TaskStore,
):
    first = await store.enqueue("t.dedup", dedup_key="k")
    assert await store.enqueue("t.dedup", dedup_key="k") == first
    await store.cancel(first)
    assert await store.enqueue("t.dedup", dedup_key="k") != first


async def test_finished_tasks_are_found_through_the_finished_rows_index_on_sqlite(
    sqlite_store: TaskStore,
):
    query = select(T.c.id).where(status_in(FINISHED), T.c.finished_at < text("'9999'"))
    async with sqlite_store.reading() as conn:
        compiled = query.compile(dialect=conn.dialect)
        plan = await conn.execute(text("EXPLAIN QUERY PLAN " + str(compiled)))
        details = " ".join(str(row[-1]) for row in plan)
    assert "ix_taskstore_tasks_finished" in details
