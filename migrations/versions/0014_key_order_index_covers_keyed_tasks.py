"""The key-order index covers every claimable keyed task, in its key's own order.

Under a queue's ``key_concurrency`` a key's tasks start in (priority, id) order. The keyed
claim used to rank every due task of the queue on each claim, so its cost grew with the
queue's depth. It now ranks a bounded front of candidates and checks each against its
key's first few tasks in that order, read from the start of the key in this index:
claimable, keyed, ordered by (queue, key, priority descending, id). It replaces 0012's
index of the tasks that keep their place (a subset of these).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_taskstore_tasks_key_order"
TASKS = "taskstore_tasks"
_KEYED = sa.text("status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL")
_KEEPING_PLACE = sa.text(
    "status IN ('created', 'not_finished') AND concurrency_key IS NOT NULL"
    " AND started_at IS NOT NULL"
)


def upgrade() -> None:
    op.drop_index(NAME, table_name=TASKS)
    op.create_index(
        NAME,
        TASKS,
        ["queue", "concurrency_key", sa.literal_column("priority DESC"), "id"],
        unique=False,
        postgresql_where=_KEYED,
        sqlite_where=_KEYED,
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name=TASKS)
    op.create_index(
        NAME,
        TASKS,
        ["queue", "concurrency_key"],
        unique=False,
        postgresql_where=_KEEPING_PLACE,
        sqlite_where=_KEEPING_PLACE,
    )
