"""The keyed claim: which candidates a queue's ``key_concurrency`` lets start.

Under a key limit a key's tasks start in (priority, id) order, at most `p_key_limit` of
them running at once. A claim weighs the first `p_scan` candidates in claim order (a
bounded index scan, however deep the queue) against each key's first tasks in the key's
own order, read from the start of the key in the key-order index, so that the key's
tasks outside the candidates count too: not due yet but keeping their place (a retry, a
snooze, a hand-back), orphans, or beyond the first `p_scan`. Where the queue is deeper
than `p_scan`, a walk along the key-order index adds the first task of each key that has
none among the candidates (up to `p_keys` keys), so that one key's backlog filling the
candidates does not hold the other keys up.

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
    literal,
    or_,
    select,
    true,
    union_all,
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
from taskstore.repositories.task_table import Executor, T, status_literal
from taskstore.states import CLAIMABLE, LEASED, TaskStatus

Q = QueueEntity.__table__
#: candidates a keyed claim weighs, first in claim order
SCAN = 5000
#: keys with no task among those candidates whose first task it weighs too, where the
#: candidates are all taken by other keys' backlogs
KEYS_BEYOND = 200


def key_params(key_limit: int | None, limit: int, scan: int = SCAN) -> dict[str, Any]:
    """The bound values of a keyed pick."""
    return {"p_key_limit": key_limit, "p_scan": max(scan, limit), "p_keys": KEYS_BEYOND}


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
        scan: int = SCAN,
        skip: Sequence[str] = (),
    ) -> list[ClaimedTask]:
        """`claim` for a queue whose only limit is its key concurrency (`key_limit`, as
        the caller last read it), in one statement. Takes nothing when the queue's row no
        longer says so, or another claim of it came first (see `_key_gate`), or none may
        start: then claim in `claim_limited`'s locked transaction, which tells these apart."""
        if limit <= 0:
            return []
        params = claim_params(queue, limit, worker_id, lease_seconds, skip)
        params.update(key_params(key_limit, limit, scan))
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
        the first `p_scan`. Keys with no task among the candidates are weighed too
        (`_beyond`). `freed`: rows (``id``) this statement completes, still running in
        its snapshot; they hold no key."""
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
            .cte("front")
        )
        keys, size = self._front_keys(front)
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
        pick = self._pick_by_keys if self.backend.lateral_joins else self._pick_by_edges
        ours = [self.backend.none_of(front.c.name, "p_skip")] if skip else []
        in_front = pick(front, keys, busy).where(*ours)
        beyond = self._beyond(size, keys, busy, orphans, skip)
        picks = union_all(in_front, beyond).subquery("picks")
        return select(picks.c.id).order_by(picks.c.priority.desc(), picks.c.run_at, picks.c.id)

    def _front_keys(self, front: Any) -> tuple[Any, Any]:
        """The keys among the candidates (``ckey``) and how many candidates there are,
        each read in one pass over them: from hashed groups where the database hashes
        them, else from a distinct set and a count (cheap where it sorts groups)."""
        if self.backend.hash_aggregates:
            groups = (
                select(front.c.ckey, func.count().label("n")).group_by(front.c.ckey).cte("groups")
            )
            keys = select(groups.c.ckey).where(groups.c.ckey.is_not(None)).cte("keys")
            return keys, select(func.sum(groups.c.n)).scalar_subquery()
        keys = select(front.c.ckey).where(front.c.ckey.is_not(None)).distinct().cte("keys")
        return keys, select(func.count()).select_from(front).scalar_subquery()

    def _pick_by_keys(self, front: Any, keys: Any, busy: Any) -> Any:
        """Each key among the candidates looks up its first tasks (a LATERAL join); the
        candidates among those that its running tasks leave room for may start. Costs a
        look-up per key, not a sort of the candidates."""
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
        return select(front.c.id, front.c.priority, front.c.run_at).where(
            or_(front.c.ckey.is_(None), front.c.id.in_(startable))
        )

    def _pick_by_edges(self, front: Any, keys: Any, busy: Any) -> Any:
        """Where no LATERAL join is at hand (SQLite): a key's candidates may start up to
        its edge in the key's order (`_edges`). A look-up per key, not a sort of the
        candidates by key."""
        bound = self._edges(keys, busy)
        up_to_edge = or_(
            bound.c.id.is_(None),  # the key has fewer tasks than room: all may start
            front.c.priority > bound.c.priority,
            and_(front.c.priority == bound.c.priority, front.c.id <= bound.c.id),
        )
        return (
            select(front.c.id, front.c.priority, front.c.run_at)
            .select_from(front.outerjoin(bound, bound.c.ckey == front.c.ckey))
            .where(or_(front.c.ckey.is_(None), and_(bound.c.ckey.is_not(None), up_to_edge)))
        )

    def _edges(self, keys: Any, busy: Any) -> Any:
        """Each key with room left, and its edge (``id``, ``priority``): the last of the
        key's first tasks that its running tasks leave room for, or NULL where the key
        has fewer tasks than that."""
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

    def _beyond(self, size: Any, keys: Any, busy: Any, orphans: bool, skip: bool) -> Any:
        """The first tasks of keys with none among the candidates, where their key has
        room: so that one key's backlog filling the candidates does not hold the other
        keys up. Each such key starts at most one task a claim."""
        heads = self._heads_beyond(size, keys, orphans, skip)

        def of_head(column: Any) -> Any:  # a look-up by primary key, whatever the plan
            return select(column).where(T.c.id == heads.c.head).scalar_subquery()

        room = func.coalesce(busy.c.n, 0) < bindparam("p_key_limit", type_=Integer)
        return (
            select(
                heads.c.head.label("id"),
                of_head(T.c.priority).label("priority"),
                of_head(T.c.run_at).label("run_at"),
            )
            .select_from(heads.outerjoin(busy, busy.c.ckey == heads.c.ckey))
            .where(heads.c.head.is_not(None), room)
        )

    def _heads_beyond(self, size: Any, keys: Any, orphans: bool, skip: bool) -> Any:
        """Where the candidates are all `p_scan` (the queue is deeper), each key they
        lack (up to `p_keys` keys: a walk from key to key along the key-order index, one
        probe a step) and its first task if it may start now (``ckey``, ``head``)."""
        full = size >= bindparam("p_scan", type_=Integer)
        walk = select(self._next_key(None).label("ckey"), literal(1).label("n")).where(full)
        seen = walk.cte("seen", recursive=True)
        step = select(self._next_key(seen.c.ckey), seen.c.n + 1).where(
            seen.c.ckey.is_not(None), seen.c.n < bindparam("p_keys", type_=Integer)
        )
        seen = seen.union_all(step)
        first = (
            self._key_firsts(seen.c.ckey, "status", "worker_id", "run_at", "name")
            .limit(1)
            .correlate(seen)
            .subquery("first")
        )
        head = select(first.c.id).where(*self._claimable_first(first, orphans, skip))
        heads = select(seen.c.ckey, head.scalar_subquery().label("head")).where(
            seen.c.ckey.is_not(None), seen.c.ckey.not_in(select(keys.c.ckey))
        )
        return heads.cte("heads").prefix_with("MATERIALIZED")  # read four times a row

    def _claimable_first(self, first: Any, orphans: bool, skip: bool) -> list[Any]:
        """`_claimable` for a task read from the key-order index (whose predicate holds
        already), on the columns `first` carries."""
        if orphans:
            which = [first.c.status == status_literal(TaskStatus.NOT_FINISHED)]
            which.append(first.c.worker_id.is_(None))
        else:
            created = first.c.status == status_literal(TaskStatus.CREATED)
            which = [or_(created, first.c.worker_id.is_not(None))]
        skipped = [self.backend.none_of(first.c.name, "p_skip")] if skip else []
        return [*which, first.c.run_at <= self._now, *skipped]

    def _next_key(self, after: Any) -> Any:
        """The queue's first key (after `after`) with a claimable task: one index probe."""
        k = T.alias("next")
        later = [] if after is None else [k.c.concurrency_key > after]
        return (
            select(func.min(k.c.concurrency_key))
            .where(keyed_claimable(), k.c.queue == bindparam("p_queue"), *later)
            .scalar_subquery()
        )

    def _key_firsts(self, ckey: Any, *also: str) -> Any:
        """The first `p_key_limit` tasks of the key `ckey` names, in (priority, id) order:
        claimable ones that are due or started once (those keep their place: a retry, a
        snooze, a hand-back, an orphan). A short read from the start of the key. Their
        id and priority, and the columns named in `also`."""
        k = T.alias("k")
        return (
            select(k.c.id, k.c.priority, *(k.c[name] for name in also))
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
