"""The dashboard: four parts from four services, and what an answer (or none) means for each.

The dashboard degrades instead of failing: a part whose service is down, too slow or answers
nonsense is ``None`` and named in ``missing``. A service that *answers* "nothing there" is not
missing: a member profile that is not created yet (404 right after sign-up, while the
``UserRegistered`` event is on its way) is ``profile: None`` with ``missing`` not naming it.

The lists are paged by their services: a list part is the first page, at most ``LIST_LIMIT``
items (newest first; licenses oldest first), and the full list is one ``cursor`` away at the
list's own route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

PartName = Literal["profile", "reservations", "licenses", "notifications"]

LIST_LIMIT = 20  # items per list part: a glance, not the whole history (services allow 1..100)


@dataclass(frozen=True)
class Part:
    """Where one part comes from, and how to read the answer."""

    name: PartName
    upstream: str
    path: str
    is_list: bool  # the answer is ``{"items": [...], "next_cursor": ...}``; the part is the items
    absent_on_404: bool = False  # a 404 means "none yet", an answer, not a failure
    query: Mapping[str, str] = field(default_factory=dict)  # sent as the query string


PARTS: tuple[Part, ...] = (
    Part("profile", "member", "/api/v1/members/me", is_list=False, absent_on_404=True),
    Part("reservations", "room", "/api/v1/reservations", is_list=True, query={"limit": str(LIST_LIMIT)}),
    Part("licenses", "auth", "/api/v1/licenses", is_list=True, query={"limit": str(LIST_LIMIT)}),
    Part(
        "notifications",
        "notification",
        "/api/v1/notifications",
        is_list=True,
        query={"limit": str(LIST_LIMIT)},
    ),
)


class Missing:
    """A part that could not be had (the service failed, was too slow, or answered oddly)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Missing({self.reason!r})"


def read_part(part: Part, status: int, body: Any) -> Any:
    """The part's value from a service's answer (``None`` when there is none), or ``Missing``."""
    if status == 404 and part.absent_on_404:
        return None
    if status != 200:
        return Missing(f"{part.upstream} answered {status}")
    if part.is_list:
        items = body.get("items") if isinstance(body, dict) else None
        return items if isinstance(items, list) else Missing(f"{part.upstream} sent no item list")
    return body if isinstance(body, dict) else Missing(f"{part.upstream} sent no object")


def assemble(values: Mapping[PartName, Any]) -> dict[str, Any]:
    """The dashboard document: every part (``None`` if missing), ``degraded`` and ``missing``."""
    read = {part.name: values.get(part.name, Missing("not asked")) for part in PARTS}
    missing = [name for name, value in read.items() if isinstance(value, Missing)]
    document: dict[str, Any] = {
        name: None if isinstance(value, Missing) else value for name, value in read.items()
    }
    return {**document, "degraded": bool(missing), "missing": missing}
