"""Fixtures shared by the suites that run against the whole system: one stack per session.

One ``Stack`` (real Kafka broker, SMTP sink, six services with SQLite files) runs in the
session's temp folder on free ports below the ephemeral range, so it never clashes with a
``make up`` on the default ports. It is seeded like ``make up`` (admin, rooms, availability, demo
license) and stopped at the end of the session, leaving no process behind. It starts lazily, the
first time a test asks for ``stack`` (``tests/e2e`` and ``tests/security`` do), and both suites
share it: users are unique per test (``signup_and_login``) and nights are handed out by one
``Stays``, so neither suite sees the other's data.

A stack lives from the first test of its suites to the last (``SuiteLifetime``), not to the end
of the session: the suites that share this one run back to back, last, and the chaos and
PostgreSQL e2e suites stop theirs after their own last test, so idle stacks never pile up under
the suites that follow.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from stack.runner import Stack
from stack.smtp_sink import MailRecord, read_mailbox
from stack.testing import running_stack

T = TypeVar("T")

ADMIN_EMAIL = "admin@example.com"  # created by `python -m auth_service seed`
ADMIN_PASSWORD = "admin-password"  # its dev default
DEMO_LICENSE_KEY = "DEMO-0000-0000-0001"
PASSWORD = "correct-horse-battery"
SEEDED_DAYS = 60  # inventory's seed: today (UTC) and the 59 nights after
STACK_TEST_TIMEOUT_S = 300  # per test of a suite using the stack, its start-up included (pytest-timeout)

PROBLEM_JSON = "application/problem+json"

# Settings that make the system answer sooner, not differently.
ENV_OVERRIDES: dict[str, str] = {
    # One user fires many requests (40 concurrent reservations), all clients share one IP.
    "GATEWAY_RATE_LIMIT": "100000/minute",
    # The fault test waits for breakers to let calls through again after a restart.
    **{f"{svc}_BREAKER_RESET_TIMEOUT_S": "2" for svc in ("GATEWAY", "AUTH", "ROOM")},
    # Relays wake on commit anyway; pending mails are picked up sooner.
    **{f"{svc}_OUTBOX_POLL_INTERVAL_S": "0.2" for svc in ("AUTH", "MEMBER", "ROOM")},
    "NOTIFICATION_MAIL_POLL_INTERVAL_S": "0.2",
    # A mail the server refuses for now is retried for 2 s (backoff 0.2 s to 0.5 s), not 4 h.
    "NOTIFICATION_MAIL_RETRY_HORIZON_S": "2",
    "NOTIFICATION_MAIL_BACKOFF_BASE_S": "0.2",
    "NOTIFICATION_MAIL_BACKOFF_CAP_S": "0.5",
    "INVENTORY_REAPER_INTERVAL_S": "1",
    # Dozens of sign-ups and logins: cheap hashes (dev only; prod refuses these values).
    "AUTH_PASSWORD_HASH_TIME_COST": "1",
    "AUTH_PASSWORD_HASH_MEMORY_KIB": "8192",
    # Every client here is 127.0.0.1: its failed logins (bad-input cases included) add up across
    # accounts. The per-pair limit (5) stays, and the throttling cases use addresses of their own.
    "AUTH_LOGIN_ADDRESS_MAX_FAILURES": "100000",
}


# --------------------------------------------------------------------------- polling


def eventually(check: Callable[[], T], what: str, within: float = 10.0, interval: float = 0.1) -> T:
    """Call ``check`` until it returns something truthy (returned) or ``within`` s pass (fails).

    An ``AssertionError`` raised by ``check`` counts as "not yet"; the last one is shown.
    """
    deadline = time.monotonic() + within
    last: str = "it returned nothing truthy"
    while True:
        try:
            result = check()
        except AssertionError as exc:
            last = f"last check failed: {exc}"
        else:
            if result:
                return result
            last = f"last result: {result!r}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what} ({last})")
        time.sleep(interval)


# --------------------------------------------------------------------------- stack lifetimes

TESTS_DIR = Path(__file__).parent


def suite_of(item: pytest.Item | None) -> str | None:
    """The suite (folder under ``tests/``) of a test; ``None`` outside ``tests/``."""
    if item is None:
        return None
    path = Path(str(item.path))
    return path.relative_to(TESTS_DIR).parts[0] if TESTS_DIR in path.parents else None


class SuiteLifetime(contextlib.ExitStack):
    """What some suites' session stack holds open, closed after the last of their tests.

    Session fixtures end with the session; a stack only its suites use would idle (Kafka's JVM,
    six services) under every suite after them. The fixture enters the stack here; a conftest's
    ``pytest_runtest_teardown`` calls ``end_after``, which closes it once the next test belongs
    to another suite. Closing twice is a no-op, so the fixture's own exit stays harmless.
    """

    def __init__(self, suites: Collection[str]) -> None:
        super().__init__()
        self.suites = frozenset(suites)

    def end_after(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if suite_of(item) in self.suites and suite_of(nextitem) not in self.suites:
            self.close()


SHARED_STACK_SUITES = ("bench", "e2e", "security")
SHARED_STACK = SuiteLifetime(SHARED_STACK_SUITES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The suites on the shared stack run back to back, after the others (a stable sort)."""
    items.sort(key=lambda item: suite_of(item) in SHARED_STACK_SUITES)


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down: they may use it
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    SHARED_STACK.end_after(item, nextitem)


