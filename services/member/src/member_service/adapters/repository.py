"""Loading and storing members and their history inside the caller's session (unit of work)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.pagination import Page, PageRequest, keyset, page_of
from member_service.adapters.orm import HistoryRow, MemberRow
from member_service.domain.history import HistoryEntry
from member_service.domain.members import Member


class MemberRepository:
    """Members and history in one database session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, member_id: str, *, for_update: bool = False) -> Member | None:
        """The member, or None; ``for_update`` locks the row until commit (PostgreSQL; SQLite's
        write transactions are serialized anyway)."""
        row = self._session.get(MemberRow, member_id, with_for_update=for_update)
        return _to_member(row) if row is not None else None

    def add(self, member: Member) -> None:
        self._session.add(MemberRow(**_fields(member)))
        self._session.flush()  # a concurrent twin fails here, inside the transaction

    def save(self, member: Member) -> None:
        row = self._session.get(MemberRow, member.member_id)
        if row is None:
            raise LookupError(member.member_id)
        for name, value in _fields(member).items():
            setattr(row, name, value)

    def has_history(self, member_id: str, event_id: str) -> bool:
        found = self._session.scalar(
            select(HistoryRow.id).where(HistoryRow.member_id == member_id, HistoryRow.event_id == event_id)
        )
        return found is not None

    def add_history(self, entry: HistoryEntry) -> None:
        self._session.add(
            HistoryRow(
                member_id=entry.member_id,
                event_id=entry.event_id,
                kind=entry.kind,
                ref_id=entry.ref_id,
                at=entry.at,
                details=entry.details,
            )
        )

    def history(self, member_id: str, page: PageRequest) -> Page[HistoryEntry]:
        """One page of the member's history, newest first (by ``at``, then insertion order)."""
        statement = select(HistoryRow).where(HistoryRow.member_id == member_id)
        rows = self._session.scalars(keyset(statement, HistoryRow.at, HistoryRow.id, page)).all()
        found = page_of(rows, page, lambda row: (row.at, row.id))
        entries = [
            HistoryEntry(r.member_id, r.event_id, r.kind, r.ref_id, r.at, dict(r.details))
            for r in found.items
        ]
        return Page(entries, found.last)


def _fields(member: Member) -> dict[str, object]:
    return {
        "member_id": member.member_id,
        "email": member.email,
        "display_name": member.display_name,
        "status": member.status,
        "tier": member.tier,
        "version": member.version,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    }


def _to_member(row: MemberRow) -> Member:
    return Member(
        member_id=row.member_id,
        email=row.email,
        display_name=row.display_name,
        status=row.status,
        tier=row.tier,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
