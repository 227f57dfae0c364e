"""Availability per room per night, and holds.

Revision ID: inventory_0002
Revises: inventory_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "inventory_0002"
down_revision: str | None = "inventory_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "availability",
        sa.Column("room_id", sa.String(50), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("booked", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("room_id", "night", name="pk_availability"),
        sa.CheckConstraint("capacity >= 0", name="ck_availability_capacity"),
        sa.CheckConstraint("held >= 0 AND booked >= 0", name="ck_availability_non_negative"),
        sa.CheckConstraint("held + booked <= capacity", name="ck_availability_within_capacity"),
    )
    op.create_table(
        "holds",
        sa.Column("reservation_id", sa.String(64), nullable=False),
        sa.Column("room_id", sa.String(50), nullable=False),
        sa.Column("check_in", sa.Date(), nullable=False),
        sa.Column("check_out", sa.Date(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reservation_id", name="pk_holds"),
        sa.CheckConstraint("check_out > check_in", name="ck_holds_dates"),
    )
    op.create_index("ix_holds_status_expires_at", "holds", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_holds_status_expires_at", table_name="holds")
    op.drop_table("holds")
    op.drop_table("availability")
