"""Fixtures of the member tests: a migrated database, the app in-process with its real Kafka
consumers, user tokens, and a producer that publishes events as the other services would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

import member_service
from common.db import Database
from common.messaging import topic_for
from common.testing.apps import migrated, running
from common.testing.events import start_groups_at_end
from common.testing.tokens import TestUsers
from member_service.app import create_app
from member_service.settings import MemberSettings

MIGRATIONS = Path(member_service.__file__).parent / "migrations"
# The service's consumer groups and their topics (as wired in bootstrap.py).
GROUPS = {
    "member.profiles": [topic_for("UserRegistered")],
    "member.history": [topic_for("ReservationCreated"), topic_for("LicenseActivated")],
}


@pytest.fixture
def settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
    new_database: Callable[[str], str],
) -> MemberSettings:
    """A migrated database of each engine (the root ``new_database``: [sqlite] and [postgres])."""
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    return migrated(
        MemberSettings(
            env="test",
            database_url=new_database("member"),
            kafka_bootstrap_servers=kafka_bootstrap,
            service_keys_dir=tmp_path / "keys",
            outbox_poll_interval_s=0.2,
        ),
        MIGRATIONS,
    )


@pytest.fixture
def db(settings: MemberSettings) -> Iterator[Database]:
    """The service's database, for arranging and inspecting what the API doesn't show."""
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def users() -> TestUsers:
    return TestUsers()


@pytest.fixture
async def client(
    settings: MemberSettings, users: TestUsers, kafka_bootstrap: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The member app, running (consumers, relay) and trusting ``users``' tokens."""
    start_groups_at_end(kafka_bootstrap, GROUPS)
    async with running(create_app, settings, prepare=users.trust) as http:
        yield http
