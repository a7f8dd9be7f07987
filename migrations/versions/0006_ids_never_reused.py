"""Ids are never reused: AUTOINCREMENT on SQLite's task, transcript and caption tables.

Without it SQLite hands out max(id) + 1, so once a purge removed the newest tasks their ids
came back and `taskstore show ID` showed a different task. PostgreSQL's sequences never go
back: this revision does nothing there.

SQLite cannot add AUTOINCREMENT to a table, so each table is rebuilt (batch mode). The task
table's indexes are dropped first and recreated exactly as they were (partial and
descending ones included, which a rebuild from reflection would not keep). Dropping the old
task table fires the ON DELETE action of every row that references it (foreign keys are
enforced, and cannot be switched off inside the migration's transaction), so those
references, in any table, are set aside before the rebuild and put back after it. The id
counter starts above every task id still referenced anywhere (a periodic tick, a result),
so not even an id that only survives there is handed out again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from taskstore.backends import backend_of

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASKS = "taskstore_tasks"
RESULTS = ("transcript", "caption")
_CLAIMABLE = "status IN ('created', 'not_finished')"
_ORPHANED = "status IN ('not_finished') AND worker_id IS NULL"
_LEASED = "status IN ('assigned', 'running')"
_LIVE_DEDUP = (
    "dedup_key IS NOT NULL AND status IN ('assigned', 'created', 'not_finished', 'running')"
)
_FINISHED = "status IN ('cancelled', 'completed', 'failed')"
_CLAIM_ORDER = ["queue", sa.literal_column("priority DESC"), "run_at", "id"]
#: The task table's indexes at revision 0005: (name, columns, unique, partial predicate).
INDEXES: tuple[tuple[str, list[Any], bool, str], ...] = (
    ("ix_taskstore_tasks_claim", _CLAIM_ORDER, False, _CLAIMABLE),
    ("ix_taskstore_tasks_orphaned", _CLAIM_ORDER, False, _ORPHANED),
    ("ix_taskstore_tasks_worker", ["worker_id"], False, _LEASED),
    ("uq_taskstore_tasks_dedup_key", ["dedup_key"], True, _LIVE_DEDUP),
    ("ix_taskstore_tasks_finished", ["finished_at"], False, _FINISHED),
)
_REFS = sa.table(
    "_taskstore_task_refs",
    sa.column("tbl", sa.Text),
    sa.column("col", sa.Text),
    sa.column("rid", sa.Integer),
    sa.column("task_id", sa.Integer),
)


def upgrade() -> None:
    if backend_of(op.get_bind()).name == "sqlite":
        _rebuild(autoincrement=True)
        _counter_above_referenced_ids()


def downgrade() -> None:
    if backend_of(op.get_bind()).name == "sqlite":
        _rebuild(autoincrement=False)


def _rebuild(*, autoincrement: bool) -> None:
    for name in RESULTS:
        _recreate(name, autoincrement)
    references = _referencing_columns()
    _set_aside(references)
    for name, *_ in INDEXES:
        op.drop_index(name, table_name=TASKS)
    _recreate(TASKS, autoincrement)
    for name, columns, unique, where in INDEXES:
        predicate = sa.text(where)
        op.create_index(
            name, TASKS, columns, unique=unique, sqlite_where=predicate, postgresql_where=predicate
        )
    _put_back(references)


def _recreate(table: str, autoincrement: bool) -> None:
    with op.batch_alter_table(
        table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def _referencing_columns() -> list[tuple[str, str]]:
    """(table, column) of every foreign key, in any table, that references a task id."""
    rows = op.get_bind().execute(
        sa.text(
            'SELECT m.name, f."from" FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f '
            "WHERE m.type = 'table' AND f.\"table\" = :tasks"
        ),
        {"tasks": TASKS},
    )
    return [(table, column) for table, column in rows]


def _set_aside(references: list[tuple[str, str]]) -> None:
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "CREATE TEMP TABLE _taskstore_task_refs "
            "(tbl TEXT NOT NULL, col TEXT NOT NULL, rid INTEGER NOT NULL, task_id INTEGER)"
        )
    )
    for table, column in references:
        child = sa.table(table, sa.column(column), sa.column("rowid"))
        kept = sa.select(
            sa.literal(table), sa.literal(column), child.c.rowid, child.c[column]
        ).where(child.c[column].is_not(None))
        bind.execute(sa.insert(_REFS).from_select(["tbl", "col", "rid", "task_id"], kept))
        bind.execute(sa.update(child).where(child.c[column].is_not(None)).values({column: None}))


def _put_back(references: list[tuple[str, str]]) -> None:
    bind = op.get_bind()
    for table, column in references:
        child = sa.table(table, sa.column(column), sa.column("rowid"))
        mine = (_REFS.c.tbl == table) & (_REFS.c.col == column)
        saved = (
            sa.select(_REFS.c.task_id)
            .where(mine & (_REFS.c.rid == child.c.rowid))
            .scalar_subquery()
        )
        rows = sa.select(_REFS.c.rid).where(mine)
        bind.execute(sa.update(child).where(child.c.rowid.in_(rows)).values({column: saved}))
    bind.execute(sa.text("DROP TABLE temp._taskstore_task_refs"))


def _counter_above_referenced_ids() -> None:
    """AUTOINCREMENT starts after the largest id in the table; start it after every task id
    still named anywhere (a tick's task, a result's task) instead."""
    bind = op.get_bind()
    tables = ["taskstore_periodic_ticks", "media", *RESULTS]
    highest = [sa.select(sa.func.max(sa.table(t, sa.column("task_id")).c.task_id)) for t in tables]
    top = bind.execute(sa.select(sa.func.max(sa.union_all(*highest).subquery().c[0]))).scalar()
    current = bind.execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = :tasks"), {"tasks": TASKS}
    ).scalar()
    if top is None or (current is not None and current >= top):
        return
    if current is None:
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:tasks, :top)"),
            {"tasks": TASKS, "top": top},
        )
    else:
        bind.execute(
            sa.text("UPDATE sqlite_sequence SET seq = :top WHERE name = :tasks"),
            {"tasks": TASKS, "top": top},
        )
