"""Licenses over HTTP: admin-only issue, seats enforced atomically, idempotent re-activation."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update

from auth_service.adapters.orm import Activation, License, messaging
from auth_service.bootstrap import build_token_issuer
from auth_service.seed import DEMO_LICENSE_KEY, seed
from auth_service.settings import AuthSettings
from common.db import Database

from .conftest import AuthApi, User, wait_for_event

pytestmark = pytest.mark.kafka


async def issue(api: AuthApi, admin: User, seats: int, product: str = "Reservations Pro") -> dict[str, Any]:
    response = await api.client.post(
        "/api/v1/licenses", json={"product": product, "seats": seats}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def activate(api: AuthApi, user: User, key: str, machine: str) -> Any:
    return await api.client.post(
        "/api/v1/licenses/activate", json={"license_key": key, "machine_id": machine}, headers=user.headers
    )


def count(settings: AuthSettings, query: Any) -> int:
    db = Database(settings.database_url)
    try:
        with db.read() as session:
            return int(session.scalar(query) or 0)
    finally:
        db.dispose()


def activated_events(settings: AuthSettings) -> int:
    outbox = messaging.outbox
    return count(
        settings,
        select(func.count()).select_from(outbox).where(outbox.c.event_type == "LicenseActivated"),
    )


async def test_only_admins_issue_licenses(api: AuthApi, admin: User) -> None:
    member = await api.new_user()
    body = {"product": "Reservations Pro", "seats": 2}

    assert (await api.client.post("/api/v1/licenses", json=body)).status_code == 401
    assert (await api.client.post("/api/v1/licenses", json=body, headers=member.headers)).status_code == 403
    issued = await issue(api, admin, seats=2)

    assert issued["status"] == "active"
    assert issued["seats"] == 2
    assert issued["product"] == "Reservations Pro"
    assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", issued["license_key"])
    bad = await api.client.post("/api/v1/licenses", json={"product": "X", "seats": 0}, headers=admin.headers)
    assert bad.status_code == 422


async def test_seats_run_out_and_the_same_machine_keeps_its_activation(
    api: AuthApi, admin: User, settings: AuthSettings, kafka_bootstrap: str
) -> None:
    license_ = await issue(api, admin, seats=3)
    user = await api.new_user()

    first = await activate(api, user, license_["license_key"].lower(), "machine-1")  # keys are typed by hand
    assert first.status_code == 200, first.text
    for n in (2, 3):
        assert (await activate(api, user, license_["license_key"], f"machine-{n}")).status_code == 200
    fourth = await activate(api, user, license_["license_key"], "machine-4")
    again = await activate(api, user, license_["license_key"], "machine-1")

    assert fourth.status_code == 409
    assert again.status_code == 200
    assert again.json()["activation_id"] == first.json()["activation_id"]
    assert again.json()["seats_used"] == again.json()["seats_total"] == 3
    assert first.json() | {"seats_used": 3} == again.json()
    assert activated_events(settings) == 3  # only new activations publish
    mine = (await api.client.get("/api/v1/licenses", headers=user.headers)).json()["items"]
    assert [a["machine_id"] for a in mine] == ["machine-1", "machine-2", "machine-3"]
    assert all(a["license_id"] == license_["license_id"] and a["seats_used"] == 3 for a in mine)

    envelope, payload = await asyncio.to_thread(
        wait_for_event, kafka_bootstrap, "LicenseActivated", "auth.licenses", license_["license_id"]
    )
    assert envelope.producer == "auth"
    assert payload["user_id"] == user.user_id
    assert payload["product"] == "Reservations Pro"
    assert payload["activation_id"] in {a["activation_id"] for a in mine}
    assert license_["license_key"] not in str(payload)  # the key is a secret, never in an event


async def test_my_activations_are_paged_oldest_first_and_cursors_stay_mine(api: AuthApi, admin: User) -> None:
    license_ = await issue(api, admin, seats=10)
    user, other = await api.new_user(), await api.new_user()
    for n in range(5):
        assert (await activate(api, user, license_["license_key"], f"machine-{n}")).status_code == 200
    assert (await activate(api, other, license_["license_key"], "theirs")).status_code == 200

    async def page(who: User, **params: Any) -> Any:
        return await api.client.get("/api/v1/licenses", params=params, headers=who.headers)

    first = (await page(user, limit=2)).json()
    assert [a["machine_id"] for a in first["items"]] == ["machine-0", "machine-1"]
    # An activation made meanwhile sorts after the others (oldest first): it is read once, at the end.
    assert (await activate(api, user, license_["license_key"], "machine-5")).status_code == 200
    seen, cursor = [a["machine_id"] for a in first["items"]], first["next_cursor"]
    while cursor:
        body = (await page(user, limit=2, cursor=cursor)).json()
        seen += [a["machine_id"] for a in body["items"]]
        cursor = body["next_cursor"]
    assert seen == [f"machine-{n}" for n in range(6)]

    foreign = await page(other, cursor=first["next_cursor"])
    assert foreign.status_code == 422
    assert foreign.headers["content-type"].startswith("application/problem+json")
    assert (await page(user, limit=101)).status_code == 422


async def test_concurrent_activations_never_take_more_seats_than_there_are(
    api: AuthApi, admin: User, settings: AuthSettings
) -> None:
    license_ = await issue(api, admin, seats=3)
    user = await api.new_user()

    responses = await asyncio.gather(
        *(activate(api, user, license_["license_key"], f"machine-{n}") for n in range(10))
    )

    assert sorted(r.status_code for r in responses) == [200] * 3 + [409] * 7
    activations = select(func.count()).select_from(Activation)
    assert count(settings, activations.where(Activation.license_id == license_["license_id"])) == 3
    assert activated_events(settings) == 3


async def test_unknown_and_revoked_licenses(api: AuthApi, admin: User, settings: AuthSettings) -> None:
    user = await api.new_user()
    license_ = await issue(api, admin, seats=5)
    assert (await activate(api, user, license_["license_key"], "m-1")).status_code == 200

    unknown = await activate(api, user, "ZZZZ-ZZZZ-ZZZZ-ZZZZ", "m-1")
    db = Database(settings.database_url)
    try:  # there is no revoke route yet: an operator would do this
        with db.transaction() as session:
            session.execute(update(License).values(status="revoked"))
    finally:
        db.dispose()
    revoked = await activate(api, user, license_["license_key"], "m-2")
    revoked_again = await activate(api, user, license_["license_key"], "m-1")

    assert unknown.status_code == 404
    assert revoked.status_code == 409
    assert revoked_again.status_code == 409
    assert "revoked" in revoked.json()["detail"]


async def test_activation_needs_a_user_and_valid_input(api: AuthApi, admin: User) -> None:
    body = {"license_key": "DEMO-0000-0000-0001", "machine_id": "m-1"}
    assert (await api.client.post("/api/v1/licenses/activate", json=body)).status_code == 401
    assert (await api.client.get("/api/v1/licenses")).status_code == 401
    for bad in (
        {"license_key": "DEMO-0000-0000-0001", "machine_id": ""},
        {"license_key": "DEMO-0000-0000-0001", "machine_id": "m" * 129},
        {"license_key": "DEMO-0000-0000-0001"},
        {**body, "seats": 3},
    ):
        response = await api.client.post("/api/v1/licenses/activate", json=bad, headers=admin.headers)
        assert response.status_code == 422, bad


async def test_seed_is_idempotent_and_its_demo_license_works(
    api: AuthApi, admin: User, settings: AuthSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    seed(settings)  # the `admin` fixture seeded once already

    printed = capsys.readouterr().out
    assert "already exists" in printed
    assert settings.admin_password.get_secret_value() not in printed
    outbox = messaging.outbox
    registered = select(func.count()).select_from(outbox).where(outbox.c.event_type == "UserRegistered")
    assert count(settings, registered.where(outbox.c.key == admin.user_id)) == 1
    assert count(settings, select(func.count()).select_from(License)) == 1
    admin_token = admin.headers["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(admin_token, options={"verify_signature": False})["roles"] == ["member", "admin"]
    activation = await activate(api, admin, DEMO_LICENSE_KEY, "demo-machine")
    assert activation.status_code == 200
    assert activation.json()["product"] == "Reservations Pro"
    assert activation.json()["seats_total"] == 3


def test_seed_refuses_the_default_admin_password_in_prod_and_short_ones_anywhere(
    settings: AuthSettings,
) -> None:
    with pytest.raises(SystemExit, match="AUTH_ADMIN_PASSWORD"):
        seed(settings.model_copy(update={"env": "prod"}))
    with pytest.raises(SystemExit, match="AUTH_ADMIN_PASSWORD"):
        seed(settings.model_copy(update={"admin_password": SecretStr("short")}))


async def test_a_valid_token_for_a_user_that_does_not_exist_is_refused_not_a_500(
    api: AuthApi, admin: User, settings: AuthSettings
) -> None:
    issued = await issue(api, admin, seats=1)
    ghost = build_token_issuer(settings).issue("00000000-0000-0000-0000-00000000dead", ["member"])
    response = await api.client.post(
        "/api/v1/licenses/activate",
        json={"license_key": issued["license_key"], "machine_id": "m-ghost"},
        headers={"Authorization": f"Bearer {ghost}"},
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert count(settings, select(func.count()).select_from(Activation)) == 0
