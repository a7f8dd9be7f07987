"""A claim counter on each queue's settings row.

Every claim of a queue with flow control adds one to `claims`. A claim statement on
PostgreSQL reads the counter in its snapshot and bumps it under the row lock: when the
two agree, no other claim of the queue committed in between, so the running count read
in that same snapshot is exact and the claim needs no transaction of its own.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "taskstore_queues",
        sa.Column("claims", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("taskstore_queues") as batch:
        batch.drop_column("claims")
