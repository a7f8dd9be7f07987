"""Tasks carry their producer's trace context (a W3C ``traceparent``), so each attempt's
span continues the enqueuer's trace (OpenTelemetry, the ``otel`` extra).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("taskstore_tasks", sa.Column("trace_context", sa.String(512), nullable=True))


def downgrade() -> None:
    op.drop_column(
        "taskstore_tasks", "trace_context"
    )  # a plain ALTER: a rebuild would fire ON DELETE actions
