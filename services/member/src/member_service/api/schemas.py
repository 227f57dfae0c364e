"""Request and response bodies of the member API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from member_service.domain.history import HistoryEntry
from member_service.domain.members import Member

DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ProfileUpdate(BaseModel):
    """PATCH body: only the fields given are changed; unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"display_name": "Ada L."}]})

    display_name: DisplayName | None = None


class Profile(BaseModel):
    member_id: str
    email: str
    display_name: str
    tier: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, member: Member) -> Profile:
        return cls(
            member_id=member.member_id,
            email=member.email,
            display_name=member.display_name,
            tier=member.tier,
            status=member.status,
            version=member.version,
            created_at=member.created_at,
            updated_at=member.updated_at,
        )


class HistoryItem(BaseModel):
    kind: str
    ref_id: str
    at: datetime
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryItem:
        return cls(kind=entry.kind, ref_id=entry.ref_id, at=entry.at, details=entry.details)


class History(BaseModel):
    items: list[HistoryItem]


class MemberValidity(BaseModel):
    """What other services need to know before acting for a member."""

    member_id: str
    status: str
    tier: str
    active: bool
