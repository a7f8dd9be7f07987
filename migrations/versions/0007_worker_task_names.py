"""Workers record the task names they have handlers for.

A worker that claims a task it cannot run hands it back (uncharged) for a worker that
can; the registry tells whether any live worker can, and operators see names and queues
that no live worker serves.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskstore.models.base import JSONDocument

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("taskstore_workers") as batch:
        batch.add_column(
            sa.Column("tasks", JSONDocument, server_default=sa.text("'[]'"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("taskstore_workers") as batch:
        batch.drop_column("tasks")
