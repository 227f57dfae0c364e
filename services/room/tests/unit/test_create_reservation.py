"""The reservation use case against fakes of member and inventory (real client, real SQLite).

The integration tests drive the same flow over HTTP; here the corner cases are pinned down:
twin requests racing, a key reused while in flight, failures after the hold, odd upstream answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import text

from common.context import Deadline, deadline_var
from common.errors import DeadlineExceeded, ProblemError
from common.idempotency import IdempotencyKeyReused
from common.messaging import SchemaViolation
from room_service.adapters.clients import UnexpectedUpstreamAnswer
from room_service.domain import events
from room_service.domain.errors import (
    InvalidStay,
    MemberNotActive,
    MemberNotYetKnown,
    NoAvailability,
    RoomNotFound,
)
from room_service.domain.model import reservation_id_for
from room_service.service_layer.reservations import Answer, StorageUnavailable

from .conftest import NOW, World

CHECK_IN = NOW.date() + timedelta(days=7)
CHECK_OUT = CHECK_IN + timedelta(days=2)


async def reserve(
    world: World,
    member_id: str,
    key: str = "key-1",
    *,
    room_id: str = "r101",
    check_in: date = CHECK_IN,
    check_out: date = CHECK_OUT,
) -> Answer:
    return await world.reservations.create(member_id, key, room_id, check_in, check_out)


async def test_created_reservation_event_hold_and_stored_answer_go_together(world: World) -> None:
    member_id = world.new_member()
    answer = await reserve(world, member_id)

    rid = reservation_id_for(member_id, "key-1")
    assert (answer.status_code, answer.replayed) == (201, False)
    assert answer.body["reservation_id"] == rid
    assert answer.body["status"] == "confirmed"
    assert answer.body["nights"] == 2
    # The hold asked for exactly this stay, keyed for safe retries by the reservation id.
    [hold] = world.inventory.hold_requests
    assert json.loads(hold.content) == {
        "reservation_id": rid,
        "room_id": "r101",
        "check_in": CHECK_IN.isoformat(),
        "check_out": CHECK_OUT.isoformat(),
    }
    assert hold.headers["Idempotency-Key"] == rid
    assert world.reservation_count() == 1
    [(event_type, key, payload)] = world.outbox_events()
    assert (event_type, key) == ("ReservationCreated", rid)
    assert payload["check_in"] == CHECK_IN
    assert payload["nights"] == 2
    assert payload["member_id"] == member_id
    assert payload["room_name"] == "Garden Single"  # ReservationCreated v2: the booked room's name


async def test_a_retry_replays_the_stored_answer_without_asking_anyone(world: World) -> None:
    member_id = world.new_member()
    first = await reserve(world, member_id)
    # Days later the check-in is in the past: the retry still gets the original answer.
    world.clock.now = NOW + timedelta(days=30)
    again = await reserve(world, member_id)
    assert again.replayed
    assert (again.status_code, again.body) == (first.status_code, first.body)
    assert len(world.member.requests) == 1
    assert len(world.inventory.hold_requests) == 1
    assert world.reservation_count() == 1
    assert len(world.outbox_events()) == 1


async def test_same_key_with_another_body_is_422_before_any_call(world: World) -> None:
    member_id = world.new_member()
    await reserve(world, member_id)
    with pytest.raises(IdempotencyKeyReused):
        await reserve(world, member_id, check_out=CHECK_OUT + timedelta(days=1))
    assert len(world.inventory.hold_requests) == 1


async def test_twin_requests_racing_book_once_and_answer_alike(world: World) -> None:
    member_id = world.new_member()
    world.inventory.gate_arrivals = 3  # all three are past the lookup before any stores
    answers = await asyncio.gather(*(reserve(world, member_id) for _ in range(3)))

    assert {a.status_code for a in answers} == {201}
    assert all(a.body == answers[0].body for a in answers)
    assert sorted(a.replayed for a in answers) == [False, True, True]
    assert len(world.inventory.hold_requests) == 3
    assert len(world.inventory.holds) == 1  # one reservation id, held once
    assert world.reservation_count() == 1
    assert len(world.outbox_events()) == 1
    # The losers' hold is the winner's: it must not be "compensated" away.
    assert world.inventory.releases == []


async def test_key_reused_with_another_body_while_the_first_is_in_flight(world: World) -> None:
    member_id = world.new_member()
    results = await asyncio.gather(
        reserve(world, member_id),
        reserve(world, member_id, check_out=CHECK_OUT + timedelta(days=1)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == 1
    assert [type(e) for e in refused] == [IdempotencyKeyReused]
    assert world.reservation_count() == 1
    assert world.inventory.releases == []


async def test_inventory_answering_with_another_stay_is_treated_as_key_reuse(world: World) -> None:
    member_id = world.new_member()
    world.inventory.answer = httpx.Response(
        200,
        json={
            "reservation_id": reservation_id_for(member_id, "key-1"),
            "room_id": "r102",
            "check_in": CHECK_IN.isoformat(),
            "check_out": CHECK_OUT.isoformat(),
        },
    )
    with pytest.raises(IdempotencyKeyReused):
        await reserve(world, member_id)
    assert world.reservation_count() == 0


async def test_store_failure_after_the_hold_releases_it(world: World) -> None:
    member_id = world.new_member()
    with world.db.transaction() as session:  # the database refuses the reservation row
        session.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON reservations "
                "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        )
    with pytest.raises(StorageUnavailable) as raised:
        await reserve(world, member_id)

    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "1"
    assert world.inventory.releases == [reservation_id_for(member_id, "key-1")]
    # Nothing half-stored: no reservation, no event, no answer for the key (a retry may succeed).
    assert world.reservation_count() == 0
    assert world.outbox_events() == []
    with world.db.transaction() as session:
        session.execute(text("DROP TRIGGER refuse"))
    assert (await reserve(world, member_id)).status_code == 201


async def test_failed_compensation_is_logged_and_the_answer_stays_503(world: World, caplog) -> None:
    member_id = world.new_member()
    world.inventory.release_status = 500
    with world.db.transaction() as session:
        session.execute(text("ALTER TABLE outbox RENAME TO outbox_gone"))
    with caplog.at_level(logging.WARNING):
        with pytest.raises(StorageUnavailable):
            await reserve(world, member_id)
        await world.reservations.compensations_settled()
    # Once at once, then twice more in the background with backoff; then the reaper's turn.
    assert len(world.inventory.releases) == 3
    assert world.sleep.slept == [1.0, 2.0]
    assert "could not release hold" in caplog.text
    assert "gave up releasing hold" in caplog.text


async def test_a_bug_while_storing_releases_the_hold_and_propagates(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    member_id = world.new_member()
    # A payload the contract refuses (a bug, not an outage): the outbox rejects it at write time.
    monkeypatch.setattr(events, "reservation_created", lambda reservation, room: {"reservation_id": "x"})
    with pytest.raises(SchemaViolation):
        await reserve(world, member_id)
    assert world.inventory.releases == [reservation_id_for(member_id, "key-1")]
    assert world.reservation_count() == 0


async def test_member_without_profile_yet_is_409_with_retry_after_and_nothing_held(world: World) -> None:
    with pytest.raises(MemberNotYetKnown) as raised:
        await reserve(world, "no-profile-yet")
    assert raised.value.status == 409
    assert raised.value.headers["Retry-After"] == "2"
    assert world.inventory.hold_requests == []


async def test_suspended_member_is_403_and_nothing_held(world: World) -> None:
    member_id = world.new_member(status="suspended")
    with pytest.raises(MemberNotActive, match="suspended"):
        await reserve(world, member_id)
    assert world.inventory.hold_requests == []


@pytest.mark.parametrize("status", [409, 404])
async def test_inventory_refusal_is_409_no_availability(world: World, status: int) -> None:
    world.inventory.answer = httpx.Response(status, json={})
    with pytest.raises(NoAvailability) as raised:
        await reserve(world, world.new_member())
    assert raised.value.status == 409
    assert world.reservation_count() == 0


async def test_rules_and_room_are_checked_before_calling_anyone(world: World) -> None:
    member_id = world.new_member()
    with pytest.raises(InvalidStay):
        await reserve(world, member_id, check_out=CHECK_IN)
    with pytest.raises(RoomNotFound):
        await reserve(world, member_id, room_id="r999")
    assert world.member.requests == []
    assert world.inventory.hold_requests == []


@pytest.mark.parametrize(
    ("who", "answer"),
    [
        ("member", httpx.Response(400, json={})),
        ("member", httpx.Response(200, content=b"not json")),
        ("member", httpx.Response(200, json={"member_id": "x"})),
        ("inventory", httpx.Response(400, json={})),
        ("inventory", httpx.Response(201, json={"unexpected": True})),
    ],
)
async def test_answers_outside_the_upstream_contract_are_502(
    world: World, who: str, answer: httpx.Response
) -> None:
    getattr(world, who).answer = answer
    with pytest.raises(UnexpectedUpstreamAnswer) as raised:
        await reserve(world, world.new_member())
    assert raised.value.status == 502
    assert world.reservation_count() == 0


async def test_upstream_outage_propagates_as_the_platforms_503(world: World) -> None:
    world.member.answer = httpx.Response(503, headers={"Retry-After": "3"})
    with pytest.raises(ProblemError) as raised:
        await reserve(world, world.new_member())
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "3"


# -- a hold whose outcome is unknown (issue 7, fault 1) ----------------------------------------


async def _hang(request: httpx.Request) -> httpx.Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("closed mid-way"), httpx.Response(502)],
    ids=["timeout-after-send", "connection-broken", "bare-502"],
)
async def test_a_hold_whose_outcome_is_unknown_is_released(world: World, failure: object) -> None:
    # Inventory may have taken the hold although room never heard back; nobody will book it.
    async def fail(request: httpx.Request) -> httpx.Response:
        if isinstance(failure, httpx.Response):
            return failure
        assert isinstance(failure, Exception)
        raise failure

    world.inventory.answer_with = fail
    member_id = world.new_member()

    with pytest.raises(ProblemError) as raised:
        await reserve(world, member_id)
    await world.reservations.compensations_settled()

    assert raised.value.status == 503
    assert world.inventory.releases == [reservation_id_for(member_id, "key-1")]
    assert world.reservation_count() == 0
    assert world.outbox_events() == []


async def test_a_hold_cut_off_by_the_deadline_is_released(world: World) -> None:
    world.inventory.answer_with = _hang
    member_id = world.new_member()
    # The hold hangs until the budget cuts it off; the budget must outlast the reads before it,
    # which took more than 0.1 s on a loaded machine (then no hold was asked for at all).
    deadline_var.set(Deadline.after(2.0))

    with pytest.raises(DeadlineExceeded):
        await reserve(world, member_id)
    await world.reservations.compensations_settled()

    assert len(world.inventory.hold_requests) == 1
    assert world.inventory.releases == [reservation_id_for(member_id, "key-1")]


async def test_a_hold_that_certainly_failed_is_not_released(world: World) -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    world.inventory.answer_with = refuse

    with pytest.raises(ProblemError):
        await reserve(world, world.new_member())
    await world.reservations.compensations_settled()

    assert world.inventory.releases == []


async def test_a_failed_release_is_retried_in_the_background_until_it_succeeds(world: World) -> None:
    world.inventory.answer_with = _timeout
    world.inventory.release_statuses = [500, 503]
    member_id = world.new_member()

    with pytest.raises(ProblemError):
        await reserve(world, member_id)
    await world.reservations.compensations_settled()

    assert world.inventory.releases == [reservation_id_for(member_id, "key-1")] * 3
    assert world.sleep.slept == [1.0, 2.0]


async def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow")
