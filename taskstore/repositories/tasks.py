"""TaskRepository: every statement on the task table, grouped by who uses it.

- `EnqueueStatements` (`taskstore.repositories.enqueue`): producers' inserts;
- `LeaseStatements` (`taskstore.repositories.leases`): a worker's claim, fenced endings,
  heartbeats and rescue, and `LimitedClaimStatements` (`...limited_claim`) its claim of a
  queue with flow control;
- `OperatorStatements` (`taskstore.repositories.operator`): cancel, retry, purge;
- `TaskReads` (`taskstore.repositories.task_reads`): rows, lists and statistics.

Statements are SQLAlchemy Core, built once per backend and reused with bound parameters.
Methods take the caller's connection or session and never commit: the caller owns the
transaction. Status changes take their legal source statuses from
`taskstore.states.TRANSITIONS`.
"""

from __future__ import annotations

from taskstore.repositories.enqueue import EnqueueStatements
from taskstore.repositories.limited_claim import LimitedClaimStatements
from taskstore.repositories.operator import OperatorStatements
from taskstore.repositories.task_reads import TaskReads
from taskstore.repositories.task_table import Executor


class TaskRepository(EnqueueStatements, LimitedClaimStatements, OperatorStatements, TaskReads):
    """Reads and fenced writes of `TaskEntity` rows for one backend."""


__all__ = ["Executor", "TaskRepository"]
