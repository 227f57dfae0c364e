"""Cursor pagination: signed positions, keyset pages on a real SQLite table, the HTTP contract."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.auth import UserPrincipal, current_user
from common.db import Database, UtcDateTime
from common.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CursorCodec,
    InvalidCursor,
    Page,
    PageBody,
    PageRequest,
    Paging,
    Position,
    keyset,
    page_of,
    user_pages,
)
from common.problems import install_problem_handlers
from common.settings import ServiceSettings

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class ItemRow(Base):
    __tablename__ = "items"

    item_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


def _position(row: ItemRow) -> Position:
    return (row.created_at, row.item_id)


@pytest.fixture
def db(new_database) -> Iterator[Database]:
    database = Database(new_database("items"))
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def add(db: Database, owner: str, *items: tuple[str, datetime]) -> None:
    with db.transaction() as session:
        session.add_all(ItemRow(item_id=i, owner=owner, created_at=at) for i, at in items)


def read_page(db: Database, owner: str, page: PageRequest, *, newest_first: bool = True) -> Page[str]:
    with db.read() as session:
        statement = select(ItemRow).where(ItemRow.owner == owner)
        rows = session.scalars(
            keyset(statement, ItemRow.created_at, ItemRow.item_id, page, newest_first=newest_first)
        ).all()
        found = page_of(rows, page, _position)
        return Page([row.item_id for row in found.items], found.last)


# -- the cursor --------------------------------------------------------------------------------

CODEC = CursorCodec(b"test-secret")
POSITION: Position = (T0 + timedelta(microseconds=123), "res-7")


def test_a_cursor_round_trips_to_the_same_position_for_the_same_scope() -> None:
    cursor = CODEC.encode(POSITION, "reservations:u1")
    assert CODEC.decode(cursor, "reservations:u1") == POSITION
    assert CODEC.decode(CODEC.encode((T0, 42), "history:u1"), "history:u1") == (T0, 42)
    assert cursor.isascii()
    assert " " not in cursor


def test_a_changed_cursor_is_refused() -> None:
    cursor = CODEC.encode(POSITION, "reservations:u1")
    payload, _, mac = cursor.partition(".")
    # The same list, a position chosen by the client: the MAC no longer matches.
    forged = json.dumps([1, T0.isoformat(), "res-1"], separators=(",", ":")).encode()
    forged_payload = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    flipped = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    for bad in (f"{forged_payload}.{mac}", flipped, payload, f"{payload}.", "garbage", "é.é", "..."):
        with pytest.raises(InvalidCursor):
            CODEC.decode(bad, "reservations:u1")


def test_a_cursor_changed_only_in_its_unused_bits_is_refused() -> None:
    # 43 base64url characters hold the 32-byte MAC with 2 bits to spare: the last character
    # with one of those set decodes to the same bytes. An integration test that replaced the
    # last character was accepted once in 16 runs before decoding insisted on the exact text.
    cursor = CODEC.encode(POSITION, "reservations:u1")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bits = cursor[:-1] + alphabet[alphabet.index(cursor[-1]) | 1]
    assert same_bits != cursor
    assert base64.urlsafe_b64decode(same_bits.partition(".")[2] + "=") == base64.urlsafe_b64decode(
        cursor.partition(".")[2] + "="
    )
    with pytest.raises(InvalidCursor):
        CODEC.decode(same_bits, "reservations:u1")


def test_a_cursor_is_bound_to_its_list_and_owner_and_to_the_secret() -> None:
    cursor = CODEC.encode(POSITION, "reservations:u1")
    for scope in ("reservations:u2", "notifications:u1"):
        with pytest.raises(InvalidCursor):
            CODEC.decode(cursor, scope)
    with pytest.raises(InvalidCursor):
        CursorCodec(b"another-secret").decode(cursor, "reservations:u1")


def test_invalid_cursor_is_a_422_problem() -> None:
    problem = InvalidCursor()
    assert (problem.status, problem.slug) == (422, "invalid-cursor")


# -- keyset pages ------------------------------------------------------------------------------


def walk(db: Database, owner: str, limit: int, *, newest_first: bool = True) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = read_page(db, owner, PageRequest(limit, after), newest_first=newest_first)
        pages.append(page.items)
        if page.last is None:
            return pages
        after = page.last


def test_pages_cover_the_list_once_in_order_with_ties_broken_by_id(db: Database) -> None:
    # Five items share one timestamp: the id decides, so no tie is split unpredictably.
    add(db, "u1", *((f"i{n:02d}", T0 + timedelta(seconds=n // 5)) for n in range(23)))
    add(db, "u2", ("other", T0))
    pages = walk(db, "u1", 5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == [f"i{n:02d}" for n in reversed(range(23))]
    oldest_first = walk(db, "u1", 10, newest_first=False)
    assert [i for p in oldest_first for i in p] == [f"i{n:02d}" for n in range(23)]


def test_an_exact_last_page_has_no_next_cursor(db: Database) -> None:
    add(db, "u1", *((f"i{n}", T0 + timedelta(seconds=n)) for n in range(4)))
    assert walk(db, "u1", 2) == [["i3", "i2"], ["i1", "i0"]]
    assert read_page(db, "nobody", PageRequest()) == Page([], None)


def test_items_added_while_paging_are_neither_repeated_nor_make_others_skip(db: Database) -> None:
    add(db, "u1", *((f"old{n:02d}", T0 + timedelta(seconds=n)) for n in range(10)))
    first = read_page(db, "u1", PageRequest(4))
    # Meanwhile: newer items (they belong before page one) and one that sorts into the middle.
    add(db, "u1", ("new1", T0 + timedelta(hours=1)), ("new2", T0 + timedelta(hours=2)))
    add(db, "u1", ("late", T0 + timedelta(seconds=2, milliseconds=500)))
    seen, after = list(first.items), first.last
    while after is not None:
        page = read_page(db, "u1", PageRequest(4, after))
        seen.extend(page.items)
        after = page.last
    assert len(seen) == len(set(seen))
    assert {f"old{n:02d}" for n in range(10)} <= set(seen)
    assert "new1" not in seen
    assert "late" in seen


# -- the HTTP contract -------------------------------------------------------------------------


class ItemList(PageBody):
    items: list[str]


class Caller:
    """Who the test app's requests come from (stands in for the access token)."""

    user_id = "u1"


