"""The attack suite: every case an outside probe tried, against the real running system.

It runs on the session's stack (``tests/conftest.py``, shared with ``tests/e2e``): the gateway and
every service's own port. Each case is one parametrized test, described as data (category, name,
request, expected outcome); its verdict is one of

- *held*: the answer was the refusal (or the protection) the case expects;
- *wrongly accepted*: a 2xx/3xx, or a 5xx, where a refusal was due, or a protection missing
  (a header not set, a value reflected, a limit not applied);
- *unexpected*: another 4xx than the agreed one (a refusal, but not the contract's).

At the end of the session the suite prints ``security: N cases, M wrongly accepted`` and a table
by category, and writes every case to ``<RUN_DIR>/results/security.json`` (``RUN_DIR`` or the
repository's ``.run``). A case that is not *held* fails its test.

Fast by construction: one pooled HTTP client, a handful of users and resources created once per
session (``People``), no sleeps.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.runner import Stack

from ..conftest import STACK_TEST_TIMEOUT_S, Stays, User, eventually
from .forge import Forge

HELD = "held"
WRONGLY_ACCEPTED = "wrongly accepted"
UNEXPECTED = "unexpected"
SERVICES = ("gateway", "auth", "member", "room", "inventory", "notification")
INTERNAL_SERVICES = SERVICES[1:]
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- verdicts


@dataclass
class CaseResult:
    """One row of the results: what was sent, what was due, what came back."""

    category: str
    name: str
    request: str
    expected: str
    got: str
    verdict: str
    seconds: float = 0.0


@dataclass
class Results:
    """Every case's result in this session (filled by the tests, read at the end)."""

    rows: list[CaseResult] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, row: CaseResult) -> None:
        with self.lock:
            self.rows.append(row)

    def by_category(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = {}
        for row in self.rows:
            table.setdefault(row.category, Counter())[row.verdict] += 1
        return table


RESULTS_KEY = pytest.StashKey[Results]()


def verdict_for(status: int, expected: Iterable[int]) -> str:
    """``held`` if ``status`` is one of ``expected``; otherwise how badly it missed."""
    if status in set(expected):
        return HELD
    if status < 400 or status >= 500:
        return WRONGLY_ACCEPTED
    return UNEXPECTED


def describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:160]!r}"


class Judge:
    """Records each case's verdict and fails the test unless it held."""

    def __init__(self, results: Results, category: str, name: str) -> None:
        self.results = results
        self.category = category
        self.name = name
        self.started = time.monotonic()
        self.done = False

    def record(self, request: str, expected: str, got: str, verdict: str) -> None:
        self.done = True
        row = CaseResult(
            self.category,
            self.name,
            request,
            expected,
            got,
            verdict,
            round(time.monotonic() - self.started, 3),
        )
        self.results.add(row)
        assert verdict == HELD, (
            f"{self.category} / {self.name}: {verdict}: {request} -> {got} (expected {expected})"
        )

    def status(self, response: httpx.Response, expected: Iterable[int], request: str = "") -> None:
        """The case holds when the answer's status is one of ``expected``."""
        statuses = sorted(set(expected))
        self.record(
            request or f"{response.request.method} {response.request.url}",
            " or ".join(map(str, statuses)),
            describe(response),
            verdict_for(response.status_code, statuses),
        )

    def refused(self, response: httpx.Response, expected: Iterable[int], request: str = "") -> None:
        """A refusal: the expected status (any other 4xx is *unexpected*, never held)."""
        self.status(response, expected, request)

    def holds(self, ok: bool, request: str, expected: str, got: str, *, accepted: bool = True) -> None:
        """A property case: ``ok`` or the weakness is there (*wrongly accepted* unless ``accepted=False``)."""
        self.record(request, expected, got, HELD if ok else (WRONGLY_ACCEPTED if accepted else UNEXPECTED))


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Iterator[Judge]:
    """The current case's judge: category from the module's ``CATEGORY``, name from the test id."""
    results = request.config.stash.setdefault(RESULTS_KEY, Results())
    callspec = getattr(request.node, "callspec", None)
    name = callspec.id if callspec is not None else request.node.name
    category = getattr(request.node.function, "category", None) or getattr(request.module, "CATEGORY", "misc")
    judge = Judge(results, category, f"{request.node.originalname}[{name}]" if callspec else name)
    yield judge
    if not judge.done:
        # A case that crashed before its verdict (e.g. a timeout) still counts, as not held.
        results.add(CaseResult(category, judge.name, "", "a verdict", "no answer", UNEXPECTED))


def category(name: str) -> Any:
    """Decorator: the category of a test function's cases (else the module's ``CATEGORY``)."""

    def mark(function: Any) -> Any:
        function.category = name
        return function

    return mark


# --------------------------------------------------------------------------- the end


