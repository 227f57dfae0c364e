"""Reservations over HTTP: room in-process, member and inventory stand-ins on real sockets,
the real outbox relay publishing to the real Kafka broker."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import timedelta

from common.messaging import AvroCodec, topic_for
from common.testing.databases import refuse_inserts, writes_held
from common.testing.problems import assert_problem
from room_service.domain.model import reservation_id_for

from .conftest import InventoryStandIn, MemberStandIn, Room, RoomFactory, kafka_record, stay, today, wait_for

# -- the happy path ----------------------------------------------------------------------------


async def test_reserve_stores_announces_on_kafka_and_lists(
    room: Room, inventory: InventoryStandIn, member: MemberStandIn, kafka_bootstrap: str, codec: AvroCodec
) -> None:
    member_id = room.new_member()
    body = stay("r102", nights=3)
    created = await room.reserve(member_id, body, headers={"X-Request-ID": "req-happy-path"})

    assert created.status_code == 201, created.text
    reservation = created.json()
    rid = reservation_id_for(member_id, "key-1")
    assert reservation["reservation_id"] == rid
    assert {k: reservation[k] for k in body} == body
    assert (reservation["member_id"], reservation["nights"], reservation["status"]) == (
        member_id,
        3,
        "confirmed",
    )
    assert reservation["cancelled_at"] is None
    assert "Idempotent-Replayed" not in created.headers

    # The synchronous checks happened, with service auth and the request id passed along.
    assert member.requests[0]["x-request-id"] == "req-happy-path"
    assert [h["reservation_id"] for h in inventory.hold_requests] == [rid]
    assert inventory.hold_requests[0]["idempotency_key"] == rid

    # The event was written with the reservation, then published to Kafka by the relay.
    [row] = room.events("ReservationCreated", rid)
    assert row.headers["request_id"] == "req-happy-path"
    wait_for(lambda: room.events("ReservationCreated", rid)[0].published_at, what="outbox row published")
    record = kafka_record(kafka_bootstrap, topic_for("ReservationCreated"), rid)
    headers = {name: value.decode() for name, value in record.headers}
    event_type, _, payload = codec.decode(record.value, headers["schema_fingerprint"])
    assert event_type == "ReservationCreated"
    assert (payload["reservation_id"], payload["member_id"], payload["room_id"]) == (rid, member_id, "r102")
    assert (payload["check_in"].isoformat(), payload["nights"]) == (body["check_in"], 3)

    # Readable back, identically, by its owner.
    auth = room.users.headers(member_id)
    assert (await room.client.get(f"/api/v1/reservations/{rid}", headers=auth)).json() == reservation
    listed = (await room.client.get("/api/v1/reservations", headers=auth)).json()
    assert listed == {"items": [reservation], "next_cursor": None}


# -- idempotency -------------------------------------------------------------------------------


async def test_same_key_and_body_five_times_books_once_with_the_same_answer(
    room: Room, inventory: InventoryStandIn
) -> None:
    member_id = room.new_member()
    responses = [await room.reserve(member_id) for _ in range(5)]

    assert {r.status_code for r in responses} == {201}
    assert all(r.json() == responses[0].json() for r in responses)
    assert [r.headers.get("Idempotent-Replayed") for r in responses] == [None] + ["true"] * 4
    assert len(inventory.hold_requests) == 1  # replays ask nobody
    assert room.reservation_count() == 1
    assert len(room.events("ReservationCreated", responses[0].json()["reservation_id"])) == 1


async def test_five_identical_requests_at_once_book_once(room: Room, inventory: InventoryStandIn) -> None:
    member_id = room.new_member()
    inventory.gate_arrivals = 5  # every copy is past the key lookup before any of them stores
    responses = await asyncio.gather(*(room.reserve(member_id) for _ in range(5)))

    assert inventory.gate_opened
    assert [r.status_code for r in responses] == [201] * 5
    assert all(r.json() == responses[0].json() for r in responses)
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in responses) == ["", *["true"] * 4]
    assert len(inventory.holds) == 1
    assert inventory.releases == []  # the losers' hold is the winner's: never released
    assert room.reservation_count() == 1
    assert len(room.events("ReservationCreated", responses[0].json()["reservation_id"])) == 1


async def test_same_key_with_a_different_body_is_422(room: Room) -> None:
    member_id = room.new_member()
    assert (await room.reserve(member_id, stay(nights=2))).status_code == 201
    problem = assert_problem(await room.reserve(member_id, stay(nights=4)), 422)
    assert problem["detail"] == "Idempotency-Key reused with a different request."
    assert room.reservation_count() == 1


async def test_keys_belong_to_one_member(room: Room) -> None:
    first, second = room.new_member(), room.new_member()
    a = await room.reserve(first, stay(nights=2), key="shared")
    b = await room.reserve(second, stay(nights=4), key="shared")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["reservation_id"] != b.json()["reservation_id"]


async def test_missing_or_bad_idempotency_key_is_400(room: Room, inventory: InventoryStandIn) -> None:
    member_id = room.new_member()
    for key in (None, "", "x" * 256):
        problem = assert_problem(await room.reserve(member_id, key=key), 400)
        assert "Idempotency-Key" in problem["detail"]
    assert inventory.hold_requests == []


# -- the synchronous checks --------------------------------------------------------------------


async def test_member_profile_not_created_yet_is_409_with_retry_after(
    room: Room, inventory: InventoryStandIn
) -> None:
    problem = assert_problem(await room.reserve("signed-up-a-moment-ago"), 409)
    assert "not created yet" in problem["detail"]
    assert problem["request_id"]
    assert inventory.hold_requests == []
    # Retry-After as set; the retry with the same key works once the profile exists.
    room.member.add("signed-up-a-moment-ago")
    assert (await room.reserve("signed-up-a-moment-ago")).status_code == 201


async def test_retry_after_of_the_409_is_the_configured_one(start_room: RoomFactory) -> None:
    async with start_room(member_profile_retry_after_s=5) as room:
        response = await room.reserve("no-profile")
    assert_problem(response, 409)
    assert response.headers["Retry-After"] == "5"


async def test_suspended_member_is_403(room: Room, inventory: InventoryStandIn) -> None:
    problem = assert_problem(await room.reserve(room.new_member(status="suspended")), 403)
    assert "suspended" in problem["detail"]
    assert inventory.hold_requests == []
    assert room.outbox() == []


async def test_no_availability_is_409(room: Room, inventory: InventoryStandIn) -> None:
    inventory.sold_out.add("r105")
    problem = assert_problem(await room.reserve(room.new_member(), stay("r105")), 409)
    assert "not available" in problem["detail"]
    assert room.reservation_count() == 0
    assert room.outbox() == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_member_down_is_503_with_retry_after_without_hanging(
    start_room: RoomFactory, inventory: InventoryStandIn
) -> None:
    async with start_room(member_url=f"http://127.0.0.1:{_closed_port()}") as room:
        started = time.monotonic()
        response = await room.reserve(room.new_member(), headers={"X-Deadline-Ms": "8000"})
        elapsed = time.monotonic() - started
    problem = assert_problem(response, 503)
    assert problem["upstream"] == "member"
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed < 8  # failed fast (connection refused), well inside the caller's budget
    assert inventory.hold_requests == []


async def test_member_too_slow_is_503_after_our_own_timeout(
    start_room: RoomFactory, member: MemberStandIn
) -> None:
    async with start_room(member_timeout_s=0.3, upstream_max_attempts=2) as room:
        member_id = room.new_member(status="slow")
        response = await room.reserve(member_id)
    problem = assert_problem(response, 503)
    assert "timed out" in problem["detail"]
    assert "Retry-After" in response.headers
    # A GET is safe to retry, but a timed-out attempt is never followed by another: the first
    # 503 for a hung member comes after one timeout, not upstream_max_attempts of them.
    assert len(member.requests) == 1


async def test_store_failure_after_the_hold_releases_it(room: Room, inventory: InventoryStandIn) -> None:
    refuse_inserts(room.db, "reservations")  # the disk (or a constraint) fails at the worst moment
    member_id = room.new_member()
    response = await room.reserve(member_id)

    assert_problem(response, 503)
    assert response.headers["Retry-After"] == "1"
    rid = reservation_id_for(member_id, "key-1")
    assert inventory.releases == [rid]  # compensation, through inventory's DELETE
    assert room.reservation_count() == 0
    assert room.outbox() == []


async def test_database_write_locked_beyond_the_budget_stores_nothing_and_leaves_no_hold(
    start_room: RoomFactory, inventory: InventoryStandIn
) -> None:
    # Issue 7 fault 2: room's database locked from outside for longer than the request's
    # budget; the client got its 504, yet the reservation, the booking and the mail appeared.
    # The budget must outlast the member and inventory calls before the write, which took more
    # than 1 s on a loaded machine (then no hold was asked for at all); the lock outlasts both.
    async with start_room(db_lock_timeout_s=30, request_timeout_s=4.0) as room:
        member_id = room.new_member()
        # Like `sqlite3 room.db 'BEGIN IMMEDIATE'` in a terminal (PostgreSQL: LOCK TABLE).
        with writes_held(room.settings.database_url, "reservations"):
            started = time.monotonic()
            response = await room.reserve(member_id)
            elapsed = time.monotonic() - started

        assert response.status_code in (503, 504), response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "Retry-After" in response.headers
        assert elapsed < 4.0 + 6.0  # the budget (4 s) and some slack, not the 30 s lock timeout
        rid = reservation_id_for(member_id, "key-1")
        assert [hold["reservation_id"] for hold in inventory.hold_requests] == [rid]
        assert inventory.releases == [rid]  # the hold it took was given back before answering
        assert inventory.holds == {}
        assert room.reservation_count() == 0
        assert room.outbox() == []


# -- reading and cancelling --------------------------------------------------------------------


async def test_another_members_reservation_is_404_everywhere(room: Room) -> None:
    owner, other = room.new_member(), room.new_member()
    rid = (await room.reserve(owner)).json()["reservation_id"]
    as_other = room.users.headers(other)

    assert_problem(await room.client.get(f"/api/v1/reservations/{rid}", headers=as_other), 404)
    assert_problem(await room.client.delete(f"/api/v1/reservations/{rid}", headers=as_other), 404)
    assert (await room.client.get("/api/v1/reservations", headers=as_other)).json()["items"] == []
    owners = await room.client.get(f"/api/v1/reservations/{rid}", headers=room.users.headers(owner))
    assert owners.json()["status"] == "confirmed"  # the other member's DELETE changed nothing
    assert room.events("ReservationCancelled", rid) == []


async def test_unknown_reservation_is_404(room: Room) -> None:
    auth = room.users.headers(room.new_member())
    for path in ("/api/v1/reservations/00000000-0000-0000-0000-000000000000", "/api/v1/reservations/nope"):
        assert_problem(await room.client.get(path, headers=auth), 404)
        assert_problem(await room.client.delete(path, headers=auth), 404)


async def test_cancel_is_idempotent_and_announced_once(room: Room) -> None:
    member_id = room.new_member()
    rid = (await room.reserve(member_id)).json()["reservation_id"]
    auth = room.users.headers(member_id)

    first = await room.client.delete(f"/api/v1/reservations/{rid}", headers=auth)
    again = await room.client.delete(f"/api/v1/reservations/{rid}", headers=auth)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == "cancelled"
    assert first.json()["cancelled_at"] is not None
    assert again.json() == first.json()
    assert (await room.client.get(f"/api/v1/reservations/{rid}", headers=auth)).json() == first.json()
    assert len(room.events("ReservationCancelled", rid)) == 1


async def test_newest_reservation_is_listed_first(room: Room) -> None:
    member_id = room.new_member()
    older = (await room.reserve(member_id, stay(start_in_days=3), key="a")).json()
    newer = (await room.reserve(member_id, stay(start_in_days=9), key="b")).json()
    listed = await room.client.get("/api/v1/reservations", headers=room.users.headers(member_id))
    assert [r["reservation_id"] for r in listed.json()["items"]] == [
        newer["reservation_id"],
        older["reservation_id"],
    ]


async def test_reservations_are_paged_with_cursors_none_twice_none_missed(room: Room) -> None:
    member_id, other = room.new_member(), room.new_member()
    auth = room.users.headers(member_id)

    async def reserve(key: str, day: int) -> str:
        response = await room.reserve(member_id, stay(start_in_days=day), key=key)
        assert response.status_code == 201, response.text
        return str(response.json()["reservation_id"])

    made = [await reserve(f"k{n}", 3 + n) for n in range(7)]
    await room.reserve(other, stay(), key="theirs")
    first = (await room.client.get("/api/v1/reservations", params={"limit": 3}, headers=auth)).json()
    assert [r["reservation_id"] for r in first["items"]] == made[::-1][:3]
    # Reservations made while the member pages belong before page one: they never shift the pages.
    later = [await reserve(f"later{n}", 20 + n) for n in range(2)]
    seen, cursor = [r["reservation_id"] for r in first["items"]], first["next_cursor"]
    while cursor is not None:
        page = await room.client.get(
            "/api/v1/reservations", params={"limit": 3, "cursor": cursor}, headers=auth
        )
        assert page.status_code == 200, page.text
        seen += [r["reservation_id"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert seen == made[::-1]
    everything = (await room.client.get("/api/v1/reservations", headers=auth)).json()
    assert [r["reservation_id"] for r in everything["items"]] == (made + later)[::-1]

    # Their cursor, a changed one, and page sizes outside 1..100 are problems, not pages.
    theirs = room.users.headers(other)
    for params, headers in [
        ({"cursor": first["next_cursor"]}, theirs),
        ({"cursor": first["next_cursor"][:-1] + "x"}, auth),
        ({"limit": 101}, auth),
        ({"limit": 0}, auth),
    ]:
        assert_problem(await room.client.get("/api/v1/reservations", params=params, headers=headers), 422)


# -- bad input ---------------------------------------------------------------------------------


def _dates(check_in_days: int, check_out_days: int) -> dict[str, str]:
    return {
        "room_id": "r101",
        "check_in": (today() + timedelta(days=check_in_days)).isoformat(),
        "check_out": (today() + timedelta(days=check_out_days)).isoformat(),
    }


INVALID_BODIES = [
    (_dates(5, 5), "check_out"),  # check_out == check_in
    (_dates(5, 3), "check_out"),  # check_out before check_in
    (_dates(-1, 2), "check_in"),  # in the past
    (_dates(2, 33), "check_out"),  # 31 nights
    ({**_dates(2, 4), "check_in": "next tuesday"}, "check_in"),
    ({**_dates(2, 4), "check_in": 20300101}, "check_in"),  # a number is not a date
    ({**_dates(2, 4), "check_out": "2030-01-01T00:00:00"}, "check_out"),  # nor a timestamp
    ({**_dates(2, 4), "room_id": 101}, "room_id"),
    ({"room_id": "r101", "check_in": _dates(2, 4)["check_in"]}, "check_out"),  # missing
    ({**_dates(2, 4), "guests": 2}, "guests"),  # unknown field
]


async def test_invalid_requests_are_422_naming_the_field(room: Room, inventory: InventoryStandIn) -> None:
    # One app for every case: starting one per case would cost more than the cases themselves.
    member_id = room.new_member()
    for i, (body, field) in enumerate(INVALID_BODIES):
        response = await room.reserve(member_id, body, key=f"invalid-{i}")
        problem = assert_problem(response, 422)
        assert field in {e["loc"][-1] for e in problem["errors"]}, (body, problem)
    assert inventory.hold_requests == []
    assert room.reservation_count() == 0


async def test_thirty_nights_is_fine(room: Room) -> None:
    assert (await room.reserve(room.new_member(), _dates(1, 31))).status_code == 201


async def test_malformed_json_is_400(room: Room) -> None:
    member_id = room.new_member()
    response = await room.client.post(
        "/api/v1/reservations",
        content=b'{"room_id": "r101", "check_in": ',
        headers={**room.users.headers(member_id), "Idempotency-Key": "k", "Content-Type": "application/json"},
    )
    assert_problem(response, 400)


async def test_unknown_room_is_404(room: Room, inventory: InventoryStandIn) -> None:
    problem = assert_problem(await room.reserve(room.new_member(), stay("r999")), 404)
    assert "r999" in problem["detail"]
    assert inventory.hold_requests == []


async def test_reservations_need_a_user_token(room: Room) -> None:
    for method, path in [
        ("POST", "/api/v1/reservations"),
        ("GET", "/api/v1/reservations"),
        ("GET", "/api/v1/reservations/x"),
        ("DELETE", "/api/v1/reservations/x"),
    ]:
        response = await room.client.request(method, path, json=stay(), headers={"Idempotency-Key": "k"})
        assert_problem(response, 401)