# --------------------------------------------------------------------------- the runbook

RUNBOOK = TESTS_DIR.parent / "docs" / "runbook.md"


def runbook_entries() -> dict[str, str]:
    """docs/runbook.md's entries: anchor (its ``## `` heading, slugged as GitHub does) → text."""
    parts = re.split(r"^## (.+)$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    slug = [re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in parts[1::2]]
    return dict(zip(slug, parts[2::2], strict=True))


# --------------------------------------------------------------------------- the stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The running, seeded system; stopped (every process gone) after the last suite using it."""
    with SHARED_STACK:
        yield SHARED_STACK.enter_context(
            # Zipkin (tests/e2e/test_traces.py): its JVM boots beside Kafka's, ~6 s, off the critical path.
            running_stack(tmp_path_factory.mktemp("e2e-stack"), ENV_OVERRIDES, timeout=180, zipkin=True)
        )


@pytest.fixture(scope="session")
def gateway(stack: Stack) -> str:
    """The gateway's base URL: the only door the tests use."""
    return stack.url("gateway")


@pytest.fixture(scope="session")
def client(gateway: str) -> Iterator[httpx.Client]:
    """An HTTP client of the gateway (thread-safe; pooled)."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with httpx.Client(base_url=gateway, timeout=30.0, limits=limits) as http:
        yield http


# --------------------------------------------------------------------------- users


@dataclass
class User:
    """A signed-up, logged-in user."""

    email: str
    password: str
    display_name: str
    user_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        """The ``Authorization`` header."""
        return {"Authorization": f"Bearer {self.token}"}

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        """``auth`` plus an ``Idempotency-Key`` (a fresh one unless given)."""
        return {**self.auth, "Idempotency-Key": idempotency_key or f"e2e-{uuid.uuid4()}"}


def login(client: httpx.Client, email: str, password: str) -> str:
    """An access token (OAuth2 password form at ``/api/v1/auth/token``)."""
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture(scope="session")
def signup_and_login(client: httpx.Client) -> Callable[..., User]:
    """Sign up a new user (unique email) and log in: ``signup_and_login("ann")``."""
    counter = itertools.count(1)

    def make(name: str = "user") -> User:
        email = f"{name}-{next(counter)}-{uuid.uuid4().hex[:8]}@example.com"
        display_name = f"{name.capitalize()} E2E"
        response = client.post(
            "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "display_name": display_name}
        )
        assert response.status_code == 201, response.text
        user_id = response.json()["user_id"]
        return User(email, PASSWORD, display_name, user_id, login(client, email, PASSWORD))

    return make


@pytest.fixture(scope="session")
def new_member(client: httpx.Client, signup_and_login: Callable[..., User]) -> Callable[..., User]:
    """A new user whose member profile exists (``UserRegistered`` consumed): ready to reserve."""

    def make(name: str = "member") -> User:
        user = signup_and_login(name)
        eventually(
            lambda: client.get("/api/v1/members/me", headers=user.auth).status_code == 200,
            f"the member profile of {user.email}",
            within=15,
        )
        return user

    return make


@pytest.fixture(scope="session")
def admin_token(client: httpx.Client, stack: Stack) -> str:
    """An access token of the seeded admin."""
    return login(client, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture(scope="session")
def admin(admin_token: str) -> dict[str, str]:
    """The seeded admin's ``Authorization`` header."""
    return {"Authorization": f"Bearer {admin_token}"}


# --------------------------------------------------------------------------- nights


@dataclass
class Stays:
    """Hands out nights of the seeded window that no other test books (per test: unique)."""

    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    _next: itertools.count[int] = field(default_factory=lambda: itertools.count(2))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, nights: int = 1) -> tuple[str, str]:
        """``(check_in, check_out)`` ISO dates of ``nights`` consecutive unused nights."""
        with self._lock:
            first = next(self._next)
            for _ in range(nights - 1):
                next(self._next)
        if first + nights > SEEDED_DAYS - 1:  # leave the last night: the window moves at midnight
            raise RuntimeError("the tests booked every seeded night: book fewer or shorter stays")
        check_in = self.today + timedelta(days=first)
        return check_in.isoformat(), (check_in + timedelta(days=nights)).isoformat()


