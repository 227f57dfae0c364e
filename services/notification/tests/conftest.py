"""Fixtures of the notification tests: a migrated database, the app in-process with its real
Kafka consumers and mail sender, a real SMTP sink, user tokens, and a producer that publishes
events as the other services would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

import notification_service
from common.db import Database
from common.messaging import topic_for
from common.testing.apps import migrated, running
from common.testing.events import start_groups_at_end
from common.testing.tokens import TestUsers
from notification_service.app import create_app
from notification_service.settings import NotificationSettings
from stack.ports import free_port_block
from stack.smtp_sink import MailRecord, SmtpSink

MIGRATIONS = Path(notification_service.__file__).parent / "migrations"
# The service's consumer groups and their topics (as wired in bootstrap.py).
GROUPS = {
    "notification.users": [topic_for("UserRegistered")],
    "notification.members": [topic_for("MemberUpdated")],
    "notification.reservations": [topic_for("ReservationCreated")],
    "notification.licenses": [topic_for("LicenseActivated")],
}

StartApp = Callable[[NotificationSettings], AbstractAsyncContextManager[httpx.AsyncClient]]


def mails_to(sink: SmtpSink, address: str) -> list[MailRecord]:
    return [mail for mail in sink.messages if mail["to"] == [address]]


def consumer_metric(name: str, group: str, topic: str) -> float:
    labels = {"service": "notification", "consumer": group, "topic": topic}
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
    new_database: Callable[[str], str],
) -> NotificationSettings:
    """Settings with quick mail retries; SMTP points at a free port (``sink`` listens there).

    The database: a migrated one of each engine (the root ``new_database``).
    """
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    return migrated(
        NotificationSettings(
            env="test",
            database_url=new_database("notification"),
            kafka_bootstrap_servers=kafka_bootstrap,
            service_keys_dir=tmp_path / "keys",
            smtp_port=free_port_block(1),
            smtp_timeout_s=5.0,
            mail_poll_interval_s=0.1,
            mail_backoff_base_s=0.1,
            mail_backoff_cap_s=0.5,
            mail_retry_horizon_s=60.0,  # scaled down from hours: room for a test to bring SMTP up
        ),
        MIGRATIONS,
    )


@pytest.fixture
def sink(settings: NotificationSettings, tmp_path: Path) -> Iterator[SmtpSink]:
    """The SMTP sink, listening where the app sends mail."""
    with SmtpSink(port=settings.smtp_port, mailbox=tmp_path / "mailbox.jsonl") as smtp:
        yield smtp


@pytest.fixture
def db(settings: NotificationSettings) -> Iterator[Database]:
    """The service's database, for inspecting what the API doesn't show."""
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def users() -> TestUsers:
    return TestUsers()


@pytest.fixture
def start(users: TestUsers, kafka_bootstrap: str) -> StartApp:
    """Run the app (consumers, mail sender) with the given settings, trusting ``users``' tokens."""

    @asynccontextmanager
    async def _start(settings: NotificationSettings) -> AsyncIterator[httpx.AsyncClient]:
        start_groups_at_end(kafka_bootstrap, GROUPS)
        async with running(create_app, settings, prepare=users.trust) as http:
            yield http

    return _start


@pytest.fixture
async def client(start: StartApp, settings: NotificationSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with start(settings) as http:
        yield http
