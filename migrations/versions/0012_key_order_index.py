"""Index the keyed tasks that keep their place in their key's order.

Under a queue's ``key_concurrency`` a key's tasks start in (priority, id) order, and a task
that already started and waits to run again (a retry, a snooze, a hand-back) keeps its
place: the key's later tasks wait for it. The keyed claim looks those tasks up per key in
this small partial index (claimable, keyed, started once), which only they enter.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEEPING_PLACE = sa.text(
    "status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL"
    " AND started_at IS NOT NULL"
)


def upgrade() -> None:
    op.create_index(
        "ix_taskstore_tasks_key_order",
        "taskstore_tasks",
        ["queue", "concurrency_key"],
        unique=False,
        postgresql_where=_KEEPING_PLACE,
        sqlite_where=_KEEPING_PLACE,
    )


def downgrade() -> None:
    op.drop_index("ix_taskstore_tasks_key_order", table_name="taskstore_tasks")
