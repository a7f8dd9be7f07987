"""Attempt numbers that an operator retry does not reuse.

A retry used to set `attempts` back to 0, and the fence of a worker's writes is (worker,
attempt). So a cancelled attempt that was still running when its task was retried, and
claimed again by the same worker, had the fence of the new attempt: its result was taken
for the new attempt's, and the new attempt's completion was refused.
`attempts` now only grows; `attempts_before_retry` records where the last retry left it,
and the retry's fresh budget of `max_attempts` counts from there.

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
COLUMN = "attempts_before_retry"


def upgrade() -> None:
    op.add_column(
        TASKS, sa.Column(COLUMN, sa.Integer(), server_default=sa.text("0"), nullable=False)
    )


def downgrade() -> None:
    # The older code counts the budget from 0: give it the attempts since the last retry.
    op.execute(
        sa.text(
            "UPDATE taskstore_tasks SET attempts = attempts - attempts_before_retry"
            " WHERE attempts_before_retry > 0"
        )
    )
    op.drop_column(TASKS, COLUMN)  # a plain ALTER: a rebuild would fire ON DELETE actions