@pytest.fixture
def caller() -> Caller:
    return Caller()


@pytest.fixture
def http(db: Database, caller: Caller) -> httpx.AsyncClient:
    """An app with one paged list of the caller's items (problem handlers as in every service)."""
    app = FastAPI()
    install_problem_handlers(app)
    app.state.runtime = SimpleNamespace(settings=ServiceSettings(env="test"))

    async def the_caller() -> UserPrincipal:
        return UserPrincipal(caller.user_id, ("member",), token="t")

    app.dependency_overrides[current_user] = the_caller

    @app.get("/items")
    def items(paging: Annotated[Paging, Depends(user_pages("items"))]) -> ItemList:
        page = read_page(db, caller.user_id, paging.request)
        return ItemList(items=page.items, next_cursor=paging.cursor_after(page))

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_the_default_and_maximum_page_sizes(db: Database, http: httpx.AsyncClient) -> None:
    add(db, "u1", *((f"i{n:03d}", T0 + timedelta(seconds=n)) for n in range(MAX_LIMIT + 20)))
    first = (await http.get("/items")).json()
    assert len(first["items"]) == DEFAULT_LIMIT
    assert first["next_cursor"]
    biggest = (await http.get("/items", params={"limit": MAX_LIMIT})).json()
    assert len(biggest["items"]) == MAX_LIMIT
    rest = (await http.get("/items", params={"limit": MAX_LIMIT, "cursor": biggest["next_cursor"]})).json()
    assert (len(rest["items"]), rest["next_cursor"]) == (20, None)
    for limit in (MAX_LIMIT + 1, 0, -1, "ten", 10**30):
        response = await http.get("/items", params={"limit": limit})
        assert response.status_code == 422, limit
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_bad_and_foreign_cursors_are_422_problems(
    db: Database, http: httpx.AsyncClient, caller: Caller
) -> None:
    add(db, "u2", *((f"secret{n}", T0 + timedelta(seconds=n)) for n in range(5)))
    caller.user_id = "u2"
    theirs = (await http.get("/items", params={"limit": 2})).json()["next_cursor"]
    assert theirs
    caller.user_id = "u1"  # u1 replays u2's cursor: refused, nothing of u2's shown
    for cursor in (theirs, theirs[:-2], "", "x" * 600, "not.a-cursor"):
        response = await http.get("/items", params={"cursor": cursor})
        assert response.status_code == 422, cursor
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "secret" not in response.text
