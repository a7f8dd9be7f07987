"""The "is anything claimable?" read, built once per shape and run as a compiled plan.

An idle SQLite worker asks this every few milliseconds. Built afresh each time, the
SELECT cost more Python (coercing its clauses, generating its cache key, expanding its
IN lists) than SQLite spends answering it. Here each shape (how many queues, how many
names each leaves out, orphans or not) is built once with a parameter per value, so the
same statement object comes back and the backend runs it from its compiled plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Float, Select, and_, bindparam, or_, select

from taskstore.backends import Backend
from taskstore.models.task import orphaned, status_in
from taskstore.repositories.task_table import T
from taskstore.states import CLAIMABLE

#: (queue count, (queue index, names left out) ..., orphans, with a waiting time)
Shape = tuple[int, tuple[tuple[int, int], ...], bool, bool]

_MOST_SHAPES = 64  # skips come and go; a worker's shapes are few, but never let them pile up


class DueProbes:
    """Statements of the due probe, by shape."""

    def __init__(self, backend: Backend, now: Any) -> None:
        self._backend = backend
        self._now = now
        self._statements: dict[Shape, Select[Any]] = {}

    def probe(
        self,
        queues: Sequence[str],
        skip: Mapping[str, Sequence[str]],
        *,
        orphans: bool,
        waiting_seconds: float,
    ) -> tuple[Select[Any], dict[str, Any]]:
        """The statement for this shape and its parameters."""
        left_out = tuple((i, len(skip[q])) for i, q in enumerate(queues) if skip.get(q))
        shape: Shape = (len(queues), left_out, orphans, waiting_seconds > 0)
        statement = self._statements.get(shape)
        if statement is None:
            if len(self._statements) >= _MOST_SHAPES:
                self._statements.clear()
            statement = self._statements[shape] = self._build(shape)
        params: dict[str, Any] = {f"q{i}": queue for i, queue in enumerate(queues)}
        for i, count in left_out:
            names = skip[queues[i]]
            params.update({f"q{i}_n{j}": names[j] for j in range(count)})
        if waiting_seconds > 0:
            params["p_waited"] = -float(waiting_seconds)
        return statement, params

    def _build(self, shape: Shape) -> Select[Any]:
        count, left_out, orphans, waiting = shape
        skipping = dict(left_out)
        plain = [bindparam(f"q{i}") for i in range(count) if i not in skipping]
        kept = [
            and_(
                T.c.queue == bindparam(f"q{i}"),
                T.c.name.not_in([bindparam(f"q{i}_n{j}") for j in range(names)]),
            )
            for i, names in left_out
        ]
        which = orphaned() if orphans else status_in(CLAIMABLE)
        where = [or_(T.c.queue.in_(plain), *kept)] if kept else [T.c.queue.in_(plain)]
        statement = select(T.c.id).where(which, *where, T.c.run_at <= self._now).limit(1)
        if waiting:
            since = self._backend.now_plus(bindparam("p_waited", type_=Float))
            statement = statement.where(T.c.updated_at <= since)
        return statement