@pytest.fixture(scope="session")
def stays(stack: Stack) -> Stays:
    """Nights (from day 2 of the seeded 60-day window on) that only the asking test books."""
    return Stays()


def availability(client: httpx.Client, room_id: str, check_in: str, check_out: str) -> list[dict[str, Any]]:
    """The nights of ``[check_in, check_out)`` as ``GET /api/v1/availability`` lists them."""
    response = client.get(
        "/api/v1/availability", params={"room_id": room_id, "from": check_in, "to": check_out}
    )
    assert response.status_code == 200, response.text
    nights: list[dict[str, Any]] = response.json()["nights"]
    return nights


# --------------------------------------------------------------------------- mail


class Mailbox:
    """The SMTP sink's mailbox file: every mail the system sent, as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[MailRecord]:
        return read_mailbox(self.path)

    def to(self, email: str, subject: str = "") -> list[MailRecord]:
        """Mails sent to ``email`` whose subject starts with ``subject``."""
        wanted = email.lower()
        return [
            mail
            for mail in self.all()
            if wanted in (r.lower() for r in mail["to"]) and mail["subject"].startswith(subject)
        ]

    def wait_for(
        self, email: str, subject: str = "", count: int = 1, within: float = 10.0, contains: str = ""
    ) -> list[MailRecord]:
        """Wait until at least ``count`` such mails (with ``contains`` in the body) arrived."""

        def arrived() -> list[MailRecord]:
            mails = [m for m in self.to(email, subject) if contains in m["body"]]
            return mails if len(mails) >= count else []

        return eventually(arrived, f"{count} mail(s) {subject!r} to {email}", within=within)

    def assert_exactly(
        self, count: int, email: str, subject: str = "", contains: str = "", settle: float = 1.5
    ) -> list[MailRecord]:
        """Wait for ``count`` such mails, give a duplicate ``settle`` s to show up, then check."""
        self.wait_for(email, subject, count=count, contains=contains)
        time.sleep(settle)
        mails = [m for m in self.to(email, subject) if contains in m["body"]]
        assert len(mails) == count, [m["subject"] for m in mails]
        return mails


@pytest.fixture(scope="session")
def mailbox(stack: Stack) -> Mailbox:
    """Reader of the mails the SMTP sink received."""
    return Mailbox(stack.mailbox_path)
