"""Initial schema: the task table (the queue) and the polymorphic result entities.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:41:29.967760
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import taskstore.models.base

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "taskstore_tasks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("queue", sa.String(length=64), server_default="default", nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="created", nullable=False),
        sa.Column("priority", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column(
            "run_at",
            taskstore.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            taskstore.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            taskstore.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("started_at", taskstore.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", taskstore.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column(
            "lease_expires_at", taskstore.models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "error",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("dedup_key", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "status IN ('assigned', 'cancelled', 'completed', 'created', 'failed', 'not_finished', 'running')",
            name=op.f("ck_taskstore_tasks_status_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_taskstore_tasks")),
    )
    op.create_index(
        "ix_taskstore_tasks_claim",
        "taskstore_tasks",
        ["queue", sa.literal_column("priority DESC"), "run_at", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('created', 'not_finished')"),
        sqlite_where=sa.text("status IN ('created', 'not_finished')"),
    )
    op.create_index(
        "ix_taskstore_tasks_finished",
        "taskstore_tasks",
        ["finished_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('cancelled', 'completed', 'failed')"),
        sqlite_where=sa.text("status IN ('cancelled', 'completed', 'failed')"),
    )
    op.create_index(
        "ix_taskstore_tasks_lease",
        "taskstore_tasks",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('assigned', 'running')"),
        sqlite_where=sa.text("status IN ('assigned', 'running')"),
    )
    op.create_index(
        "ix_taskstore_tasks_worker",
        "taskstore_tasks",
        ["worker_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('assigned', 'running')"),
        sqlite_where=sa.text("status IN ('assigned', 'running')"),
    )
    op.create_index(
        "uq_taskstore_tasks_dedup_key",
        "taskstore_tasks",
        ["dedup_key"],
        unique=True,
        postgresql_where=sa.text(
            "dedup_key IS NOT NULL AND status IN ('assigned', 'created', 'not_finished', 'running')"
        ),
        sqlite_where=sa.text(
            "dedup_key IS NOT NULL AND status IN ('assigned', 'created', 'not_finished', 'running')"
        ),
    )

    op.create_table(
        "media",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=50), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "created_at",
            taskstore.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["taskstore_tasks.id"],
            name=op.f("fk_media_task_id_taskstore_tasks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
    )
    op.create_index(op.f("ix_media_task_id"), "media", ["task_id"], unique=False)

    op.create_table(
        "caption",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("media_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("timestamp", sa.Float(), nullable=True),
        sa.Column(
            "created_at",
            taskstore.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["media_id"], ["media.id"], name=op.f("fk_caption_media_id_media"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["taskstore_tasks.id"],
            name=op.f("fk_caption_task_id_taskstore_tasks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caption")),
    )
    op.create_index(op.f("ix_caption_media_id"), "caption", ["media_id"], unique=False)
    op.create_index(op.f("ix_caption_task_id"), "caption", ["task_id"], unique=False)

    op.create_table(
        "transcript",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("media_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column(
            "segments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            taskstore.models.base.UTCDateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media.id"],
            name=op.f("fk_transcript_media_id_media"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["taskstore_tasks.id"],
            name=op.f("fk_transcript_task_id_taskstore_tasks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcript")),
    )
    op.create_index(op.f("ix_transcript_media_id"), "transcript", ["media_id"], unique=False)
    op.create_index(op.f("ix_transcript_task_id"), "transcript", ["task_id"], unique=False)

    op.create_table(
        "video",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["id"], ["media.id"], name=op.f("fk_video_id_media"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video")),
    )


def downgrade() -> None:
    op.drop_table("video")
    op.drop_table("transcript")
    op.drop_table("caption")
    op.drop_table("media")
    op.drop_table("taskstore_tasks")
