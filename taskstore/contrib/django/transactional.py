"""Enqueue on Django's own database connection, inside the caller's transaction.

taskstore's own INSERT (the statement `TaskStore.enqueue` runs, built by the backend
module of the dialect) is compiled for the DB-API driver Django uses and executed on
Django's cursor: validation, row shape and the database clock stay taskstore's, and the
task commits or rolls back with whatever else the transaction wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql import Executable

from taskstore import validation
from taskstore.backends import backend_for
from taskstore.backends.plans import Plan, compile_plan
from taskstore.repositories.task_table import run_blocking
from taskstore.repositories.tasks import TaskRepository

# Django's database vendor -> the SQLAlchemy dialect that compiles for its DB-API driver.
# The psycopg dialect writes the casts arrays need (``%s::INTEGER[]``); its SQL suits
# psycopg2 as well.
_DIALECTS = {"postgresql": "postgresql+psycopg", "sqlite": "sqlite+pysqlite"}


def enqueue_on(
    connection: BaseDatabaseWrapper,
    name: str,
    payload: Mapping[str, Any],
    *,
    max_payload_bytes: int,
    **options: Any,
) -> int:
    """Insert one task on `connection` (Django's), in its open transaction; the new id."""
    task = validation.new_task(name, payload, max_payload_bytes=max_payload_bytes, **options)
    executor = _CursorExecutor(connection, _dialect(connection.vendor))
    # The insert only calls `execute`, which the executor provides.
    insert = _repository(connection.vendor).insert(executor, [task])  # type: ignore[arg-type]
    [task_id] = run_blocking(insert, "Django's connection")
    return int(task_id)


@functools.cache
def _repository(vendor: str) -> TaskRepository:
    return TaskRepository(backend_for(vendor))


@functools.cache
def _dialect(vendor: str) -> Dialect:
    # "format" (%s) is what Django's cursors take on every database it supports.
    dialect_class: Any = make_url(_DIALECTS[vendor] + "://").get_dialect()
    return dialect_class(paramstyle="format")


class _Rows:
    """The part of a SQLAlchemy result the insert reads."""

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        self._rows = list(rows)

    def all(self) -> list[Sequence[Any]]:
        return self._rows

    def first(self) -> Sequence[Any] | None:
        return self._rows[0] if self._rows else None


class _CursorExecutor:
    """Runs taskstore's compiled statements on a Django connection's cursor."""

    def __init__(self, connection: BaseDatabaseWrapper, dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect

    async def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> _Rows:
        plan = _plan(statement, self._dialect)
        with self._connection.cursor() as cursor:
            cursor.execute(plan.sql, plan.arguments(params or {}))
            return _Rows(cursor.fetchall() if cursor.description else [])


_plans: dict[tuple[int, int], Plan] = {}


def _plan(statement: Executable, dialect: Dialect) -> Plan:
    """The statement compiled once per dialect (the repository builds statements once)."""
    key = (id(statement), id(dialect))
    plan = _plans.get(key)
    if plan is None:
        compiled = compile_plan(statement, dialect)
        if compiled is None:  # taskstore's plain insert never needs run-time compilation
            raise RuntimeError("this statement cannot run on Django's connection")
        plan = _plans[key] = compiled
    return plan
