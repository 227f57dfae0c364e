"""The auth service's tables: its own metadata, its own database.

Migration ``0002`` creates the same tables by hand; a test compares the two so they can't drift.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from auth_service.domain.users import AccountStatus
from common.db import UtcDateTime
from common.messaging import messaging_tables


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Normalized (lower-case), so the unique constraint makes emails unique case-insensitively.
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Member's word on the account (MemberUpdated): "active" or "suspended", and the version of
    # the member profile it came from, so an older event arriving late changes nothing.
    status: Mapped[str] = mapped_column(
        String(16), default=AccountStatus.ACTIVE.value, server_default=AccountStatus.ACTIVE.value
    )
    status_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (UniqueConstraint("email", name="uq_users_email"),)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    # SHA-256 of the token: the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship()

    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)


class License(Base):
    __tablename__ = "licenses"

    license_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    license_key: Mapped[str] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(100))
    seats: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(36))

    __table_args__ = (UniqueConstraint("license_key", name="uq_licenses_license_key"),)


class Activation(Base):
    __tablename__ = "activations"

    activation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.license_id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"))
    machine_id: Mapped[str] = mapped_column(String(128))
    activated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        # One seat per machine per license, whatever the application code does.
        UniqueConstraint("license_id", "machine_id", name="uq_activations_license_machine"),
        Index("ix_activations_user_id", "user_id"),
    )


metadata = Base.metadata
messaging = messaging_tables(metadata)
