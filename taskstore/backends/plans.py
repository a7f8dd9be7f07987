"""A Core statement compiled once for a driver: its SQL text, parameter order and bind
processors, so a hot path can hand it to the driver without SQLAlchemy's execution layer
(see `pg_direct` and `sqlite_direct`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
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

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = [params[n] if n in params else self.defaults[n] for n in self.names]
        for i, name in enumerate(self.names):
            processor = self.processors.get(name)
            if processor is not None:
                values[i] = processor(values[i])
        return values


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
    return Plan(
        statement,
        compiled.string,
        tuple(names),
        {key: bind.effective_value for key, bind in compiled.binds.items() if not bind.required},
        {name: fn for name, fn in processors.items() if name in names and fn is not None},
    )
