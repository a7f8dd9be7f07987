"""The claim of a queue with flow control: limits counted, keys taken in turn.

It runs in `taskstore.flow_gate.FlowGate`'s transaction, after the queue's settings row is
locked, so limited claimers of one queue take turns and need no SKIP LOCKED.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam, func, or_, select, update

from taskstore.backends import Backend
from taskstore.models.task import status_in
from taskstore.records import ClaimedTask
from taskstore.repositories.leases import CLAIM_COLUMNS, LeaseStatements, claim_order
from taskstore.repositories.task_table import Executor, T
from taskstore.states import CLAIMABLE, LEASED


class LimitedClaimStatements(LeaseStatements):
    """`claim_limited`: the claim under a queue's flow control."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(backend)
        self._limited_claim = {
            (orphans, keyed): self._build_limited_claim(orphans, keyed)
            for orphans in (True, False)
            for keyed in (True, False)
        }

    def _build_limited_claim(self, orphans: bool, keyed: bool) -> Any:
        """The claim of a queue with flow control, run after the queue's row is locked
        (limited claimers of one queue take turns). With `keyed`, a task whose concurrency
        key already runs `p_key_limit` tasks is passed over, and within a key tasks start
        in claim order: the first `p_scan` candidates are ranked per key."""
        order = (T.c.priority.desc(), T.c.run_at, T.c.id)
        if not keyed:
            picked = select(T.c.id).where(*self._claimable(orphans)).order_by(*order)
        else:
            rank = func.row_number().over(partition_by=T.c.concurrency_key, order_by=order)
            front = (
                select(
                    T.c.id,
                    T.c.concurrency_key.label("ckey"),
                    T.c.priority,
                    T.c.run_at,
                    rank.label("rank"),
                )
                .where(*self._claimable(orphans))
                .order_by(*order)
                .limit(bindparam("p_scan", type_=Integer))
                .subquery("front")
            )
            busy = (
                select(T.c.concurrency_key.label("ckey"), func.count().label("n"))
                .where(
                    T.c.queue == bindparam("p_queue"),
                    status_in(LEASED),
                    T.c.concurrency_key.is_not(None),
                )
                .group_by(T.c.concurrency_key)
                .subquery("busy")
            )
            room = front.c.rank + func.coalesce(busy.c.n, 0) <= bindparam(
                "p_key_limit", type_=Integer
            )
            picked = (
                select(front.c.id)
                .select_from(front.outerjoin(busy, busy.c.ckey == front.c.ckey))
                .where(or_(front.c.ckey.is_(None), room))
                .order_by(front.c.priority.desc(), front.c.run_at, front.c.id)
            )
        picked = picked.limit(bindparam("p_limit", type_=Integer))
        # Unkeyed, the usual SKIP LOCKED claim: a worker whose settings cache is a moment
        # old may still claim the queue without its lock. Keyed (window functions cannot
        # take row locks), the pick runs once under the queue's lock.
        # Only the status is checked again (a row cancelled since the pick is left alone):
        # the pick's own conditions repeated here would steer PostgreSQL's planner into
        # scanning the claim index against the picked rows instead of looking them up.
        b = self.backend
        where = (
            [b.pick_where(T.c.id, picked), status_in(CLAIMABLE)]
            if keyed
            else [b.claim_where(T.c.id, picked)]
        )
        return update(T).where(*where).values(self._claim_values()).returning(*CLAIM_COLUMNS)

    async def claim_limited(
        self,
        conn: Executor,
        *,
        worker_id: str,
        queue: str,
        limit: int,
        lease_seconds: float,
        key_limit: int | None,
        orphans: bool = False,
        scan: int = 5000,
    ) -> list[ClaimedTask]:
        """`claim` for a queue with flow control (call with its row locked): at most
        `key_limit` running per concurrency key, when given."""
        if limit <= 0:
            return []
        params = {
            "p_queue": queue,
            "p_limit": limit,
            "p_worker_id": worker_id,
            "p_lease": lease_seconds,
            "p_key_limit": key_limit,
            "p_scan": max(scan, limit),
        }
        stmt = self._limited_claim[orphans, key_limit is not None]
        rows = sorted((await conn.execute(stmt, params)).all(), key=claim_order)
        return [ClaimedTask(*row[:7]) for row in rows]
