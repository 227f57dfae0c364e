"""Sessions end: logout revokes a refresh family; a suspension from member (MemberUpdated) locks
the account out of login, refresh and license activation and revokes every session."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from auth_service.adapters.orm import RefreshToken, messaging
from auth_service.adapters.orm import User as UserRow
from auth_service.settings import AuthSettings
from common.db import Database
from common.testing.events import EventPublisher, eventually

from .conftest import PASSWORD, AuthApi, User, bearer

pytestmark = pytest.mark.kafka


async def logout(api: AuthApi, refresh_token: str, headers: dict[str, str] | None = None) -> Any:
    return await api.client.post(
        "/api/v1/auth/logout", json={"refresh_token": refresh_token}, headers=headers or {}
    )


async def test_logout_revokes_the_family_and_is_idempotent(api: AuthApi) -> None:
    user = await api.new_user()
    tokens = (await api.login(user.email)).json()
    rotated = (await api.refresh(tokens["refresh_token"])).json()  # the family has two tokens now
    other_session = (await api.login(user.email)).json()

    out = await logout(api, rotated["refresh_token"])
    again = await logout(api, rotated["refresh_token"])

    assert (out.status_code, out.content) == (204, b"")
    assert out.headers["cache-control"] == "no-store"
    assert again.status_code == 204
    assert (await api.refresh(rotated["refresh_token"])).status_code == 401
    # Another session of the same user (another family, another device) goes on.
    assert (await api.refresh(other_session["refresh_token"])).status_code == 200


async def test_logout_with_an_unknown_token_changes_nothing(api: AuthApi) -> None:
    assert (await logout(api, "never-issued")).status_code == 204


async def test_no_one_logs_out_someone_else_with_their_own_access_token(api: AuthApi) -> None:
    alice, bob = await api.new_user(), await api.new_user()
    hers = (await api.login(alice.email)).json()

    refused = await logout(api, hers["refresh_token"], headers=bob.headers)
    forged = await logout(api, hers["refresh_token"], headers=bearer("not-a-token"))

    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert forged.status_code == 401
    assert (await api.refresh(hers["refresh_token"])).status_code == 200
    assert (await logout(api, hers["refresh_token"], headers=alice.headers)).status_code == 204


def member_updated(user_id: str, email: str, version: int, status: str) -> dict[str, Any]:
    return {
        "member_id": user_id,
        "version": version,
        "email": email,
        "display_name": "Ann",
        "tier": "standard",
        "status": status,
        "updated_at": datetime.now(UTC),
    }


def account(settings: AuthSettings, user_id: str) -> tuple[str, int, int]:
    """The user's status, its version, and how many of their refresh tokens are still live."""
    db = Database(settings.database_url)
    try:
        with db.read() as session:
            row = session.get(UserRow, user_id)
            assert row is not None
            live = session.scalars(
                select(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            ).all()
            return row.status, row.status_version, len(live)
    finally:
        db.dispose()


def processed(settings: AuthSettings, event_id: str) -> bool:
    """Whether auth's MemberUpdated consumer has handled (and committed) the event."""
    table = messaging.processed_events
    db = Database(settings.database_url)
    try:
        with db.read() as session:
            query = select(table.c.event_id).where(
                table.c.consumer == "auth.members", table.c.event_id == event_id
            )
            return session.scalar(query) is not None
    finally:
        db.dispose()


async def suspend(events: EventPublisher, settings: AuthSettings, user: User, version: int = 2) -> None:
    await asyncio.to_thread(
        events.publish,
        "MemberUpdated",
        user.user_id,
        member_updated(user.user_id, user.email, version, "suspended"),
    )
    await eventually(
        lambda: account(settings, user.user_id)[0] == "suspended", "auth to learn the suspension"
    )


async def test_a_suspension_revokes_every_session_and_refuses_refresh_login_and_activation(
    api: AuthApi, admin: User, settings: AuthSettings, events: EventPublisher
) -> None:
    user = await api.new_user()
    refresh_token = (await api.login(user.email)).json()["refresh_token"]
    assert account(settings, user.user_id)[2] == 2  # two sessions

    await suspend(events, settings, user)

    assert account(settings, user.user_id) == ("suspended", 2, 0)
    refreshed = await api.refresh(refresh_token)
    logged_in = await api.login(user.email, PASSWORD)
    # The access token is still valid (it expires on its own): auth asks the status itself.
    activated = await api.client.post(
        "/api/v1/licenses/activate",
        json={"license_key": "DEMO-0000-0000-0001", "machine_id": "laptop-1"},
        headers=user.headers,
    )
    for refused in (refreshed, logged_in, activated):
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "suspended" in refused.json()["detail"]


async def test_an_old_member_event_arriving_late_does_not_undo_a_suspension(
    api: AuthApi, settings: AuthSettings, events: EventPublisher
) -> None:
    user = await api.new_user()
    await suspend(events, settings, user, version=3)

    stale = member_updated(user.user_id, user.email, 2, "active")
    sent = await asyncio.to_thread(events.publish, "MemberUpdated", user.user_id, stale)
    await eventually(lambda: processed(settings, sent.envelope.event_id), "the stale event to be consumed")

    assert account(settings, user.user_id)[:2] == ("suspended", 3)
    assert (await api.login(user.email)).status_code == 403


async def test_a_later_reactivation_lets_the_member_log_in_again(
    api: AuthApi, settings: AuthSettings, events: EventPublisher
) -> None:
    user = await api.new_user()
    await suspend(events, settings, user, version=2)

    active = member_updated(user.user_id, user.email, 3, "active")
    await asyncio.to_thread(events.publish, "MemberUpdated", user.user_id, active)
    await eventually(lambda: account(settings, user.user_id)[0] == "active", "the reactivation")

    assert (await api.login(user.email)).status_code == 200
