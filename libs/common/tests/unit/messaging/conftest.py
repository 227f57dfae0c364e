"""Fixtures for the messaging unit tests: the real contracts, a throwaway database (SQLite and
PostgreSQL: ``new_database`` runs each test on both)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import MetaData

from common.db import Database
from common.messaging import MessagingTables, messaging_tables

AT = datetime(2025, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)

VALID_PAYLOADS: dict[str, dict[str, Any]] = {
    "UserRegistered": {
        "user_id": "u-1",
        "email": "ada@example.org",
        "display_name": "Ada",
        "registered_at": AT,
    },
    "LicenseActivated": {
        "activation_id": "a-1",
        "license_id": "l-1",
        "user_id": "u-1",
        "machine_id": "m-1",
        "product": "studio",
        "activated_at": AT,
    },
    "MemberUpdated": {
        "member_id": "u-1",
        "version": 7,
        "email": "ada@example.org",
        "display_name": "Ada",
        "tier": "gold",
        "status": "active",
        "updated_at": AT,
    },
    "ReservationCreated": {
        "reservation_id": "r-1",
        "member_id": "u-1",
        "room_id": "room-101",
        "check_in": date(2025, 4, 1),
        "check_out": date(2025, 4, 3),
        "nights": 2,
        "created_at": AT,
    },
    "ReservationCancelled": {
        "reservation_id": "r-1",
        "member_id": "u-1",
        "room_id": "room-101",
        "check_in": date(2025, 4, 1),
        "check_out": date(2025, 4, 3),
        "cancelled_at": AT,
    },
}


@pytest.fixture
def payloads() -> dict[str, dict[str, Any]]:
    return {name: dict(payload) for name, payload in VALID_PAYLOADS.items()}


@pytest.fixture
def store(new_database) -> Iterator[tuple[Database, MessagingTables]]:
    """A fresh database with the messaging tables on a service-like metadata."""
    metadata = MetaData()
    tables = messaging_tables(metadata)
    db = Database(new_database("service"))
    metadata.create_all(db.engine)
    yield db, tables
    db.dispose()
