"""Cursor pagination for lists: ``?limit=&cursor=`` in, ``{"items": [...], "next_cursor": ...}`` out.

**Keyset, not OFFSET.** A list is sorted by a stable, unique key — a timestamp that never
changes (``created_at``) and the row's id as tie-break — and a page starts strictly after the
last item of the page before. Rows added or removed meanwhile never shift the pages: no item
is shown twice and none that existed when the first page was read is skipped (a row added
later shows up where its key sorts, or on a first page read afresh). ``OFFSET`` would both
repeat and skip when rows are added, and gets slower the deeper one reads.

**An opaque, tamper-evident cursor.** ``next_cursor`` is the position of the last item, in
base64url, with an HMAC-SHA256 over it *and the list's scope* (list name and owner, e.g.
``reservations:<user id>``), keyed by the service's ``cursor_secret`` setting. Clients pass it back
unchanged: a modified cursor, one minted for someone else's list, or garbage is a 422 problem.
Every query is still scoped to the caller; the MAC only keeps the cursor a server-side detail.

Layers: the API gets a :class:`Paging` from :func:`user_pages` (limit, decoded cursor, the
caller's scope), hands ``paging.request`` (a :class:`PageRequest`, plain data) to the use case,
whose repository applies :func:`keyset` and returns :func:`page_of`; the route answers
``paging.cursor_after(page)`` as ``next_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from common.auth import UserPrincipal, current_user
from common.errors import UnprocessableContent
from common.openapi import Responses, problem_responses
from common.settings import ServiceSettings

__all__ = [
    "DEFAULT_LIMIT",
    "LIST_ERRORS",
    "MAX_LIMIT",
    "CursorCodec",
    "InvalidCursor",
    "Page",
    "PageBody",
    "PageRequest",
    "Paging",
    "Position",
    "keyset",
    "page_of",
    "user_pages",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# A cursor is ~100 characters; anything far longer is not one of ours (and not worth hashing).
MAX_CURSOR_LENGTH = 512
_FORMAT = 1  # bump when the position's encoding changes: old cursors then fail cleanly (422)

T = TypeVar("T")

Position = tuple[datetime, str | int]
"""Where a page ends: the sort timestamp and the id of its last item."""


class InvalidCursor(UnprocessableContent):
    slug = "invalid-cursor"

    def __init__(self) -> None:
        super().__init__(
            "The cursor is not one this list issued (changed, expired format, or another list's): "
            "pass next_cursor back unchanged, or leave it out to start from the first page."
        )


@dataclass(frozen=True)
class PageRequest:
    """What a use case needs to read one page: at most ``limit`` items after ``after``."""

    limit: int = DEFAULT_LIMIT
    after: Position | None = None  # None: the first page


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; ``last`` is the position to continue from (None: the list ends here)."""

    items: list[T]
    last: Position | None


class CursorCodec:
    """Turns positions into opaque cursors bound to one list's scope, and back (or 422)."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("cursor secret must not be empty")
        self._key = hashlib.sha256(b"common.pagination cursor\x00" + secret).digest()

    def encode(self, position: Position, scope: str) -> str:
        stamp, item_id = position
        payload = json.dumps([_FORMAT, stamp.isoformat(), item_id], separators=(",", ":")).encode()
        return _b64(payload) + "." + _b64(self._mac(payload, scope))

    def decode(self, cursor: str, scope: str) -> Position:
        """The position in ``cursor``; ``InvalidCursor`` unless this codec issued it for ``scope``."""
        encoded_payload, dot, encoded_mac = cursor.partition(".")
        try:
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
        except (ValueError, binascii.Error):
            raise InvalidCursor() from None
        if not dot or not hmac.compare_digest(mac, self._mac(payload, scope)):
            raise InvalidCursor()
        try:
            version, stamp, item_id = json.loads(payload)
            position: Position = (datetime.fromisoformat(stamp), item_id)
        except (ValueError, TypeError):
            raise InvalidCursor() from None
        if version != _FORMAT or position[0].tzinfo is None or not isinstance(item_id, str | int):
            raise InvalidCursor()
        return position

    def _mac(self, payload: bytes, scope: str) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\x00" + payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Only the exact text ``_b64`` wrote: the last character of a 32-byte MAC carries 2 unused
    # bits, and a cursor changed only there must not pass as the one issued.
    if _b64(data) != text:
        raise ValueError("not in canonical base64url")
    return data


# -- the database side ---------------------------------------------------------------------------


def keyset(
    statement: Select[Any],
    stamp: InstrumentedAttribute[datetime],
    item_id: InstrumentedAttribute[Any],
    page: PageRequest,
    *,
    newest_first: bool = True,
) -> Select[Any]:
    """``statement`` ordered by (stamp, id), starting after ``page.after``, one row more than
    ``page.limit`` (that extra row only tells :func:`page_of` that another page follows)."""
    if newest_first:
        statement = statement.order_by(stamp.desc(), item_id.desc())
    else:
        statement = statement.order_by(stamp.asc(), item_id.asc())
    if page.after is not None:
        after_stamp, after_id = page.after
        if newest_first:
            beyond = or_(stamp < after_stamp, and_(stamp == after_stamp, item_id < after_id))
        else:
            beyond = or_(stamp > after_stamp, and_(stamp == after_stamp, item_id > after_id))
        statement = statement.where(beyond)
    return statement.limit(page.limit + 1)


def page_of(rows: Sequence[T], page: PageRequest, position: Callable[[T], Position]) -> Page[T]:
    """The page from the rows :func:`keyset` fetched (``position`` reads a row's sort key)."""
    items = list(rows[: page.limit])
    more = len(rows) > page.limit
    return Page(items, position(items[-1]) if more and items else None)


# -- the HTTP side -------------------------------------------------------------------------------


# ``responses=`` of a paged list of the caller's things.
LIST_ERRORS: Responses = problem_responses(
    401, described={422: f"A `limit` outside 1..{MAX_LIMIT}, or a `cursor` this list did not issue"}
)


class PageBody(BaseModel):
    """Base of a list's response body: subclasses add ``items: list[...]``."""

    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=[None],
    )


@dataclass(frozen=True)
class Paging:
    """One request's paging: what to read (``request``) and how to write ``next_cursor``."""

    request: PageRequest
    scope: str
    codec: CursorCodec

    def cursor_after(self, page: Page[Any]) -> str | None:
        return None if page.last is None else self.codec.encode(page.last, self.scope)


Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT}).")
]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        description="The `next_cursor` of the previous page, unchanged; omit for the first page.",
    ),
]


def user_pages(list_name: str) -> Callable[..., Awaitable[Paging]]:
    """A dependency for a list of the caller's own things: ``limit`` and ``cursor`` from the
    query (bad ones: 422 problem), cursors bound to ``<list_name>:<user id>``.

    The key is the service's ``cursor_secret`` setting (``app.state.runtime``).
    """

    async def paging(
        request: Request,
        user: Annotated[UserPrincipal, Depends(current_user)],
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Paging:
        settings: ServiceSettings = request.app.state.runtime.settings
        codec = CursorCodec(settings.cursor_secret.get_secret_value().encode())
        scope = f"{list_name}:{user.user_id}"
        after = None if cursor is None else codec.decode(cursor, scope)
        return Paging(PageRequest(limit, after), scope, codec)

    return paging
