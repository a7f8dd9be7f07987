"""Rate slots made as starts need them, and an index that finds the free ones.

A queue with a rate of N per PERIOD had N slot rows from the moment the rate was set, and
a claim asked for its free slots in (last use, slot) order, which sorted all N rows on
every claim: with a rate of 1,000,000/1s, setting it took seconds and a drain ran 25 times
slower than without a limit. Slots are now made as starts first need them (never more than
N), so every slot has a last use; a claim reads the longest rested from this index and
stops at as many as it needs. The never-used slots go. (After a downgrade, setting the
rate again makes them.)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_taskstore_rate_slots_free"
SLOTS = "taskstore_rate_slots"


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM taskstore_rate_slots WHERE used_at IS NULL"))
    op.create_index(NAME, SLOTS, ["queue", "used_at", "slot"], unique=False)


def downgrade() -> None:
    op.drop_index(NAME, table_name=SLOTS)
