"""Inventory never takes a hold for a caller that gave up (issue 7, fault 1).

Room's hold call carries its deadline; a request that waited in a frozen inventory's socket
queue is refused at the door (the platform's middleware). These tests cover what comes after
the door: a hold whose budget runs out while it waits for the write lock or while it works is
refused with a 504 before it commits, and nothing is held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from common.context import Deadline, deadline_var
from common.db import Database
from common.errors import DeadlineExceeded
from common.testing.databases import writes_held
from inventory_service.adapters.orm import Hold
from inventory_service.domain.model import Stay
from inventory_service.service_layer.inventory import InventoryService

from .conftest import FakeClock, day

SLACK_S = 3.0  # a loaded machine may be slow to wake a waiting thread


@pytest.fixture
def budget() -> Iterator[Callable[..., Deadline]]:
    """``budget()`` starts room's budget for the hold call (after the test's own setup)."""
    tokens = []

    def start(seconds: float = 0.3) -> Deadline:
        deadline = Deadline.after(seconds)
        tokens.append(deadline_var.set(deadline))
        return deadline

    yield start
    for token in reversed(tokens):
        deadline_var.reset(token)


def holds(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(Hold.reservation_id)))


def test_a_hold_whose_budget_runs_out_before_it_commits_is_refused(
    db: Database, add_room: Callable[..., None], counts, room_id: str, budget: Callable[..., Deadline]
) -> None:
    add_room(room_id, capacity=1, days=3)
    frozen = FakeClock()
    deadline = budget()

    def clock_of_a_process_frozen_mid_request() -> datetime:
        while not deadline.expired:  # e.g. SIGSTOP after the request passed the door
            time.sleep(0.01)
        return frozen()

    inventory = InventoryService(
        db, hold_ttl=timedelta(minutes=5), clock=clock_of_a_process_frozen_mid_request
    )

    with pytest.raises(DeadlineExceeded) as refused:
        inventory.place_hold("res-late", Stay(room_id, day(0), day(2)))

    assert refused.value.status == 504
    deadline_var.set(None)
    assert holds(db) == []
    assert counts(room_id, 3) == [(0, 0), (0, 0), (0, 0)]


def test_a_hold_waiting_for_the_write_lock_past_its_budget_is_refused(
    db: Database,
    inventory: InventoryService,
    add_room: Callable[..., None],
    room_id: str,
    budget: Callable[..., Deadline],
) -> None:
    add_room(room_id, capacity=1, days=3)
    budget()
    with writes_held(db.url, "availability", "holds"):  # an outside writer that does not let go
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            inventory.place_hold("res-locked", Stay(room_id, day(0), day(2)))
        waited = time.monotonic() - started

    assert waited < 0.3 + SLACK_S  # the budget, not the 15 s background lock timeout
    deadline_var.set(None)
    assert holds(db) == []


def test_a_hold_within_its_budget_is_taken(
    db: Database,
    inventory: InventoryService,
    add_room: Callable[..., None],
    room_id: str,
    budget: Callable[..., Deadline],
) -> None:
    add_room(room_id, capacity=1, days=3)
    budget(10.0)  # ample: a loaded machine may spend more than 0.3 s in the hold's writes

    _, created = inventory.place_hold("res-ok", Stay(room_id, day(0), day(2)))

    assert created
    deadline_var.set(None)
    assert holds(db) == ["res-ok"]
