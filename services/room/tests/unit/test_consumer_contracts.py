"""Room's side of its consumer contracts (contracts/consumers/room--member.yaml, room--inventory.yaml).

Room's real clients (``MemberDirectory``, ``InventoryHolds`` on a real ``ServiceClient`` with
room's service key) talk to a stub made from each interaction of the contract: the stub answers
with the contract's example body, which holds only the fields room declares it reads, and checks
that room sends what the contract says (method, path, Idempotency-Key, body shape, a service
token from room for that provider). Every interaction needs an expectation below, so the
contract and room's code can't drift apart. The providers verify the same files in
tests/contracts/test_consumer_contracts.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from common.auth import build_service_auth
from common.http import RetryPolicy, ServiceClient
from common.testing.contracts import Contract, Interaction, InteractionStub, load_contracts
from room_service.adapters.clients import Hold, HoldRefused, InventoryHolds, MemberDirectory, MemberStanding
from room_service.domain.model import Reservation, ReservationStatus

CONTRACTS = {c.provider: c for c in load_contracts(consumer="room")}
CASES = [(c, i) for c in CONTRACTS.values() for i in c.interactions]


def reservation_asked_for(interaction: Interaction) -> Reservation:
    """The reservation whose hold the interaction's request body describes."""
    body = interaction.request.resolve().json
    return Reservation(
        reservation_id=body["reservation_id"],
        member_id="m1",
        room_id=body["room_id"],
        check_in=date.fromisoformat(body["check_in"]),
        check_out=date.fromisoformat(body["check_out"]),
        status=ReservationStatus.CONFIRMED,
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def hold_of(reservation: Reservation) -> Hold:
    return Hold(reservation.reservation_id, reservation.room_id, reservation.check_in, reservation.check_out)


async def _member(client: ServiceClient, _interaction: Interaction, member_id: str) -> Any:
    return await MemberDirectory(client).standing(member_id)


async def _hold(client: ServiceClient, interaction: Interaction) -> Any:
    reservation = reservation_asked_for(interaction)
    hold = await InventoryHolds(client, release_timeout_s=1).hold(reservation)
    if isinstance(hold, Hold):
        assert hold.covers(reservation)
    return hold


async def _release(client: ServiceClient, _interaction: Interaction, reservation_id: str) -> Any:
    return await InventoryHolds(client, release_timeout_s=1).release(reservation_id)


Call = Callable[[ServiceClient, Interaction], Awaitable[Any]]
FREE_NIGHTS = reservation_asked_for(CONTRACTS["inventory"].interaction("a hold on free nights"))

# What room makes of each interaction: (how room calls, what it concludes).
EXPECTED: dict[tuple[str, str], tuple[Call, Any]] = {
    ("member", "standing of an active member"): (
        lambda c, i: _member(c, i, "m1"),
        MemberStanding("m1", "active", active=True),
    ),
    ("member", "standing of a suspended member"): (
        lambda c, i: _member(c, i, "m2"),
        MemberStanding("m2", "suspended", active=False),
    ),
    ("member", "a member without a profile yet"): (lambda c, i: _member(c, i, "m3"), None),
    ("inventory", "a hold on free nights"): (_hold, hold_of(FREE_NIGHTS)),
    ("inventory", "the same hold asked again (a retry)"): (_hold, hold_of(FREE_NIGHTS)),
    ("inventory", "a hold on a night with no free unit"): (_hold, HoldRefused.NO_AVAILABILITY),
    ("inventory", "a hold on a room inventory does not know"): (_hold, HoldRefused.NO_AVAILABILITY),
    ("inventory", "a hold id already used for other nights"): (_hold, HoldRefused.OTHER_STAY),
    ("inventory", "release a hold"): (lambda c, i: _release(c, i, "h1"), True),
    ("inventory", "release a hold that is not there (idempotent)"): (lambda c, i: _release(c, i, "h9"), True),
}


def test_room_has_contracts_with_both_dependencies() -> None:
    assert set(CONTRACTS) == {"member", "inventory"}


def test_every_interaction_has_an_expectation_and_every_expectation_an_interaction() -> None:
    declared = {(c.provider, i.description) for c, i in CASES}
    assert declared - EXPECTED.keys() == set(), (
        "interactions room's tests don't exercise: add them to EXPECTED"
    )
    assert EXPECTED.keys() - declared == set(), "expectations for interactions no contract declares"


@pytest.mark.parametrize(
    ("contract", "interaction"), CASES, ids=[f"{c.name}: {i.description}" for c, i in CASES]
)
async def test_room_needs_no_more_than_its_contract(
    contract: Contract, interaction: Interaction, tmp_path: Path
) -> None:
    call, expected = EXPECTED[(contract.provider, interaction.description)]
    room_auth = build_service_auth("jwt", "room", tmp_path, None)  # room's own key pair
    stub = InteractionStub(contract, interaction, keys_dir=tmp_path)
    client = ServiceClient(
        contract.provider,
        f"http://{contract.provider}",
        caller="room",
        auth=lambda: room_auth.headers_for(contract.provider),
        retry=RetryPolicy(max_attempts=1),
        transport=stub.transport,
    )
    async with client:
        with stub.verified():
            outcome = await call(client, interaction)

    assert outcome == expected
