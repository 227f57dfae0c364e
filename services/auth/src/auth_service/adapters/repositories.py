"""Queries over the auth tables, each inside the caller's session (the unit of work)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from auth_service.adapters.orm import Activation, License, RefreshToken, User
from common.pagination import Page, PageRequest, keyset, page_of


def user_by_id(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def user_by_email(session: Session, email: str) -> User | None:
    """The user with this (already normalized) email."""
    return session.scalar(select(User).where(User.email == email))


def refresh_token_by_hash(session: Session, token_hash: str) -> RefreshToken | None:
    return session.get(RefreshToken, token_hash)


def revoke_family(session: Session, family_id: str, now: datetime) -> None:
    """Revoke every token of the family that isn't revoked yet."""
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_families_of_user(session: Session, user_id: str, now: datetime) -> int:
    """Revoke every live refresh token of the user (all their sessions); how many were revoked."""
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def license_by_key_for_update(session: Session, license_key: str) -> License | None:
    """The license, locked until the transaction ends so seat checks on it run one at a time.

    PostgreSQL takes a row lock (``FOR UPDATE``); SQLite has no row locks but needs none:
    its write transactions (``BEGIN IMMEDIATE``) already run one at a time.
    """
    return session.scalar(select(License).where(License.license_key == license_key).with_for_update())


def license_exists(session: Session, license_key: str) -> bool:
    return session.scalar(select(License.license_id).where(License.license_key == license_key)) is not None


def activation_for_machine(session: Session, license_id: str, machine_id: str) -> Activation | None:
    return session.scalar(
        select(Activation).where(Activation.license_id == license_id, Activation.machine_id == machine_id)
    )


def seats_used(session: Session, license_id: str) -> int:
    query = select(func.count()).select_from(Activation).where(Activation.license_id == license_id)
    return int(session.scalar(query) or 0)


def activations_of_user(
    session: Session, user_id: str, page: PageRequest
) -> Page[tuple[Activation, License, int]]:
    """One page of the user's activations (oldest first), each with its license and that
    license's seats used."""
    used = (
        select(Activation.license_id, func.count().label("used")).group_by(Activation.license_id).subquery()
    )
    statement = (
        select(Activation, License, used.c.used)
        .join(License, License.license_id == Activation.license_id)
        .join(used, used.c.license_id == Activation.license_id)
        .where(Activation.user_id == user_id)
    )
    rows = session.execute(
        keyset(statement, Activation.activated_at, Activation.activation_id, page, newest_first=False)
    )
    found = [(activation, license_, int(count)) for activation, license_, count in rows]
    return page_of(found, page, lambda row: (row[0].activated_at, row[0].activation_id))
