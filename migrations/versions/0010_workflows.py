"""Workflows: task dependencies and the ``waiting`` status.

`taskstore_task_attempts` keeps the attempts that did not complete (the attempts log).
`taskstore_task_deps` holds one row per (task, task it depends on); tasks gain
`watched` (a task depends on it, or a caller waits for it), so only those endings look
for dependents and wake waiters. The status
check admits ``waiting``: on PostgreSQL the constraint is replaced; SQLite cannot alter a
constraint, and rebuilding the task table would fire every reference's ON DELETE action,
so its stored definition is widened in place (SQLite's documented procedure for loosening
a constraint that every existing row already satisfies).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskstore.backends import backend_of
from taskstore.backends.sqlite_ddl import replace_in_table_sql
from taskstore.models.base import UTCDateTime

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASKS = "taskstore_tasks"
CHECK = "ck_taskstore_tasks_status_valid"
_BEFORE = "'assigned', 'cancelled', 'completed', 'created', 'failed', 'not_finished', 'running'"
_AFTER = _BEFORE + ", 'waiting'"
_TASK_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "taskstore_task_deps",
        sa.Column("task_id", _TASK_ID, nullable=False),
        sa.Column("depends_on_id", _TASK_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            [f"{TASKS}.id"],
            name=op.f("fk_taskstore_task_deps_task_id_taskstore_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            [f"{TASKS}.id"],
            name=op.f("fk_taskstore_task_deps_depends_on_id_taskstore_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "depends_on_id", name=op.f("pk_taskstore_task_deps")),
    )
    op.create_index(
        "ix_taskstore_task_deps_depends_on", "taskstore_task_deps", ["depends_on_id", "task_id"]
    )
    op.add_column(
        TASKS,
        sa.Column("watched", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    _status_check(_BEFORE, _AFTER)
    _create_attempts()
    waiting = sa.text("status IN ('waiting')")
    op.create_index(
        "ix_taskstore_tasks_waiting", TASKS, ["id"], postgresql_where=waiting, sqlite_where=waiting
    )


def _create_attempts() -> None:
    op.create_table(
        "taskstore_task_attempts",
        sa.Column("id", _TASK_ID, autoincrement=True, nullable=False),
        sa.Column("task_id", _TASK_ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            [f"{TASKS}.id"],
            name=op.f("fk_taskstore_task_attempts_task_id_taskstore_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_taskstore_task_attempts")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_taskstore_task_attempts_task_id"), "taskstore_task_attempts", ["task_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_taskstore_task_attempts_task_id"), table_name="taskstore_task_attempts")
    op.drop_table("taskstore_task_attempts")
    op.drop_index("ix_taskstore_tasks_waiting", table_name=TASKS)
    op.execute(sa.text("DELETE FROM taskstore_tasks WHERE status = 'waiting'"))
    _status_check(_AFTER, _BEFORE)
    op.drop_column(TASKS, "watched")  # a plain ALTER: a rebuild would fire ON DELETE actions
    op.drop_index("ix_taskstore_task_deps_depends_on", table_name="taskstore_task_deps")
    op.drop_table("taskstore_task_deps")


def _status_check(old: str, new: str) -> None:
    bind = op.get_bind()
    if backend_of(bind).name != "sqlite":
        op.drop_constraint(op.f(CHECK), TASKS, type_="check")
        op.create_check_constraint(op.f(CHECK), TASKS, sa.text("status IN (" + new + ")"))
        return
    replace_in_table_sql(bind, TASKS, "status IN (" + old + ")", "status IN (" + new + ")")
