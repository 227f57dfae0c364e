"""The chaos suite: faults switched on in a real, running system, and the outcome proven.

The suite starts its own stack (real Kafka, SMTP sink, six services, SQLite files) on free
ports, separate from the e2e suite's, because it kills brokers, freezes processes and crashes
relays. Each scenario drives real traffic through the gateway, injects one fault, lifts it,
waits until the system has settled (outboxes empty, consumer groups caught up, no mail waiting),
then audits every database and the mailbox (``ledger.py``): 0 lost, 0 doubled, 0 orphaned, and a
bounded recovery time. Results go to ``<RUN_DIR>/results/chaos.json`` and a table at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.kafka import default_run_dir
from stack.runner import Stack
from stack.testing import running_stack
from tests.conftest import SuiteLifetime, runbook_entries

from .ledger import Audit, Booking, Ledger, poll

CHAOS_TIMEOUT_S = 420  # per scenario, the stack's start included
PASSWORD = "correct-horse-battery"
ADMIN = ("admin@example.com", "admin-password")  # seeded by `python -m auth_service seed` in dev

# Settings that make the system answer sooner, never differently (docs/patterns say which).
CHAOS_ENV: dict[str, str] = {
    "GATEWAY_RATE_LIMIT": "100000/minute",
    **{f"{svc}_BREAKER_RESET_TIMEOUT_S": "2" for svc in ("GATEWAY", "AUTH", "ROOM")},
    **{f"{svc}_OUTBOX_POLL_INTERVAL_S": "0.2" for svc in ("AUTH", "MEMBER", "ROOM")},
    "NOTIFICATION_MAIL_POLL_INTERVAL_S": "0.2",
    # Mail backoff scaled down (base 0.5 s, cap 2 s) so an outage of tens of seconds spans many
    # attempts; the horizon (how long a mail is retried) stays far beyond any outage here.
    "NOTIFICATION_MAIL_BACKOFF_BASE_S": "0.5",
    "NOTIFICATION_MAIL_BACKOFF_CAP_S": "2",
    # A mail claimed by a process that was killed before it sent is sent again after its lease:
    # 10 s here (a whole send is bounded by 3 x the 3 s SMTP timeout), 5 minutes by default.
    "NOTIFICATION_SMTP_TIMEOUT_S": "3",
    "NOTIFICATION_MAIL_SEND_LEASE_S": "10",
    "INVENTORY_REAPER_INTERVAL_S": "1",
    "AUTH_PASSWORD_HASH_TIME_COST": "1",
    "AUTH_PASSWORD_HASH_MEMORY_KIB": "8192",
}
ROOMS = {"r101": 2, "r102": 2, "r103": 2, "r104": 2}  # units per night, as seeded; r105 (1) is the burst's
SEEDED_DAYS = 60


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.timeout(CHAOS_TIMEOUT_S))


# --------------------------------------------------------------------------- results


@dataclass
class ScenarioResult:
    """One row of the results file."""

    scenario: str
    lab: str
    runbook: list[str]  # the docs/runbook.md entries this scenario exercises
    lost: int
    doubled: int
    orphaned: int
    recovery_s: float
    bound_s: float
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


_RESULTS: list[ScenarioResult] = []


def _results_path() -> Path:
    run_dir = os.environ.get("RUN_DIR")
    base = Path(run_dir) if run_dir else default_run_dir()
    return base / "results" / "chaos.json"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    path = _results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"written_at": datetime.now(UTC).isoformat(), "scenarios": [asdict(r) for r in _RESULTS]},
            indent=2,
        )
        + "\n"
    )
    write = terminalreporter.write_line
    write("")
    write(f"chaos: {len(_RESULTS)} scenarios (results in {path})")
    write(f"  {'scenario':<52} {'lost':>4} {'doubled':>7} {'orphaned':>8} {'recovery':>9}  lab")
    for r in _RESULTS:
        write(f"  {r.scenario:<52} {r.lost:>4} {r.doubled:>7} {r.orphaned:>8} {r.recovery_s:>8.1f}s  {r.lab}")


# --------------------------------------------------------------------------- the stack


LIFETIME = SuiteLifetime({"chaos"})


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The chaos suite's own running, seeded system; stopped after the suite's last test."""
    with LIFETIME:
        yield LIFETIME.enter_context(
            running_stack(tmp_path_factory.mktemp("chaos-stack"), CHAOS_ENV, timeout=240)
        )


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    LIFETIME.end_after(item, nextitem)


@dataclass
class User:
    email: str
    member_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Slots:
    """Hands out (room, night) units that no other scenario books."""

    def __init__(self) -> None:
        today = datetime.now(UTC).date()
        # Day 2 onwards (never today: the window moves at midnight), the last night left alone.
        self._free = iter(
            (room, today + timedelta(days=day))
            for day in range(2, SEEDED_DAYS - 1)
            for room, units in ROOMS.items()
            for _ in range(units)
        )
        self._burst_nights = itertools.count(2)
        self._lock = threading.Lock()

    def take(self) -> tuple[str, date]:
        with self._lock:
            return next(self._free)

    def last_unit(self) -> date:
        """A night of r105 (one unit) that no other scenario books."""
        with self._lock:
            return datetime.now(UTC).date() + timedelta(days=next(self._burst_nights))


