"""Index orphaned tasks (rescued after their worker died) on their own.

A worker runs an orphan alone, one at a time, so that a task which kills its process is
charged for the crash by itself and not its batch-mates. Workers claim orphans apart from
the rest; this small partial index (``not_finished`` rows that no worker handed back)
finds them without walking the claim index past every other claimable task.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORPHANED = sa.text("status IN ('not_finished') AND worker_id IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_taskstore_tasks_orphaned",
        "taskstore_tasks",
        ["queue", sa.literal_column("priority DESC"), "run_at", "id"],
        unique=False,
        postgresql_where=_ORPHANED,
        sqlite_where=_ORPHANED,
    )


def downgrade() -> None:
    op.drop_index("ix_taskstore_tasks_orphaned", table_name="taskstore_tasks")
