"""Synchronous dependencies failing under a reservation: hung, slow, frozen, locked, overrun.

Every scenario ends the same way: the fault is lifted, clients that were refused try again with
the same Idempotency-Key (what docs/api.md tells them to do), the system settles, and the ledger
finds every reservation exactly once and no hold without its reservation.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .conftest import World, assert_clean, booking_of
from .ledger import Booking, poll

# The gateway's budget for one request (GATEWAY_REQUEST_TIMEOUT_S): a refusal must come before it.
GATEWAY_BUDGET_S = 30.0


def _parallel_reservations(
    world: World, users: list[Any], prefix: str, n: int
) -> list[tuple[Any, str, dict[str, Any], httpx.Response, float]]:
    """``n`` reservations at once (users round robin); each with its own key and timing."""
    requests = []
    for i in range(n):
        room, night = world.slots.take()
        body = {
            "room_id": room,
            "check_in": night.isoformat(),
            "check_out": (night + timedelta(days=1)).isoformat(),
        }
        requests.append((users[i % len(users)], f"{prefix}-{i}", body))

    def send(item: tuple[Any, str, dict[str, Any]]) -> tuple[Any, str, dict[str, Any], httpx.Response, float]:
        user, key, body = item
        began = time.monotonic()
        response = world.http.post(
            "/api/v1/reservations", headers={**user.auth, "Idempotency-Key": key}, json=body
        )
        return user, key, body, response, time.monotonic() - began

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(send, requests))


def _retry_refused(
    world: World, sent: list[tuple[Any, str, dict[str, Any], httpx.Response, float]]
) -> list[Booking]:
    """Every refused request again (same key) until answered; the bookings the clients end with."""
    bookings = []
    for user, key, body, response, _ in sent:
        if response.status_code >= 500:
            response = world.reserve_until_answered(user, key, body)
        bookings.append(booking_of(user, response))
    return bookings


def test_dependency_hung_member_frozen(world: World) -> None:
    """Member accepts connections and never answers (SIGSTOP): fast 503s, then recovery."""
    world.ledger.wait_settled(within=120)
    users = [world.member("hung")]
    since = datetime.now(UTC)
    world.stack.pause("member")
    try:
        sent = _parallel_reservations(world, users, "hung", 6)
    finally:
        world.stack.resume("member")
    lifted = time.monotonic()
    statuses = sorted(r.status_code for *_, r, _ in sent)
    slowest = max(t for *_, t in sent)
    assert all(s in (503, 504) for s in statuses), statuses
    assert all("Retry-After" in r.headers for *_, r, _ in sent)
    assert slowest < GATEWAY_BUDGET_S, f"a refusal took {slowest:.1f} s"
    bookings = _retry_refused(world, sent)
    result = world.settle_and_record(
        "dependency hung (member frozen)",
        "docs/chaos.md#dependency-hung",
        runbook=("dependency-down-or-slow", "breaker-open"),
        bookings=bookings,
        members=users,
        since=since,
        recovery_from=lifted,
        bound_s=60,
        details={"statuses": statuses, "slowest_refusal_s": round(slowest, 2)},
    )
    assert_clean(result)


def test_dependency_slow_member_latency_above_timeout(world: World) -> None:
    """Member answers, but slower than room waits for it (fault injection: latency ≥ timeout)."""
    world.ledger.wait_settled(within=120)
    users = [world.member("slow")]
    since = datetime.now(UTC)
    world.set_fault(
        "member",
        "slow-validity",
        where="inbound",
        match="/internal/members",
        kind="latency",
        latency_ms=4000,
        ttl_s=120,
    )
    try:
        sent = _parallel_reservations(world, users, "slow", 6)
    finally:
        world.clear_fault("member", "slow-validity")
    lifted = time.monotonic()
    statuses = sorted(r.status_code for *_, r, _ in sent)
    assert all(s in (503, 504) for s in statuses), statuses
    bookings = _retry_refused(world, sent)
    result = world.settle_and_record(
        "dependency slow (member latency 4 s > timeout)",
        "docs/chaos.md#dependency-slow",
        runbook=("dependency-down-or-slow", "retry-storm"),
        bookings=bookings,
        members=users,
        since=since,
        recovery_from=lifted,
        bound_s=60,
        details={"statuses": statuses, "slowest_refusal_s": round(max(t for *_, t in sent), 2)},
    )
    assert_clean(result)


def test_inventory_frozen_during_parallel_reservations_leaves_no_orphan_hold(world: World) -> None:
    """Issue 7 fault 1: holds taken for requests whose caller gave up while inventory was frozen."""
    world.ledger.wait_settled(within=120)
    users = [world.member("frozen")]
    since = datetime.now(UTC)
    world.stack.pause("inventory")
    try:
        sent = _parallel_reservations(world, users, "frozen", 6)
    finally:
        world.stack.resume("inventory")
    lifted = time.monotonic()
    statuses = sorted(r.status_code for *_, r, _ in sent)
    assert all(s in (503, 504) for s in statuses), statuses
    bookings = _retry_refused(world, sent)
    result = world.settle_and_record(
        "inventory frozen (SIGSTOP) during 6 reservations",
        "docs/chaos.md#inventory-frozen",
        runbook=("dependency-down-or-slow",),
        bookings=bookings,
        members=users,
        since=since,
        recovery_from=lifted,
        bound_s=60,
        details={"statuses": statuses},
    )
    assert_clean(result)


def test_database_write_locked_from_outside(world: World) -> None:
    """Issue 7 fault 2: room's SQLite file write-locked longer than a request's budget."""
    world.ledger.wait_settled(within=120)
    users = [world.member("locked")]
    since = datetime.now(UTC)
    url = world.ledger.database_url("room")
    assert url.startswith("sqlite:///"), url
    lock = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # a writer that doesn't let go: every other writer waits
    answered = threading.Event()
    sent: list[Any] = []

    def traffic() -> None:
        sent.extend(_parallel_reservations(world, users, "locked", 3))
        answered.set()

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        poll(answered.is_set, "answers while room's database is locked", within=GATEWAY_BUDGET_S + 30)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        worker.join()
    lifted = time.monotonic()
    statuses = sorted(r.status_code for *_, r, _ in sent)
    # Refused, within the budget, and (the audit proves it) nothing stored behind the client's back.
    assert all(s in (503, 504) for s in statuses), statuses
    assert max(t for *_, t in sent) < GATEWAY_BUDGET_S
    bookings = _retry_refused(world, sent)
    result = world.settle_and_record(
        "room's database write-locked from outside",
        "docs/chaos.md#db-locked",
        runbook=("database-locked-or-pool-exhausted",),
        bookings=bookings,
        members=users,
        since=since,
        recovery_from=lifted,
        bound_s=60,
        details={"statuses": statuses, "slowest_refusal_s": round(max(t for *_, t in sent), 2)},
    )
    assert_clean(result)


def test_burst_on_the_last_unit_is_409_not_503_and_trips_no_breaker(world: World) -> None:
    """Issue 7 fault 3: 50 parallel reservations for one unit: one 201, 49 409s, no 503."""
    world.ledger.wait_settled(within=120)
    users = [world.member(f"burst{i}") for i in range(10)]
    since = datetime.now(UTC)
    night = world.slots.last_unit()
    began = time.monotonic()

    def send(i: int) -> httpx.Response:
        response, _ = world.reserve(users[i % len(users)], f"burst-{i}", room="r105", night=night)
        return response

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(send, range(50)))
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 1, sorted(statuses)
    assert statuses.count(409) == 49, sorted(statuses)
    # Nothing tripped: the next, unrelated request books at once.
    after, _ = world.reserve(users[0], "after-the-burst")
    assert after.status_code == 201, after.text
    won = statuses.index(201)
    bookings = [booking_of(users[won % len(users)], answers[won]), booking_of(users[0], after)]
    result = world.settle_and_record(
        "burst of 50 on the last unit",
        "docs/chaos.md#burst",
        runbook=("breaker-open",),
        bookings=bookings,
        members=users,
        since=since,
        recovery_from=began,
        bound_s=60,
        details={
            "201": statuses.count(201),
            "409": statuses.count(409),
            "5xx": sum(s >= 500 for s in statuses),
        },
    )
    assert_clean(result)