class World:
    """The handles a scenario uses: the gateway, users, faults, the ledger, the results file."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        limits = httpx.Limits(max_connections=80, max_keepalive_connections=80)
        self.http = httpx.Client(base_url=stack.url("gateway"), timeout=60.0, limits=limits)
        self.ledger = Ledger(stack)
        self.slots = Slots()
        self._admin: str | None = None

    def close(self) -> None:
        self.http.close()
        self.ledger.close()

    # -- users ---------------------------------------------------------------------------

    def login(self, email: str, password: str = PASSWORD) -> str:
        response = self.http.post("/api/v1/auth/token", data={"username": email, "password": password})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def member(self, name: str) -> User:
        """A new user whose member profile exists (ready to reserve)."""
        email = f"{name}-{uuid.uuid4().hex[:10]}@example.com"
        made = self.http.post(
            "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "display_name": name.title()}
        )
        assert made.status_code == 201, made.text
        user = User(email, made.json()["user_id"], self.login(email))
        poll(
            lambda: self.http.get("/api/v1/members/me", headers=user.auth).status_code == 200,
            f"the member profile of {email}",
            within=60,
        )
        return user

    @property
    def admin(self) -> dict[str, str]:
        if self._admin is None:
            self._admin = self.login(*ADMIN)
        return {"Authorization": f"Bearer {self._admin}"}

    # -- reservations ----------------------------------------------------------------------

    def reserve(
        self, user: User, key: str, room: str | None = None, night: date | None = None
    ) -> tuple[httpx.Response, dict[str, Any]]:
        if room is None or night is None:
            room, night = self.slots.take()
        body = {
            "room_id": room,
            "check_in": night.isoformat(),
            "check_out": (night + timedelta(days=1)).isoformat(),
        }
        headers = {**user.auth, "Idempotency-Key": key}
        return self.http.post("/api/v1/reservations", headers=headers, json=body), body

    def reserve_until_answered(
        self, user: User, key: str, body: dict[str, Any], within: float = 90.0
    ) -> httpx.Response:
        """What a well-behaved client does after a 503/504: the same request, the same key, later."""
        headers = {**user.auth, "Idempotency-Key": key}

        def answered() -> httpx.Response | None:
            response = self.http.post("/api/v1/reservations", headers=headers, json=body)
            return response if response.status_code < 500 else None

        result: httpx.Response = poll(answered, f"an answer for {key}", within=within, interval=0.5)
        return result

    # -- faults ----------------------------------------------------------------------------

    def set_fault(self, service: str, name: str, **spec: Any) -> None:
        response = self.http.put(f"/api/v1/admin/faults/{service}/{name}", headers=self.admin, json=spec)
        assert response.status_code == 200, response.text

    def clear_fault(self, service: str, name: str) -> None:
        response = self.http.delete(f"/api/v1/admin/faults/{service}/{name}", headers=self.admin)
        assert response.status_code in (204, 404), response.text

    # -- outcome ---------------------------------------------------------------------------

    def settle_and_record(
        self,
        scenario: str,
        lab: str,
        *,
        runbook: tuple[str, ...] = (),
        bookings: list[Booking],
        members: list[User],
        since: datetime,
        recovery_from: float,
        bound_s: float,
        cancelled: tuple[str, ...] = (),
        details: dict[str, Any] | None = None,
    ) -> ScenarioResult:
        """Wait until settled, audit, write the scenario's row; the caller asserts on it."""
        _check_lab_exists(lab)
        for entry in runbook:
            assert entry in runbook_entries(), f"docs/runbook.md has no entry #{entry}"
        problems: list[str] = []
        try:
            self.ledger.wait_settled(within=bound_s + 60)
        except AssertionError as exc:
            problems.append(str(exc))
        recovery = time.monotonic() - recovery_from
        audit: Audit = self.ledger.audit(
            bookings, members={u.member_id for u in members}, since=since, cancelled=cancelled
        )
        result = ScenarioResult(
            scenario,
            lab,
            [f"docs/runbook.md#{entry}" for entry in runbook],
            audit.lost,
            audit.doubled,
            audit.orphaned,
            round(recovery, 2),
            bound_s,
            {**(details or {}), **({"mails_resent_same_message_id": audit.resent} if audit.resent else {})},
            problems + audit.problems,
        )
        _RESULTS.append(result)
        return result


REPO = Path(__file__).resolve().parents[2]


def _check_lab_exists(lab: str) -> None:
    """Every scenario names the lab that demonstrates it; the page and its anchor must exist."""
    page, _, anchor = lab.partition("#")
    text = (REPO / page).read_text(encoding="utf-8")
    assert f'id="{anchor}"' in text or f"## {anchor}" in text.lower(), f"{lab}: no such lab"


@pytest.fixture(scope="session")
def world(chaos_stack: Stack) -> World:
    w = World(chaos_stack)
    LIFETIME.callback(w.close)  # closed before the stack it talks to (last in, first out)
    return w


def assert_clean(result: ScenarioResult) -> None:
    """0 lost, 0 doubled, 0 orphaned, settled within the bound."""
    assert not result.problems, "\n".join(result.problems)
    assert (result.lost, result.doubled, result.orphaned) == (0, 0, 0), result
    assert result.recovery_s <= result.bound_s, f"recovered in {result.recovery_s} s > {result.bound_s} s"


def booking_of(user: User, response: httpx.Response) -> Booking:
    assert response.status_code in (200, 201), response.text
    return Booking(response.json()["reservation_id"], user.member_id, user.email)
