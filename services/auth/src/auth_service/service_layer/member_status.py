"""Suspension reaches auth: member's ``MemberUpdated`` events keep a copy of the account status.

Member owns the status (an admin suspends there); auth needs it where it hands out access:
a suspended account can't log in, refresh or activate a license, and its sessions (refresh
families) are revoked when the suspension arrives. The consumer runner records each event id
with the handler's effects in one transaction (a duplicate is skipped), and the version check
makes an older event that comes back (a redelivery, a redrive) change nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from auth_service.adapters import repositories as repo
from auth_service.domain.users import AccountStatus, newer_status

log = logging.getLogger(__name__)


def apply_member_update(session: Session, event: dict[str, Any], now: datetime) -> None:
    """Take the status of a ``MemberUpdated`` into the user; a suspension revokes their sessions."""
    user = repo.user_by_id(session, event["member_id"])
    if user is None:
        return  # a member auth never registered (another system's data): nothing to guard
    version = int(event["version"])
    if not newer_status(user.status_version, version):
        return
    status = AccountStatus(event["status"])  # an unknown status is a bug: retried, then DLQ
    user.status_version = version
    if status.value == user.status:
        return
    user.status = status.value
    if status is AccountStatus.SUSPENDED:
        revoked = repo.revoke_families_of_user(session, user.user_id, now)
        log.info("account suspended: sessions revoked", extra={"user_id": user.user_id, "revoked": revoked})
    else:
        log.info("account active again", extra={"user_id": user.user_id})