def results_path() -> Path:
    run_dir = os.environ.get("RUN_DIR")
    return (Path(run_dir) if run_dir else REPO / ".run") / "results" / "security.json"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.security)
            item.add_marker(pytest.mark.timeout(STACK_TEST_TIMEOUT_S))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "security: a case of the attack suite (tests/security)")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS_KEY, None)
    if results is None or not results.rows:
        return
    rows = results.rows
    wrongly = [r for r in rows if r.verdict == WRONGLY_ACCEPTED]
    unexpected = [r for r in rows if r.verdict == UNEXPECTED]
    write = terminalreporter.write_line
    terminalreporter.section("security")
    write(f"{'category':<28} {'cases':>6} {'held':>6} {'wrongly accepted':>17} {'unexpected':>11}")
    for name, counts in sorted(results.by_category().items()):
        total = sum(counts.values())
        write(
            f"{name:<28} {total:>6} {counts[HELD]:>6} {counts[WRONGLY_ACCEPTED]:>17} {counts[UNEXPECTED]:>11}"
        )
    for row in [*wrongly, *unexpected][:80]:
        write(f"  {row.verdict}: {row.category} / {row.name}: {row.request} -> {row.got[:120]}")
    elapsed = time.monotonic() - results.started
    extra = f", {len(unexpected)} unexpected answers" if unexpected else ""
    write(f"security: {len(rows)} cases, {len(wrongly)} wrongly accepted{extra} ({elapsed:.0f} s)")
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "cases": len(rows),
        "wrongly_accepted": len(wrongly),
        "unexpected": len(unexpected),
        "seconds": round(elapsed, 1),
        "by_category": {
            name: {
                "cases": sum(c.values()),
                "held": c[HELD],
                "wrongly_accepted": c[WRONGLY_ACCEPTED],
                "unexpected": c[UNEXPECTED],
            }
            for name, c in sorted(results.by_category().items())
        },
        "results": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    write(f"security results: {path}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    results = session.config.stash.get(RESULTS_KEY, None)
    if results is not None and any(r.verdict != HELD for r in results.rows) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- the system


@dataclass(frozen=True)
class System:
    """Where everything is: the gateway and each service's own port, the keys folder."""

    stack: Stack

    def url(self, target: str) -> str:
        return self.stack.url(target)

    @property
    def keys_dir(self) -> Path:
        return self.stack.run_dir / "keys"


@pytest.fixture(scope="session")
def system(stack: Stack) -> System:
    return System(stack)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """The one HTTP client of the suite (pooled; redirects are answers, not followed)."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    with httpx.Client(timeout=20.0, limits=limits, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="session")
def forge(system: System, http: httpx.Client) -> Forge:
    jwks = http.get(system.url("auth") + "/.well-known/jwks.json").json()
    return Forge(system.keys_dir, user_kid=jwks["keys"][0]["kid"])


# --------------------------------------------------------------------------- people


@dataclass
class People:
    """The few users the cases act as, created once, and what Alice owns (Bob attacks it)."""

    alice: User
    bob: User
    admin: dict[str, str]
    reservation_id: str
    reservation_key: str
    reservation_body: dict[str, str]
    license_key: str
    activation_id: str


def _reserve(client: httpx.Client, user: User, key: str, body: dict[str, str]) -> dict[str, Any]:
    def attempt() -> dict[str, Any] | None:
        response = client.post("/api/v1/reservations", json=body, headers=user.headers(key))
        if response.status_code == 409 and "retry-after" in response.headers:
            return None  # the profile is on its way: same key again
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return eventually(attempt, f"a reservation for {user.email}", within=20)


@pytest.fixture(scope="session")
def people(
    client: httpx.Client, new_member: Callable[..., User], admin: dict[str, str], stays: Stays
) -> People:
    alice, bob = new_member("sec-alice"), new_member("sec-bob")
    check_in, check_out = stays.take(1)
    body = {"room_id": "r101", "check_in": check_in, "check_out": check_out}
    key = f"sec-{uuid.uuid4()}"
    reservation = _reserve(client, alice, key, body)
    issued = client.post("/api/v1/licenses", json={"product": "security-suite", "seats": 1000}, headers=admin)
    assert issued.status_code == 201, issued.text
    license_key = issued.json()["license_key"]
    activated = client.post(
        "/api/v1/licenses/activate",
        json={"license_key": license_key, "machine_id": "alice-laptop"},
        headers=alice.auth,
    )
    assert activated.status_code == 200, activated.text
    return People(
        alice,
        bob,
        admin,
        reservation["reservation_id"],
        key,
        body,
        license_key,
        activated.json()["activation_id"],
    )


@pytest.fixture(scope="session")
def member_id(people: People) -> str:
    """A member whose profile exists (Alice): valid forged-claims start from her id."""
    return people.alice.user_id
