"""Status predicates as literal SQL, written per dialect.

A literal (never a bound parameter) so the planner can match the task table's partial
indexes. SQLite evaluates a partial index's predicate and the table's CHECK for the old and
the new row of every UPDATE that changes ``status``, and compiles an IN list of more than
two constants into a small temporary b-tree that it clears and fills again for each
evaluation: about 40 % of what a claim and a completion cost it. Written as a chain of
equalities there (the same set), the test is a few comparisons. PostgreSQL keeps
``status IN (...)``. Queries use the same text as the index they must match: SQLite uses a
partial index only for a query whose terms repeat its predicate.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from taskstore.states import TaskStatus, ordered

#: SQLite compares a list of this many constants or fewer one by one already
SHORT_LIST = 2


def in_list(statuses: frozenset[TaskStatus]) -> str:
    """``status IN ('a', 'b', ...)``, in a stable order."""
    return "status IN (" + ", ".join("'" + s + "'" for s in ordered(statuses)) + ")"


def for_sqlite(statuses: frozenset[TaskStatus]) -> str:
    """The same test for SQLite: an IN list up to `SHORT_LIST` values, else
    ``(status = 'a' OR status = 'b' OR ...)``."""
    if len(statuses) <= SHORT_LIST:
        return in_list(statuses)
    return "(" + " OR ".join("status = '" + s + "'" for s in ordered(statuses)) + ")"


class StatusIn(ColumnElement[bool]):
    """``status`` is one of a set of statuses (see the module's docstring)."""

    __visit_name__ = "taskstore_status_in"
    inherit_cache = True
    _traverse_internals = [("statuses", InternalTraversal.dp_plain_obj)]

    def __init__(self, statuses: frozenset[TaskStatus]) -> None:
        self.statuses = tuple(ordered(statuses))
        self._set = statuses


@compiles(StatusIn)
def _in_list(element: StatusIn, compiler: Any, **kw: Any) -> str:
    return in_list(element._set)


@compiles(StatusIn, "sqlite")
def _sqlite(element: StatusIn, compiler: Any, **kw: Any) -> str:
    return for_sqlite(element._set)


def status_in(statuses: frozenset[TaskStatus]) -> StatusIn:
    """The predicate ``status`` in `statuses`, as each dialect tests it fastest."""
    return StatusIn(statuses)
