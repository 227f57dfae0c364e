"""kill -9 one of two instances: the other carries on, nothing lost, nothing doubled.

- **room**: during a burst of reservations through the gateway (each with its Idempotency-Key)
  one room instance is killed. The gateway's balancer sends the calls on to the other (a broken
  connection or a refused one is retried there: the key makes a POST safe to repeat) and ejects
  the dead one. At most the requests in flight at the kill may fail, and those succeed when the
  client repeats them with the same key; the ledger finds every reservation once in room, its
  hold once in inventory, and the counts per night right (no double booking).
- **notification**: while reservation events flow, one notification instance is killed. Its
  consumer-group memberships time out (session timeout, 10 s) and the broker gives its
  partitions to the other instance, which takes up from the last committed offsets; every
  mail is sent once (one Message-ID per event), none is missing.

Lab: docs/patterns/load-balancing.md#lab.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from kafka import KafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from stack.runner import Stack
from tests.chaos.conftest import World, booking_of
from tests.chaos.ledger import Audit, Booking, poll

from .conftest import MEASURED

BURST = 36  # reservations, WORKERS at a time
WORKERS = 6
KILL_AFTER = 10  # answered reservations before the kill: both rooms are taking calls by then
MAILS = 14  # reservations (hence mails) while a notification instance dies
NOTIFICATION_KILL_AFTER = 4


def _kill9(stack: Stack, name: str) -> None:
    pid = stack.pid(name)
    assert pid is not None, f"{name} is not running"
    os.killpg(pid, signal.SIGKILL)  # its process group: the lifeline and the service
    poll(lambda: stack.pid(name) is None, f"{name} gone after kill -9", within=30)


def _reservations_served(stack: Stack, name: str) -> int:
    """POST /api/v1/reservations answered by one instance, from its own /metrics."""
    text = httpx.get(f"{stack.management_url(name)}/metrics", timeout=10).text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "http_requests_total"
            and sample.labels.get("method") == "POST"
            and "reservations" in sample.labels.get("route", "")
        )
    )


def _clean(audit: Audit) -> None:
    assert not audit.problems, "\n".join(audit.problems)
    assert audit.clean, audit


def test_room_instance_killed_during_a_burst_of_reservations(world: World) -> None:
    stack = world.stack
    world.ledger.wait_settled(within=120)
    users = [world.member("burst-a"), world.member("burst-b")]
    since = datetime.now(UTC)
    requests = []
    for i in range(BURST):
        room, night = world.slots.take()
        body = {"room_id": room, "check_in": f"{night}", "check_out": f"{night + timedelta(days=1)}"}
        requests.append((users[i % len(users)], f"failover-{uuid.uuid4().hex[:8]}-{i}", body))

    lock = threading.Lock()
    in_flight: set[int] = set()
    answered = 0
    at_kill: set[int] = set()
    served_by_room_2: list[int] = []
    kill_now = threading.Event()

    def send(i: int) -> httpx.Response | None:
        nonlocal answered
        user, key, body = requests[i]
        with lock:
            in_flight.add(i)
        try:
            response: httpx.Response | None = world.http.post(
                "/api/v1/reservations", headers={**user.auth, "Idempotency-Key": key}, json=body
            )
        except httpx.TransportError:
            response = None  # the gateway itself never went away: counted as failed all the same
        with lock:
            in_flight.discard(i)
            answered += 1
            if answered >= KILL_AFTER:
                kill_now.set()
        return response

    def killer() -> None:
        kill_now.wait(timeout=240)
        served_by_room_2.append(_reservations_served(stack, "room-2"))  # its metrics die with it
        with lock:
            at_kill.update(in_flight)
        _kill9(stack, "room-2")

    killing = threading.Thread(target=killer, name="kill-room-2")
    killing.start()
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            responses = list(pool.map(send, range(BURST)))
    finally:
        killing.join(timeout=60)
    assert served_by_room_2, "room-2 was never killed"
    assert stack.pid("room-2") is None, "room-2 survived its kill -9"
    failed = [i for i, r in enumerate(responses) if r is None or r.status_code >= 500]
    statuses = sorted(r.status_code if r is not None else 0 for r in responses)

    # Only what was in flight at the kill may have failed; the rest got their answer.
    assert set(failed) <= at_kill, f"failed {failed}, in flight at the kill {sorted(at_kill)}: {statuses}"
    answers = [r.status_code for i, r in enumerate(responses) if i not in failed and r is not None]
    assert all(code in (200, 201) for code in answers), statuses

    # The client repeats each failed request with its key: one reservation each, never two.
    retried = time.monotonic()
    bookings: list[Booking] = []
    for i, response in enumerate(responses):
        user, key, body = requests[i]
        if i in failed:
            response = world.reserve_until_answered(user, key, body, within=60)
        assert response is not None
        bookings.append(booking_of(user, response))
    retry_s = time.monotonic() - retried
    again = [world.http.post(
        "/api/v1/reservations", headers={**u.auth, "Idempotency-Key": k}, json=b
    ) for u, k, b in requests[:3]]  # fmt: skip
    assert [r.json()["reservation_id"] for r in again] == [b.reservation_id for b in bookings[:3]]

    world.ledger.wait_settled(within=120)
    audit = world.ledger.audit(bookings, members={u.member_id for u in users}, since=since)
    _clean(audit)
    ejections = _gateway_counter(stack, "upstream_ejections_total", upstream="room")
    MEASURED["room instance killed during a burst"] = {
        "reservations": BURST,
        "in_flight_at_kill": len(at_kill),
        "failed": len(failed),
        "statuses": statuses,
        "served_by_room_2_before_the_kill": served_by_room_2[0],
        "retry_of_failed_s": round(retry_s, 2),
        "gateway_ejections_of_room": ejections,
    }
    assert served_by_room_2[0] > 0, "room-2 never took a reservation: the gateway did not balance"
    assert ejections >= 1, "the gateway never ejected the dead room instance"


def _gateway_counter(stack: Stack, name: str, **labels: str) -> float:
    text = httpx.get(f"{stack.management_url('gateway')}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


# --------------------------------------------------------------------------- notification


def _partitions(assignment: Any) -> set[tuple[str, int]]:
    """The (topic, partition) pairs of one member's decoded assignment (dict or object)."""
    if assignment is None:
        return set()
    items: Iterable[Any] = (
        assignment.get("assigned_partitions", [])
        if isinstance(assignment, dict)
        else getattr(assignment, "assigned_partitions", [])
    )
    found: set[tuple[str, int]] = set()
    for item in items:
        topic = item["topic"] if isinstance(item, dict) else item.topic
        numbers = item["partitions"] if isinstance(item, dict) else item.partitions
        found.update((str(topic), int(p)) for p in numbers)
    return found


