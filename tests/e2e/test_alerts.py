"""A real Prometheus scrapes the stack and fires the repo's alerts when a chaos scenario breaks
an SLO: member down → room's circuit to member opens → CircuitBreakerOpen (and TargetDown).

The rules are the repo's, with the same expressions; only each rule's ``for:`` is cut to a few
seconds in the test's copy: with the real holds (1 m) plus the 30 s window of CircuitBreakerOpen
the test would wait ~90 s, more than the suite's budget allows. promtool's unit tests
(tests/observability/test_rules.py) cover the real holds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from stack.runner import Stack
from stack.services import SERVICES
from tests.observability.prometheus import Prometheus, copy_rules, running_prometheus, stack_config

from .conftest import Stays, User, eventually

TEST_HOLD = "2s"


@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    rules = copy_rules(workdir / "rules", hold=TEST_HOLD)
    ports = {s.name: stack.management_port(s.name) for s in SERVICES}
    with running_prometheus(workdir, stack_config(ports, rules), print) as server:
        eventually(
            lambda: set(server.targets_health().values()) == {"up"},
            "prometheus to scrape every service",
            within=90,
            interval=0.5,
        )
        yield server


def breaker_state(stack: Stack, service: str, upstream: str) -> float | None:
    """The service's own circuit_breaker_state sample for ``upstream`` (None before its first call)."""
    text = httpx.get(f"{stack.management_url(service)}/metrics", timeout=10).text
    wanted = f'circuit_breaker_state{{service="{service}",upstream="{upstream}"}} '
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.removeprefix(wanted))
    return None


def test_member_down_fires_circuit_breaker_open_and_target_down_in_prometheus(
    prometheus: Prometheus, client: httpx.Client, stack: Stack, new_member: Callable[..., User], stays: Stays
) -> None:
    user = new_member("alerted")
    stay = {"room_id": "r102", "check_in": "", "check_out": ""}
    stay["check_in"], stay["check_out"] = stays.take(1)

    def reserve() -> httpx.Response:
        return client.post("/api/v1/reservations", headers=user.headers(f"alert-{uuid.uuid4()}"), json=stay)

    stack.stop_service("member")
    try:
        # Reservations through the gateway until room's circuit to member opens (10 calls in its
        # window, most of them failed); then nothing more, so it stays open (no probe).
        def opened() -> bool:
            assert reserve().status_code == 503
            return breaker_state(stack, "room", "member") == 2

        eventually(opened, "room's circuit to member to open", within=90, interval=0.2)
        opened_at = time.monotonic()
        eventually(
            lambda: prometheus.alerts("CircuitBreakerOpen", service="room", upstream="member"),
            "CircuitBreakerOpen{service=room, upstream=member} firing in prometheus",
            within=90,
            interval=0.5,
        )
        took = time.monotonic() - opened_at
        eventually(
            lambda: prometheus.alerts("TargetDown", service="member"),
            "TargetDown{service=member} firing",
            within=90,
            interval=0.5,
        )
        print(f"CircuitBreakerOpen firing {took:.1f} s after room's circuit opened (hold {TEST_HOLD})")
        [alert] = prometheus.alerts("CircuitBreakerOpen", service="room", upstream="member")
        assert alert["labels"]["severity"] == "page"
        assert alert["annotations"]["summary"] == "room's circuit to member is open"
        # Nothing else is open: the other breakers are closed.
        assert {
            (a["labels"]["service"], a["labels"]["upstream"]) for a in prometheus.alerts("CircuitBreakerOpen")
        } <= {("room", "member"), ("gateway", "room")}
    finally:
        stack.start_service("member", migrate=False)

    # The stack is whole again for the tests after this one: a reservation books (room's circuit
    # lets a probe through and closes), and Prometheus scrapes member again.
    booked = eventually(
        lambda: reserve().status_code == 201, "a booking after member is back", within=60, interval=0.5
    )
    assert booked
    closed = eventually(
        lambda: breaker_state(stack, "room", "member") == 0, "room's circuit closed", within=30
    )
    assert closed
    eventually(
        lambda: prometheus.targets_health().get("member") == "up", "member scraped", within=60, interval=0.5
    )
