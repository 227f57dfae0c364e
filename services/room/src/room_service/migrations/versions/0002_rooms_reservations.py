"""Rooms, reservations and idempotency keys.

Revision ID: room_0002
Revises: room_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.idempotency import create_idempotency_table, drop_idempotency_table

revision: str = "room_0002"
down_revision: str | None = "room_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("room_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("nightly_rate", sa.Integer(), nullable=False),
    )
    op.create_table(
        "reservations",
        sa.Column("reservation_id", sa.String(36), primary_key=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("room_id", sa.String(32), sa.ForeignKey("rooms.room_id"), nullable=False),
        sa.Column("check_in", sa.Date(), nullable=False),
        sa.Column("check_out", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("check_out > check_in", name="ck_reservations_dates"),
        sa.CheckConstraint("status IN ('confirmed', 'cancelled')", name="ck_reservations_status"),
    )
    op.create_index("ix_reservations_member_created", "reservations", ["member_id", "created_at"])
    create_idempotency_table(op)


def downgrade() -> None:
    drop_idempotency_table(op)
    op.drop_index("ix_reservations_member_created", table_name="reservations")
    op.drop_table("reservations")
    op.drop_table("rooms")
