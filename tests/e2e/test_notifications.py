"""Mail that fails: retried when the refusal is temporary (``NOTIFICATION_MAIL_RETRY_HORIZON_S``
is 2 s in this stack), given up and shown as ``failed`` either way, never in the way of the rest."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from stack.runner import Stack

from .conftest import PASSWORD, Mailbox, eventually, login


@pytest.mark.parametrize(("suffix", "retried"), [("+tempfail", True), ("+fail", False)])
def test_a_refused_welcome_mail_is_retried_if_temporary_then_marked_failed(
    client: httpx.Client, stack: Stack, mailbox: Mailbox, suffix: str, retried: bool
) -> None:
    # The SMTP sink refuses `...+tempfail@` with 451 (retry) and `...+fail@` with 550 (don't).
    email = f"unlucky-{uuid.uuid4().hex[:8]}{suffix}@example.com"
    signup = client.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "display_name": "U"}
    )
    assert signup.status_code == 201, signup.text
    auth = {"Authorization": f"Bearer {login(client, email, PASSWORD)}"}

    def failed() -> dict[str, object] | None:
        items = client.get("/api/v1/notifications", headers=auth).json()["items"]
        return next(
            (n for n in items if n["event_type"] == "UserRegistered" and n["status"] == "failed"), None
        )

    notification = eventually(failed, "the welcome mail marked failed", within=15)
    assert notification["sent_at"] is None
    assert mailbox.to(email) == []
    # The account itself is fine: the profile exists, the contact copy too.
    assert client.get("/api/v1/members/me", headers=auth).status_code == 200
    assert client.get("/api/v1/notifications/contact", headers=auth).json()["email"] == email
    # How often it was tried is in notification's log (the API shows the outcome only).
    log = stack.log_path("notification").read_text(encoding="utf-8")
    gave_up = f"mail {notification['notification_id']} for event {notification['event_id']} (UserRegistered)"
    attempts = re.search(rf"{re.escape(gave_up)} failed after (\d+) attempt\(s\), not retried", log)
    assert attempts is not None
    assert (int(attempts.group(1)) > 1) is retried  # a 550 is not retried; a 451 until the horizon
