"""Provider verification of every consumer contract in contracts/consumers/.

For each interaction a consumer declares, the provider's real app is built in-process
(``create_app``, migrated SQLite in a temp folder, no Kafka: the lifespan does not run), the
interaction's provider state is set up through the provider's own use cases and repositories,
the request is sent with real credentials (a service token from the calling service, or a user
token), and the status and every field the consumer reads (with its type) are checked. A
failure names the consumer, the interaction and each missing or changed field.

Provider states live here, one table per provider, in the provider's own terms. A contract
naming a state that is not in its provider's table fails too: add the state (the consumer's
owners ask, the provider's owners implement).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import auth_service
import inventory_service
import member_service
import notification_service
import room_service
from auth_service.adapters.orm import User
from auth_service.app import create_app as create_auth
from auth_service.settings import AuthSettings
from common.pagination import PageRequest
from common.runtime import ServiceRuntime
from common.settings import ServiceSettings
from common.testing.apps import migrated
from common.testing.contracts import (
    Contract,
    Credentials,
    Interaction,
    ProviderState,
    failure_report,
    load_contracts,
    verify_interaction,
)
from common.testing.tokens import TestUsers
from inventory_service.app import create_app as create_inventory
from inventory_service.domain.model import Stay as InventoryStay
from inventory_service.seed import DEMO_ROOMS as INVENTORY_ROOMS
from inventory_service.settings import InventorySettings
from member_service.app import create_app as create_member
from member_service.service_layer.members import register_member
from member_service.settings import MemberSettings
from notification_service.adapters.repository import NotificationRepository
from notification_service.app import create_app as create_notification
from notification_service.service_layer.notifications import Notifier
from notification_service.settings import NotificationSettings
from room_service.adapters.repositories import ReservationRepository
from room_service.app import create_app as create_room
from room_service.domain.model import Reservation, ReservationStatus
from room_service.seed import seed as seed_rooms
from room_service.settings import RoomSettings

CONTRACTS = load_contracts()
CASES = [(c, i) for c in CONTRACTS for i in c.interactions]


def _runtime(app: FastAPI) -> ServiceRuntime:
    runtime: ServiceRuntime = app.state.runtime
    return runtime


def _today() -> date:
    return datetime.now(UTC).date()


def _stay(start_in_days: int = 3, nights: int = 2) -> dict[str, str]:
    check_in = _today() + timedelta(days=start_in_days)
    return {"check_in": check_in.isoformat(), "check_out": (check_in + timedelta(days=nights)).isoformat()}


def _nothing(_app: FastAPI, _params: dict[str, str]) -> None:
    """A state that holds with an empty database."""


# -- member ------------------------------------------------------------------------------------


def _member(member_id: str, *, suspended: bool = False) -> ProviderState:
    def setup(app: FastAPI, _params: dict[str, str]) -> None:
        with _runtime(app).db.transaction() as session:
            register_member(session, member_id, f"{member_id}@example.com", "Ada", datetime.now(UTC))
        if suspended:
            app.state.members.suspend(member_id)

    return setup


MEMBER_STATES: dict[str, ProviderState] = {
    "member m1 exists and is active": _member("m1"),
    "member m2 exists and is suspended": _member("m2", suspended=True),
    "member m3 has no profile yet": _nothing,
    "member u1 has a profile": _member("u1"),
    "member u1 has no profile yet": _nothing,
}


# -- inventory ---------------------------------------------------------------------------------


def _on_sale(app: FastAPI) -> None:
    """The demo rooms (r101..r105, r105 with a single unit) on sale for 60 nights from today."""
    app.state.inventory.add_missing_nights(INVENTORY_ROOMS, _today(), 60)


def _stay_on_sale(app: FastAPI, _params: dict[str, str]) -> dict[str, str]:
    _on_sale(app)
    return _stay()


def _held(reservation_id: str, room_id: str, *, other_nights: bool = False) -> ProviderState:
    def setup(app: FastAPI, _params: dict[str, str]) -> dict[str, str]:
        _on_sale(app)
        asked, held = _stay(), _stay(start_in_days=10) if other_nights else _stay()
        stay = InventoryStay(
            room_id, date.fromisoformat(held["check_in"]), date.fromisoformat(held["check_out"])
        )
        app.state.inventory.place_hold(reservation_id, stay)
        return asked

    return setup


def _nights_on_sale(app: FastAPI, _params: dict[str, str]) -> dict[str, str]:
    _on_sale(app)
    return {"from": _today().isoformat(), "to": (_today() + timedelta(days=7)).isoformat()}


INVENTORY_STATES: dict[str, ProviderState] = {
    "room r101 has a free unit on the nights asked": _stay_on_sale,
    "reservation h1 already holds those nights of room r101": _held("h1", "r101"),
    # r105 has a single unit: another reservation holds it.
    "room r105 has no free unit on the nights asked": _held("someone-else", "r105"),
    "room r999 is unknown to inventory": _stay_on_sale,  # the demo rooms only
    "reservation h1 already holds other nights of room r101": _held("h1", "r101", other_nights=True),
    "room r101 has nights on sale": _nights_on_sale,
}


# -- room --------------------------------------------------------------------------------------


def _rooms(app: FastAPI, _params: dict[str, str]) -> None:
    settings = _runtime(app).settings
    assert isinstance(settings, RoomSettings)
    seed_rooms(settings)


def _reservation(app: FastAPI, params: dict[str, str]) -> None:
    _rooms(app, params)
    stay = _stay()
    reservation = Reservation(
        reservation_id="res-1",
        member_id="u1",
        room_id="r101",
        check_in=date.fromisoformat(stay["check_in"]),
        check_out=date.fromisoformat(stay["check_out"]),
        status=ReservationStatus.CONFIRMED,
        created_at=datetime.now(UTC),
    )
    with _runtime(app).db.transaction() as session:
        ReservationRepository(session).add(reservation)


def _answer_for_upstream(
    app: FastAPI, upstream: str, answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    """Room's client of ``upstream`` gets ``answer`` instead of a network (room's own wiring kept)."""
    client = _runtime(app).clients[upstream]
    client._http = httpx.AsyncClient(base_url=client._http.base_url, transport=httpx.MockTransport(answer))


def _may_reserve(app: FastAPI, params: dict[str, str]) -> dict[str, str]:
    """Room asks member and inventory before it reserves: they answer as room's own contracts
    with them say (room--member.yaml, room--inventory.yaml)."""
    _rooms(app, params)

    def member(request: httpx.Request) -> httpx.Response:
        member_id = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"member_id": member_id, "status": "active", "active": True})

    def inventory(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={**json.loads(request.content), "status": "held"})

    _answer_for_upstream(app, "member", member)
    _answer_for_upstream(app, "inventory", inventory)
    return _stay()


ROOM_STATES: dict[str, ProviderState] = {
    "the demo rooms exist": _rooms,
    "member u1 has reservation res-1": _reservation,
    "member u1 may reserve room r101 on free nights": _may_reserve,
}


# -- auth --------------------------------------------------------------------------------------


def _ada(app: FastAPI, _params: dict[str, str]) -> None:
    app.state.accounts.signup("ada@example.com", "correct-horse", "Ada")


def _logged_in(app: FastAPI, params: dict[str, str]) -> dict[str, str]:
    _ada(app, params)
    tokens = app.state.sessions.login("ada@example.com", "correct-horse", "127.0.0.1")
    return {"refresh_token": tokens.refresh_token}


def _u1_and_a_license(app: FastAPI, _params: dict[str, str]) -> dict[str, str]:
    # Test tokens name user u1: auth's users get random ids on sign-up, so u1 is stored as is.
    with _runtime(app).db.transaction() as session:
        session.add(
            User(
                user_id="u1",
                email="u1@example.com",
                display_name="Ada",
                password_hash="not-used",
                role="member",
                created_at=datetime.now(UTC),
            )
        )
    issued = app.state.licensing.issue("reservations-pro", 3, created_by=None)
    return {"license_key": issued.license_key}


def _activated(app: FastAPI, params: dict[str, str]) -> None:
    app.state.licensing.activate("u1", _u1_and_a_license(app, params)["license_key"], "laptop-1")


AUTH_STATES: dict[str, ProviderState] = {
    "user ada@example.com exists with password correct-horse": _ada,
    "user ada@example.com has logged in": _logged_in,
    "user u1 exists and a license with a free seat exists": _u1_and_a_license,
    "user u1 has activated a license": _activated,
}


# -- notification ------------------------------------------------------------------------------


def _known_user(app: FastAPI, _params: dict[str, str]) -> None:
    event = {"user_id": "u1", "email": "u1@example.com", "display_name": "Ada"}
    with _runtime(app).db.transaction() as session:
        Notifier().user_registered(session, str(uuid.uuid4()), event)


def _sent_mail(app: FastAPI, params: dict[str, str]) -> dict[str, str]:
    _known_user(app, params)
    with _runtime(app).db.transaction() as session:
        notifications = NotificationRepository(session)
        [mail] = notifications.for_member("u1", PageRequest()).items
        now = datetime.now(UTC)
        claimed = notifications.claim(mail.notification_id, now, now + timedelta(minutes=5))
        assert claimed is not None
        notifications.finish(claimed, "sent", sent_at=now)
    return {"notification_id": mail.notification_id}


NOTIFICATION_STATES: dict[str, ProviderState] = {
    "notification knows user u1 (contact copy and welcome mail)": _known_user,
    "notification sent mail n1 to user u1": _sent_mail,
}


# -- the providers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """How to build one provider in-process, and its provider states."""

    settings: Callable[[Path, Path], ServiceSettings]  # (work dir, service keys dir)
    create_app: Callable[[Any], FastAPI]
    migrations: Path
    states: Mapping[str, ProviderState]


def _db(work: Path, name: str) -> str:
    return f"sqlite:///{work / f'{name}.db'}"


PROVIDERS: dict[str, Provider] = {
    "member": Provider(
        lambda work, keys: MemberSettings(
            env="test", database_url=_db(work, "member"), service_keys_dir=keys
        ),
        create_member,
        Path(member_service.__file__).parent / "migrations",
        MEMBER_STATES,
    ),
    "inventory": Provider(
        lambda work, keys: InventorySettings(
            env="test", database_url=_db(work, "inventory"), service_keys_dir=keys
        ),
        create_inventory,
        Path(inventory_service.__file__).parent / "migrations",
        INVENTORY_STATES,
    ),
    "room": Provider(
        lambda work, keys: RoomSettings(env="test", database_url=_db(work, "room"), service_keys_dir=keys),
        create_room,
        Path(room_service.__file__).parent / "migrations",
        ROOM_STATES,
    ),
    "auth": Provider(
        lambda work, keys: AuthSettings(
            env="test",
            database_url=_db(work, "auth"),
            service_keys_dir=keys,
            user_token_keys_dir=work / "user-token-keys",
            password_hash_time_cost=1,  # fast hashing: these tests are about the contract
            password_hash_memory_kib=1024,
        ),
        create_auth,
        Path(auth_service.__file__).parent / "migrations",
        AUTH_STATES,
    ),
    "notification": Provider(
        lambda work, keys: NotificationSettings(
            env="test", database_url=_db(work, "notification"), service_keys_dir=keys
        ),
        create_notification,
        Path(notification_service.__file__).parent / "migrations",
        NOTIFICATION_STATES,
    ),
}


async def _close(app: FastAPI) -> None:
    """What the lifespan would close (it never ran): connection pools and the database."""
    runtime = _runtime(app)
    await asyncio.gather(*(client.aclose() for client in runtime.clients.values()), runtime.jwks.aclose())
    runtime.db.dispose()


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-keys")


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> Callable[[str], Path]:
    """``migrated_db(provider)``: a database file at the provider's head revision, made once and
    copied by each test (migrating takes longer than the whole check)."""
    templates: dict[str, Path] = {}

    def template(name: str) -> Path:
        if name not in templates:
            work = tmp_path_factory.mktemp(f"{name}-template")
            provider = PROVIDERS[name]
            settings = migrated(provider.settings(work, keys_dir), provider.migrations)
            templates[name] = Path(settings.database_url.removeprefix("sqlite:///"))
        return templates[name]

    return template


def test_every_contract_has_a_provider_to_verify_it() -> None:
    assert CONTRACTS, "no consumer contracts found in contracts/consumers"
    assert {c.provider for c in CONTRACTS} <= PROVIDERS.keys()


@pytest.mark.parametrize(
    ("contract", "interaction"), CASES, ids=[f"{c.name}: {i.description}" for c, i in CASES]
)
async def test_provider_serves_what_its_consumer_reads(
    contract: Contract,
    interaction: Interaction,
    tmp_path: Path,
    keys_dir: Path,
    migrated_db: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    provider = PROVIDERS[contract.provider]
    shutil.copyfile(migrated_db(contract.provider), tmp_path / f"{contract.provider}.db")
    app = provider.create_app(provider.settings(tmp_path, keys_dir))
    users = TestUsers()
    users.trust(app)
    try:
        problems = await verify_interaction(
            contract, interaction, app, states=provider.states, credentials=Credentials(keys_dir, users)
        )
    finally:
        await _close(app)

    assert not problems, failure_report(contract, interaction, problems)
