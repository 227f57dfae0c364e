"""Request and response bodies of the member API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from common.pagination import PageBody
from common.schemas import ViewModel
from common.validation import DisplayName  # no control or bidi characters, 1..100


class ProfileUpdate(BaseModel):
    """PATCH body: only the fields given are changed; unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"display_name": "Ada L."}]})

    display_name: DisplayName | None = None


class Profile(ViewModel):
    member_id: str
    email: str
    display_name: str
    tier: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime


class HistoryItem(ViewModel):
    kind: str
    ref_id: str
    at: datetime
    details: dict[str, Any]


class History(PageBody):
    items: list[HistoryItem]


class MemberValidity(BaseModel):
    """What other services need to know before acting for a member."""

    member_id: str
    status: str
    tier: str
    active: bool
