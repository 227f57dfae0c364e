"""The trace of the event that queued a mail: notifications.traceparent (the SMTP send's parent).

Revision ID: notification_0004
Revises: notification_0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notification_0004"
down_revision: str | None = "notification_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: mails queued before this revision (or outside any trace) send in a trace of their own.
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("traceparent")
