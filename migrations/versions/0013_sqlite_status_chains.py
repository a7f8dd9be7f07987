"""SQLite: status lists of more than two values tested as chains of equalities.

SQLite evaluates the task table's CHECK and each partial index's predicate for the old and
the new row of every UPDATE that changes ``status`` (every claim and every completion), and
runs an IN list of more than two constants as a small temporary b-tree that it clears and
fills again at each evaluation. The CHECK (eight statuses), the dedup index (four) and the
finished-rows index (three) cost a claim and a completion about 40 % of SQLite's work. Here
each becomes ``(status = 'a' OR status = 'b' OR ...)``: the same set of statuses, tested
by a few comparisons. The queries that must match those indexes say the same (see
`taskstore.models.status_sql`).

The CHECK is rewritten in place (SQLite cannot alter a constraint, and rebuilding the task
table would fire every reference's ON DELETE action), by the documented procedure that
0010 uses too: every existing row satisfies the new text, which admits exactly what the
old one did. The two indexes are dropped and created again. PostgreSQL keeps its IN lists:
this revision does nothing there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from taskstore.backends import backend_of
from taskstore.backends.sqlite_ddl import replace_in_table_sql

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASKS = "taskstore_tasks"
ALL = ("assigned", "cancelled", "completed", "created", "failed", "not_finished", "running")
ALL += ("waiting",)
ACTIVE = ("assigned", "created", "not_finished", "running")
FINISHED = ("cancelled", "completed", "failed")


def _in_list(statuses: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join("'" + s + "'" for s in statuses) + ")"


def _chain(statuses: tuple[str, ...]) -> str:
    return "(" + " OR ".join("status = '" + s + "'" for s in statuses) + ")"


def upgrade() -> None:
    if backend_of(op.get_bind()).name == "sqlite":
        _rewrite(_in_list, _chain)


def downgrade() -> None:
    if backend_of(op.get_bind()).name == "sqlite":
        _rewrite(_chain, _in_list)


def _rewrite(old: Callable[[tuple[str, ...]], str], new: Callable[[tuple[str, ...]], str]) -> None:
    replace_in_table_sql(op.get_bind(), TASKS, old(ALL), new(ALL))
    op.drop_index("uq_taskstore_tasks_dedup_key", table_name=TASKS)
    op.drop_index("ix_taskstore_tasks_finished", table_name=TASKS)
    op.create_index(
        "uq_taskstore_tasks_dedup_key",
        TASKS,
        ["dedup_key"],
        unique=True,
        sqlite_where=sa.text("dedup_key IS NOT NULL AND " + new(ACTIVE)),
    )
    op.create_index(
        "ix_taskstore_tasks_finished",
        TASKS,
        ["finished_at"],
        sqlite_where=sa.text(new(FINISHED)),
    )
