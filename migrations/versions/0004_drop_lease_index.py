"""Drop the lease-expiry index: the rescuer scans the (small) leased-rows index instead.

Every claim inserted into both partial indexes over leased rows; one is enough, and the
claim is measurably cheaper (about a quarter of its statement time on a fresh table).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEASED = sa.text("status IN ('assigned', 'running')")


def upgrade() -> None:
    op.drop_index("ix_taskstore_tasks_lease", table_name="taskstore_tasks")


def downgrade() -> None:
    op.create_index(
        "ix_taskstore_tasks_lease",
        "taskstore_tasks",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=_LEASED,
        sqlite_where=_LEASED,
    )
