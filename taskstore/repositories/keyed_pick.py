"""The keyed claim: which candidates a queue's ``key_concurrency`` lets start.

Under a key limit a key's tasks start in (priority, id) order, at most `p_key_limit` of
them running at once. A claim weighs the first `p_scan` candidates in claim order (a
bounded index scan, however deep the queue) against each key's first tasks in the key's
own order, read from the start of the key in the key-order index, so that the key's
tasks outside the candidates count too: not due yet but keeping their place (a retry, a
snooze, a hand-back), orphans, or beyond the first `p_scan`.

A queue whose only limit is its key concurrency is claimed in one statement
(`claim_keyed`); any other keyed queue in `claim_limited`'s transaction, which locks the
queue's row first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    true,
    update,
)

from taskstore.backends import Backend
from taskstore.models.queue import QueueEntity
from taskstore.models.task import keyed_claimable, status_in
from taskstore.records import ClaimedTask
from taskstore.repositories.leases import (
    CLAIM_COLUMNS,
    LeaseStatements,
    claim_order,
    claim_params,
    claimed,
)
from taskstore.repositories.task_table import Executor, T
from taskstore.states import CLAIMABLE, LEASED

Q = QueueEntity.__table__


class KeyedPickStatements(LeaseStatements):
    """`claim_keyed`, and the keyed pick `claim_limited` runs under the queue's lock."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        both = (True, False)
        self._keyed_claim = {
            (o, skip): self._build_keyed_claim(o, skip, self._key_gate())
            for o in both
            for skip in both
        }

    async def claim_keyed(
        self,
        conn: Executor,
        *,
        worker_id: str,
        queue: str,
        limit: int,
        lease_seconds: float,
        key_limit: int,
        orphans: bool = False,
        scan: int = 5000,
        skip: Sequence[str] = (),
    ) -> list[ClaimedTask]:
        """`claim` for a queue whose only limit is its key concurrency (`key_limit`, as
        the caller last read it), in one statement. Takes nothing when the queue's row no
        longer says so, or another claim of it came first (see `_key_gate`), or none may
        start: then claim in `claim_limited`'s locked transaction, which tells these apart."""
        if limit <= 0:
            return []
        params = claim_params(queue, limit, worker_id, lease_seconds, skip)
        params.update(p_key_limit=key_limit, p_scan=max(scan, limit))
        rows = await self.backend.rows(conn, self._keyed_claim[orphans, bool(skip)], params)
        return [claimed(row) for row in sorted(rows, key=claim_order)]

    def _build_keyed_claim(self, orphans: bool, skip: bool, limit: Any, freed: Any = None) -> Any:
        """Claim the keyed pick, at most `limit` (an SQL expression). No SKIP LOCKED
        (window functions cannot take row locks): the pick runs under the queue's lock,
        or behind `_key_gate`. Only the status is checked again (a row cancelled since
        the pick is left alone): the pick's own conditions repeated here would steer
        PostgreSQL's planner into scanning the claim index against the picked rows."""
        picked = self._keyed_pick(orphans, skip, freed).limit(limit)
        where = (self.backend.pick_where(T.c.id, picked), status_in(CLAIMABLE))
        return update(T).where(*where).values(self._claim_values()).returning(*CLAIM_COLUMNS)

    def _key_gate(self) -> ColumnElement[Any]:
        """How many a one-statement keyed claim may take: ``p_limit`` while the queue's
        row still says its only limit is ``p_key_limit`` per key, else 0. On PostgreSQL
        the statement counts what runs in its snapshot, which misses a claim committed
        while it waited for the queue's row: it bumps the row's claim counter and takes
        nothing unless the bump starts from the value its snapshot saw (no claim came in
        between; completions since then only make the count err on the safe side)."""
        p_queue = bindparam("p_queue")
        fits = (
            Q.c.name == p_queue,
            Q.c.paused.is_(False),
            Q.c.concurrency.is_(None),
            Q.c.rate_limit.is_(None),
            Q.c.key_concurrency == bindparam("p_key_limit", type_=Integer),
        )
        p_limit = bindparam("p_limit", type_=Integer)
        if self.backend.writes_read_latest:  # SQLite: the write lock is held from the start
            return func.coalesce(select(p_limit).where(*fits).scalar_subquery(), 0)
        seen = select(Q.c.claims).where(Q.c.name == p_queue).scalar_subquery()
        bumped = (
            update(Q)
            .where(*fits)
            .values(claims=Q.c.claims + 1)
            .returning((Q.c.claims - 1).label("before"))
            .cte("bumped")
        )
        alone = select(case((bumped.c.before == seen, p_limit), else_=0)).scalar_subquery()
        return func.coalesce(alone, 0)

    def _keyed_pick(self, orphans: bool, skip: bool, freed: Any = None) -> Any:
        """The ids a keyed claim may take, in claim order. The candidates are the first
        `p_scan` in claim order (a bounded index scan, however deep the queue). Each is
        weighed against its key's first `p_key_limit` tasks in the key's own order, read
        from the start of the key in the key-order index, so tasks of the key outside the
        candidates count too: not due yet but keeping their place, orphans, or beyond
        the first `p_scan`. `freed`: rows (``id``) this statement completes, still
        running in its snapshot; they hold no key."""
        front = (
            select(
                T.c.id,
                T.c.name,
                T.c.concurrency_key.label("ckey"),
                T.c.priority,
                T.c.run_at,
            )
            .where(*self._claimable(orphans))
            .order_by(T.c.priority.desc(), T.c.run_at, T.c.id)
            .limit(bindparam("p_scan", type_=Integer))
        )
        # Joined to the keys: counted once, whatever the planner guesses.
        busy = self.backend.computed_once(
            select(T.c.concurrency_key.label("ckey"), func.count().label("n"))
            .where(
                T.c.queue == bindparam("p_queue"),
                status_in(LEASED),
                T.c.concurrency_key.is_not(None),
                *([] if freed is None else [T.c.id.not_in(select(freed.c.id))]),
            )
            .group_by(T.c.concurrency_key),
            "busy",
        )
        if self.backend.lateral_joins:
            return self._pick_by_keys(front.cte("front"), busy, skip)
        return self._pick_by_edges(front.cte("front"), busy, skip)

    def _pick_by_keys(self, front: Any, busy: Any, skip: bool) -> Any:
        """Each key among the candidates (hashed, not sorted) looks up its first tasks
        (a LATERAL join); the candidates among those that its running tasks leave room
        for may start. Costs a look-up per key, not a sort of the candidates."""
        keys = select(front.c.ckey).where(front.c.ckey.is_not(None)).distinct().subquery("keys")
        firsts = self._key_firsts(keys.c.ckey).lateral("firsts")
        in_key = (firsts.c.priority.desc(), firsts.c.id)
        place = func.row_number().over(partition_by=keys.c.ckey, order_by=in_key)
        placed = (
            select(keys.c.ckey, firsts.c.id, place.label("place"))
            .select_from(keys.join(firsts, true()))
            .subquery("placed")
        )
        startable = (
            select(placed.c.id)
            .select_from(placed.outerjoin(busy, busy.c.ckey == placed.c.ckey))
            .where(placed.c.place + func.coalesce(busy.c.n, 0) <= bindparam("p_key_limit"))
        )
        ours = [self.backend.none_of(front.c.name, "p_skip")] if skip else []
        return (
            select(front.c.id)
            .where(or_(front.c.ckey.is_(None), front.c.id.in_(startable)), *ours)
            .order_by(front.c.priority.desc(), front.c.run_at, front.c.id)
        )

    def _pick_by_edges(self, front: Any, busy: Any, skip: bool) -> Any:
        """Where no LATERAL join is at hand (SQLite): a key's candidates may start up to
        its edge in the key's order (`_edges`). A look-up per key, not a sort of the
        candidates by key."""
        bound = self._edges(front, busy)
        up_to_edge = or_(
            bound.c.id.is_(None),  # the key has fewer tasks than room: all may start
            front.c.priority > bound.c.priority,
            and_(front.c.priority == bound.c.priority, front.c.id <= bound.c.id),
        )
        ours = [self.backend.none_of(front.c.name, "p_skip")] if skip else []
        return (
            select(front.c.id)
            .select_from(front.outerjoin(bound, bound.c.ckey == front.c.ckey))
            .where(or_(front.c.ckey.is_(None), and_(bound.c.ckey.is_not(None), up_to_edge)))
            .where(*ours)
            .order_by(front.c.priority.desc(), front.c.run_at, front.c.id)
        )

    def _edges(self, front: Any, busy: Any) -> Any:
        """Each key among the candidates with room left, and its edge (``id``,
        ``priority``): the last of the key's first tasks that its running tasks leave
        room for, or NULL where the key has fewer tasks than that."""
        keys = select(front.c.ckey).where(front.c.ckey.is_not(None)).distinct().subquery("keys")
        room = bindparam("p_key_limit", type_=Integer) - func.coalesce(busy.c.n, 0)
        rooms = (
            select(keys.c.ckey, room.label("room"))
            .select_from(keys.outerjoin(busy, busy.c.ckey == keys.c.ckey))
            .subquery("rooms")
        )
        edges = (
            select(rooms.c.ckey, self._edge(rooms).label("last"))
            .where(rooms.c.room > 0)
            .subquery("edges")
        )
        e = T.alias("e")
        return (
            select(edges.c.ckey, e.c.id, e.c.priority)
            .select_from(edges.outerjoin(e, e.c.id == edges.c.last))
            .subquery("bound")
        )

    def _key_firsts(self, ckey: Any) -> Any:
        """The first `p_key_limit` tasks of the key `ckey` names, in (priority, id) order:
        claimable ones that are due or started once (those keep their place: a retry, a
        snooze, a hand-back, an orphan). A short read from the start of the key."""
        k = T.alias("k")
        return (
            select(k.c.id, k.c.priority)
            .where(
                keyed_claimable(),  # literally the partial index's predicate
                k.c.queue == bindparam("p_queue"),
                k.c.concurrency_key == ckey,
                or_(k.c.run_at <= self._now, k.c.started_at.is_not(None)),
            )
            .order_by(k.c.priority.desc(), k.c.id)
            .limit(bindparam("p_key_limit", type_=Integer))
        )

    def _edge(self, rooms: Any) -> ColumnElement[Any]:
        """The id of the `rooms.room`-th of its key's first tasks (SQLite's OFFSET cannot
        name an outer column, so the place is numbered)."""
        first = self._key_firsts(rooms.c.ckey).correlate(rooms).subquery("first")
        place = func.row_number().over(order_by=(first.c.priority.desc(), first.c.id))
        placed = select(first.c.id, place.label("place")).subquery("placed")
        return select(placed.c.id).where(placed.c.place == rooms.c.room).scalar_subquery()
