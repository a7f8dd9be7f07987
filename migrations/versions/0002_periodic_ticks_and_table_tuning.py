"""Periodic task ticks; storage tuning of the task table on PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import taskstore.models.base
from taskstore.backends import backend_of

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "taskstore_periodic_ticks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tick", taskstore.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "created_at",
            taskstore.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", "tick", name=op.f("pk_taskstore_periodic_ticks")),
    )
    backend_of(op.get_bind()).tune_tables(op)


def downgrade() -> None:
    op.drop_table("taskstore_periodic_ticks")
