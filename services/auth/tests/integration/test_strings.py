"""User-visible strings are checked at the door: a CRLF in a machine id never reaches a mail."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from auth_service.adapters.orm import messaging
from auth_service.settings import AuthSettings
from common.db import Database

from .conftest import AuthApi, User

pytestmark = pytest.mark.kafka

BAD = ["x\x00", "x\r\nBcc: all@example.com", "x\ny", "x\u202etxt.exe", "x\u2069", "x\x1b[2J"]
IDS = ["nul", "crlf", "lf", "rlo", "pdi", "escape"]


def refused(response_json: dict[str, object], field: str) -> bool:
    errors = response_json["errors"]
    assert isinstance(errors, list)
    return errors[0]["loc"] == ["body", field]


@pytest.mark.parametrize("name", BAD, ids=IDS)
async def test_signup_refuses_control_and_bidi_characters_in_the_display_name(
    api: AuthApi, name: str
) -> None:
    response = await api.signup(name=f"Ann {name}")

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert refused(response.json(), "display_name")


@pytest.mark.parametrize("machine_id", [*BAD, "-leading-dash", "é"], ids=[*IDS, "dash", "non-ascii"])
async def test_activation_refuses_a_machine_id_that_is_not_a_plain_identifier(
    api: AuthApi, admin: User, settings: AuthSettings, machine_id: str
) -> None:
    body = {"license_key": "DEMO-0000-0000-0001", "machine_id": f"laptop{machine_id}"}
    if machine_id in ("-leading-dash", "é"):
        body["machine_id"] = machine_id

    response = await api.client.post("/api/v1/licenses/activate", json=body, headers=admin.headers)

    assert response.status_code == 422, response.text
    assert refused(response.json(), "machine_id")
    db = Database(settings.database_url)
    try:  # nothing was activated, so no mail can be built from it
        with db.read() as session:
            activated = session.scalar(
                select(func.count())
                .select_from(messaging.outbox)
                .where(messaging.outbox.c.event_type == "LicenseActivated")
            )
    finally:
        db.dispose()
    assert activated == 0


@pytest.mark.parametrize(
    "license_key", ["DEMO\r\n0001", "DEMO 0000", "DEMO\u202e"], ids=["crlf", "space", "rlo"]
)
async def test_activation_refuses_a_license_key_with_other_characters(
    api: AuthApi, admin: User, license_key: str
) -> None:
    body = {"license_key": license_key, "machine_id": "laptop-1"}

    response = await api.client.post("/api/v1/licenses/activate", json=body, headers=admin.headers)

    assert response.status_code == 422, response.text
    assert refused(response.json(), "license_key")
