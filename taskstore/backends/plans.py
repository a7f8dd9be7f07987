"""A Core statement compiled once for a driver: its SQL text, parameter order and bind
processors, so a hot path can hand it to the driver without SQLAlchemy's execution layer
(see `pg_direct`, `sqlite_direct` and `sqlite_inline`); and the result processors that
turn the driver's row values into what SQLAlchemy would have returned, for drivers that
need them (SQLite keeps JSON and datetimes as text)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One statement compiled for the driver: SQL text and how to order its arguments."""

    statement: Executable  # kept alive: plans are found by its id()
    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]
    results: tuple[Callable[[Any], Any] | None, ...] = ()

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = [params[n] if n in params else self.defaults[n] for n in self.names]
        for i, name in enumerate(self.names):
            processor = self.processors.get(name)
            if processor is not None:
                values[i] = processor(values[i])
        return values

    def processed(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """The driver's rows with each value as SQLAlchemy's result types make it."""
        pairs = [(i, fn) for i, fn in enumerate(self.results) if fn is not None]
        if not pairs:
            return [tuple(row) for row in rows]
        out = []
        for row in rows:
            values = list(row)
            for i, fn in pairs:
                if values[i] is not None:
                    values[i] = fn(values[i])
            out.append(tuple(values))
        return out


class Plans:
    """Plans by statement, compiled on first use (None: the statement needs SQLAlchemy)."""

    def __init__(self) -> None:
        self._plans: dict[int, Plan | None] = {}

    def get(self, statement: Executable, dialect: Dialect) -> Plan | None:
        key = id(statement)
        if key not in self._plans:
            self._plans[key] = compile_plan(statement, dialect)
        return self._plans[key]


def compile_plan(statement: Executable, dialect: Dialect) -> Plan | None:
    """The statement's plan, or None if it needs SQLAlchemy at execution time (parameters
    expanded into the SQL text, or values computed per execution)."""
    compiled = statement.compile(dialect=dialect)
    names = compiled.positiontup
    if names is None or compiled.literal_execute_params or compiled.post_compile_params:
        return None
    if any(bind.callable is not None for bind in compiled.binds.values()):
        return None  # a value computed per execution: SQLAlchemy's to do
    processors = getattr(compiled, "_bind_processors", {})
    columns = getattr(compiled, "_result_columns", None) or ()
    return Plan(
        statement,
        compiled.string,
        tuple(names),
        {key: bind.effective_value for key, bind in compiled.binds.items() if not bind.required},
        {name: fn for name, fn in processors.items() if name in names and fn is not None},
        tuple(column.type._cached_result_processor(dialect, None) for column in columns),
    )
