"""Flow control: queue settings, rate limiter slots, concurrency keys.

`taskstore_queues` holds each queue's pause flag and limits (concurrency, rate, per-key
concurrency); `taskstore_rate_slots` the rate limiter's N slots per limited queue. Tasks
gain a `concurrency_key`, and a partial index over leased rows lets a limited claim count
what runs in its queue (and per key) without a scan.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import taskstore.models.base

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEASED = sa.text("status IN ('assigned', 'running')")


def upgrade() -> None:
    op.create_table(
        "taskstore_queues",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("rate_period", sa.Float(), nullable=True),
        sa.Column("key_concurrency", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            taskstore.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_taskstore_queues")),
    )
    op.create_table(
        "taskstore_rate_slots",
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("used_at", taskstore.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["queue"],
            ["taskstore_queues.name"],
            name=op.f("fk_taskstore_rate_slots_queue_taskstore_queues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("queue", "slot", name=op.f("pk_taskstore_rate_slots")),
    )
    # Plain ALTERs (SQLite has both natively): a rebuild of the task table would fire the
    # results' ON DELETE SET NULL.
    op.add_column("taskstore_tasks", sa.Column("concurrency_key", sa.String(255), nullable=True))
    op.create_index(
        "ix_taskstore_tasks_running",
        "taskstore_tasks",
        ["queue", "concurrency_key"],
        postgresql_where=_LEASED,
        sqlite_where=_LEASED,
    )


def downgrade() -> None:
    op.drop_index("ix_taskstore_tasks_running", table_name="taskstore_tasks")
    op.drop_column("taskstore_tasks", "concurrency_key")
    op.drop_table("taskstore_rate_slots")
    op.drop_table("taskstore_queues")
