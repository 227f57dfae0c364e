"""Fixtures for the auth integration tests: a migrated database (SQLite and PostgreSQL: the root
``new_database``), the app in-process with its outbox relay on the session's real Kafka broker,
and helpers that speak the HTTP API."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

import auth_service
from auth_service.app import create_app
from auth_service.seed import seed
from auth_service.settings import AuthSettings
from common.messaging import AvroCodec, Envelope, topic_for
from common.testing.apps import migrated, running
from common.testing.events import start_groups_at_end

MIGRATIONS = Path(auth_service.__file__).parent / "migrations"
NewDatabase = Callable[[str], str]  # the root conftest's new_database
PASSWORD = "correct horse battery"


def make_settings(tmp_path: Path, database_url: str, kafka_bootstrap: str = "127.0.0.1:1") -> AuthSettings:
    """Settings with every file in ``tmp_path`` (never the repository's .run folder)."""
    return AuthSettings(
        env="test",
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        service_keys_dir=tmp_path / "keys",
        user_token_keys_dir=tmp_path / "keys" / "user-tokens",
        outbox_poll_interval_s=0.2,
        # Cheap hashing keeps the suite fast; the cost doesn't change what the tests prove.
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
    )


@pytest.fixture
def settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, new_database: NewDatabase
) -> AuthSettings:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    return migrated(make_settings(tmp_path, new_database("auth"), kafka_bootstrap), MIGRATIONS)


@dataclass
class User:
    user_id: str
    email: str
    password: str
    headers: dict[str, str]


class AuthApi:
    """The auth HTTP API as a test drives it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def signup(
        self, email: str | None = None, password: str = PASSWORD, name: str = "Ann"
    ) -> httpx.Response:
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "password": password, "display_name": name}
        return await self.client.post("/api/v1/auth/signup", json=body)

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.client.post("/api/v1/auth/token", data={"username": email, "password": password})

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    async def new_user(self) -> User:
        """A signed-up, logged-in member."""
        created = await self.signup()
        assert created.status_code == 201, created.text
        email = created.json()["email"]
        tokens = await self.login(email)
        assert tokens.status_code == 200, tokens.text
        return User(created.json()["user_id"], email, PASSWORD, bearer(tokens.json()["access_token"]))


def subject(access_token: str) -> str:
    """The token's ``sub`` (read without verifying: tests that verify do it explicitly)."""
    return str(jwt.decode(access_token, options={"verify_signature": False})["sub"])


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


@pytest.fixture
async def client(settings: AuthSettings, kafka_bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    # Auth's consumer (MemberUpdated) starts at the end: it sees only what this test publishes.
    start_groups_at_end(kafka_bootstrap, {"auth.members": [topic_for("MemberUpdated")]})
    async with running(create_app, settings) as client:
        yield client


@pytest.fixture
def api(client: httpx.AsyncClient) -> AuthApi:
    return AuthApi(client)


@pytest.fixture
async def admin(settings: AuthSettings, api: AuthApi) -> User:
    """The seeded admin, logged in."""
    seed(settings)
    password = settings.admin_password.get_secret_value()
    tokens = await api.login(settings.admin_email, password)
    assert tokens.status_code == 200, tokens.text
    access_token = tokens.json()["access_token"]
    return User(subject(access_token), settings.admin_email, password, bearer(access_token))


def wait_for_event(
    bootstrap: str, event_type: str, topic: str, key: str, timeout: float = 30.0
) -> tuple[Envelope, dict[str, Any]]:
    """The first ``event_type`` record keyed ``key`` on ``topic``, decoded; fails after ``timeout``."""
    codec = AvroCodec.from_contracts()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    deadline = time.monotonic() + timeout
    try:
        partitions = None
        while not partitions:  # the relay creates the topic when it starts
            assert time.monotonic() < deadline, f"topic {topic} never appeared"
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                for record in batch:
                    envelope = Envelope.from_headers(record.headers, record.key)
                    if envelope.key == key and envelope.event_type == event_type:
                        _, _, payload = codec.decode(record.value, envelope.schema_fingerprint)
                        return envelope, payload
        raise AssertionError(f"no {event_type} keyed {key} on {topic} within {timeout}s")
    finally:
        consumer.close(autocommit=False)
