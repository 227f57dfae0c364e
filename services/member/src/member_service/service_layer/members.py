"""Member use cases, each one unit of work: the change and its event commit together."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from common.clock import Clock, utc_now
from common.db import Database
from common.errors import NotFound
from common.messaging import Outbox
from common.pagination import Page, PageRequest
from member_service.adapters.repository import MemberRepository
from member_service.domain.history import HistoryEntry
from member_service.domain.members import Member

log = logging.getLogger(__name__)


class ProfileNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No member profile yet: it is created shortly after sign-up.")


def register_member(
    session: Session, member_id: str, email: str, display_name: str | None, now: datetime
) -> bool:
    """Create the profile from ``UserRegistered``; False if it already exists (left as is)."""
    members = MemberRepository(session)
    if members.get(member_id) is not None:
        log.info("member %s already exists; registration event ignored", member_id)
        return False
    members.add(Member.register(member_id, email, display_name, now))
    return True


def record_history(session: Session, entry: HistoryEntry) -> bool:
    """Append one history entry; False if this event is already in the member's history."""
    members = MemberRepository(session)
    if members.has_history(entry.member_id, entry.event_id):
        return False
    members.add_history(entry)
    return True


class MemberService:
    """The use cases behind the HTTP routes."""

    def __init__(self, db: Database, outbox: Outbox, clock: Clock = utc_now) -> None:
        self._db = db
        self._outbox = outbox
        self._clock = clock

    def profile(self, member_id: str) -> Member:
        with self._db.read() as session:
            member = MemberRepository(session).get(member_id)
        if member is None:
            raise ProfileNotFound()
        return member

    def find(self, member_id: str) -> Member | None:
        with self._db.read() as session:
            return MemberRepository(session).get(member_id)

    def history(self, member_id: str, page: PageRequest) -> Page[HistoryEntry]:
        """One page of the member's history, newest first."""
        with self._db.read() as session:
            members = MemberRepository(session)
            if members.get(member_id) is None:
                raise ProfileNotFound()
            return members.history(member_id, page)

    def rename(self, member_id: str, display_name: str) -> Member:
        return self._change(member_id, lambda member, now: member.rename(display_name, now))

    def suspend(self, member_id: str) -> Member:
        return self._change(member_id, lambda member, now: member.suspend(now))

    def _change(self, member_id: str, change: Callable[[Member, datetime], bool]) -> Member:
        """Apply ``change``; if it changed something, store the new version and its
        ``MemberUpdated`` event in the same transaction (keyed by member: ordered per member)."""
        with self._db.transaction() as session:
            members = MemberRepository(session)
            member = members.get(member_id, for_update=True)
            if member is None:
                raise ProfileNotFound()
            if change(member, self._clock()):
                members.save(member)
                self._outbox.add(session, "MemberUpdated", key=member.member_id, payload=_event(member))
            return member


def _event(member: Member) -> dict[str, object]:
    return {
        "member_id": member.member_id,
        "version": member.version,
        "email": member.email,
        "display_name": member.display_name,
        "tier": member.tier,
        "status": member.status,
        "updated_at": member.updated_at,
    }
