"""A claim counter that fences a worker's writes.

The fence of a worker's writes was (worker, attempts), and an operator retry sets attempts
back to 0. So a cancelled attempt that was still running when its task was retried, and
claimed again by the same worker, had the fence of the new attempt: its result was taken
for the new attempt's, and the new attempt's completion was refused. `claims` counts every
claim and is never set back; the fence is (worker, claims). `attempts` keeps its meaning
(the budget `max_attempts` counts), so workers of the previous release, which do not know
this column, run beside new ones during a rolling deploy.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASKS = "taskstore_tasks"


def upgrade() -> None:
    op.add_column(
        TASKS, sa.Column("claims", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )


def downgrade() -> None:
    op.drop_column(TASKS, "claims")  # a plain ALTER: a rebuild would fire ON DELETE actions