def _owners(stack: Stack, groups: list[str]) -> dict[str, dict[str, set[tuple[str, int]]]]:
    """Per group: each member's partitions."""
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers, request_timeout_ms=10_000)
    try:
        described = admin.describe_groups(groups)
    finally:
        admin.close()
    return {
        group: {str(m["member_id"]): _partitions(m.get("member_assignment")) for m in info["members"]}
        for group, info in described.items()
    }


def _notification_groups(stack: Stack) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers, request_timeout_ms=10_000)
    try:
        return sorted(g["group_id"] for g in admin.list_groups() if g["group_id"].startswith("notification"))
    finally:
        admin.close()


def test_notification_instance_killed_while_events_flow(world: World) -> None:
    stack = world.stack
    world.ledger.wait_settled(within=120)
    groups = poll(lambda: _notification_groups(stack), "notification's consumer groups", within=60)

    def shared() -> dict[str, dict[str, set[tuple[str, int]]]] | None:
        owners = _owners(stack, groups)
        both = all(len(m) == 2 and all(m.values()) for m in owners.values())
        return owners if both else None

    # Two members in every group, each holding partitions: the instances share the work.
    before = poll(shared, "both notification instances holding partitions", within=120, interval=1)
    every = {g: set().union(*members.values()) for g, members in before.items()}

    user = world.member("mailflow")
    since = datetime.now(UTC)
    bookings: list[Booking] = []
    killed_at: list[float] = []

    def book() -> None:
        for i in range(MAILS):
            if i == NOTIFICATION_KILL_AFTER:
                _kill9(stack, "notification-2")
                killed_at.append(time.monotonic())
            response, _ = world.reserve(user, f"mailflow-{uuid.uuid4().hex[:8]}-{i}")
            bookings.append(booking_of(user, response))

    traffic = threading.Thread(target=_failing_loud(book), name="mailflow")
    traffic.start()

    def moved() -> bool:
        if not killed_at:
            return False
        owners = _owners(stack, groups)
        return all(
            len(members) == 1
            and next(iter(members)) in before[group]  # the survivor, not a newcomer
            and next(iter(members.values())) == every[group]
            for group, members in owners.items()
        )

    poll(moved, "every partition with the surviving notification instance", within=120, interval=0.5)
    moved_s = time.monotonic() - killed_at[0]
    traffic.join(timeout=180)
    assert not traffic.is_alive(), "the reservations did not finish"
    assert not _ERRORS, _ERRORS
    assert len(bookings) == MAILS

    settled_s = world.ledger.wait_settled(within=150)
    audit = world.ledger.audit(bookings, members={user.member_id}, since=since)
    MEASURED["notification instance killed while events flow"] = {
        "reservations": MAILS,
        "groups": len(groups),
        "partitions_moved_after_s": round(moved_s, 2),
        "settled_after_move_s": round(settled_s, 2),
        "mails_resent_same_message_id": audit.resent,
    }
    _clean(audit)


_ERRORS: list[str] = []


def _failing_loud(job: Any) -> Any:
    """A thread target whose failure the test sees (an exception in a thread is only printed)."""

    def run() -> None:
        try:
            job()
        except BaseException as exc:  # reported by the test's assertion
            _ERRORS.append(f"{type(exc).__name__}: {exc}")

    return run
