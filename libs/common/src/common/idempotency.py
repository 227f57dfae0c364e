"""Idempotency keys for unsafe POSTs: a retried request has one effect and gets one answer.

The client sends ``Idempotency-Key: <a value unique per intended operation>``. The service
stores the response it gave *in the same transaction as the effect*, so either both exist or
neither does. Then:

- same key, same body   → the stored response, replayed; nothing is done a second time;
- same key, other body  → 422: the client reused a key for a different request (a bug);
- unknown key           → do the work, and store the response with it.

Only successful outcomes are stored: a 409 "try again later" must stay retryable with the
same key. Keys are scoped (e.g. per user and operation), so clients can't collide.

Usage (the service layer)::

    store = IdempotencyStore(idempotency_table(metadata))
    fingerprint = request_fingerprint(body.model_dump(mode="json"))
    with db.read() as session:
        if (stored := store.lookup(session, scope, key, fingerprint)) is not None:
            return stored                                    # a retry: answer as before
    ...                                                      # checks, calls to other services
    try:
        with db.transaction() as session:
            ...                                              # the effect + its outbox row
            store.save(session, scope, key, fingerprint, StoredResponse(201, response))
    except IntegrityError:                                   # a twin request committed first
        with db.read() as session:
            stored = store.lookup(session, scope, key, fingerprint)
        ...                                                  # replay it (None: a real failure)

Two identical requests in flight at once both miss the lookup; the (scope, key) primary key
lets exactly one commit, and the other replays what the winner stored. Whatever they did
elsewhere in between must be idempotent too: derive downstream ids from the key (e.g. uuid5
of scope and key), so both twins asked for the same thing and the loser leaves no orphan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, PrimaryKeyConstraint, String, Table, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import SchemaItem

from common.errors import BadRequest, UnprocessableContent
from common.http import IDEMPOTENCY_KEY_HEADER

IDEMPOTENCY_KEYS = "idempotency_keys"
MAX_KEY_LENGTH = 255

__all__ = [
    "IDEMPOTENCY_KEYS",
    "IDEMPOTENCY_KEY_HEADER",
    "MAX_KEY_LENGTH",
    "IdempotencyKeyReused",
    "IdempotencyStore",
    "StoredResponse",
    "create_idempotency_table",
    "drop_idempotency_table",
    "idempotency_key_openapi",
    "idempotency_schema",
    "idempotency_table",
    "request_fingerprint",
    "require_idempotency_key",
    "required_idempotency_key",
]


# -- storage ---------------------------------------------------------------------------------


def idempotency_schema() -> list[SchemaItem]:
    """Fresh columns and constraints of ``idempotency_keys`` (shared by the table and migrations)."""
    return [
        # Who and what the key belongs to, e.g. "<user id>:POST /api/v1/reservations".
        Column("scope", String(255), nullable=False),
        Column("key", String(MAX_KEY_LENGTH), nullable=False),
        # sha256 (hex) of the canonical request body: tells a retry from a misused key.
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", JSON, nullable=False),
        # Kept so old keys can be purged once no client would still retry them.
        Column("created_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    ]


def idempotency_table(metadata: MetaData) -> Table:
    """Define (once) the ``idempotency_keys`` table on a service's own ``metadata``."""
    if IDEMPOTENCY_KEYS in metadata.tables:
        return metadata.tables[IDEMPOTENCY_KEYS]
    return Table(IDEMPOTENCY_KEYS, metadata, *idempotency_schema())


def create_idempotency_table(op: Any) -> None:
    """Create ``idempotency_keys`` through Alembic's ``op`` (in a service's migration)."""
    op.create_table(IDEMPOTENCY_KEYS, *idempotency_schema())


def drop_idempotency_table(op: Any) -> None:
    """Undo ``create_idempotency_table``."""
    op.drop_table(IDEMPOTENCY_KEYS)


class IdempotencyKeyReused(UnprocessableContent):
    """422: the key already stands for another request (a client bug: one key per operation)."""

    slug = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(f"{IDEMPOTENCY_KEY_HEADER} reused with a different request.")


@dataclass(frozen=True)
class StoredResponse:
    """The answer given to the first request with a key: what every retry gets back."""

    status_code: int
    body: Any


class IdempotencyStore:
    """Look up and save responses by (scope, key), inside the caller's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def lookup(self, session: Session, scope: str, key: str, request_hash: str) -> StoredResponse | None:
        """The stored response to replay, or None when the key is new.

        Raises ``IdempotencyKeyReused`` (422) when the key was used with a different body.
        """
        t = self.table
        row = session.execute(
            select(t.c.request_hash, t.c.status_code, t.c.response_body).where(
                t.c.scope == scope, t.c.key == key
            )
        ).one_or_none()
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise IdempotencyKeyReused()
        return StoredResponse(row.status_code, row.response_body)

    def save(
        self, session: Session, scope: str, key: str, request_hash: str, response: StoredResponse
    ) -> None:
        """Record ``response`` for (scope, key) in ``session``'s transaction.

        A key already stored raises ``sqlalchemy.exc.IntegrityError`` (here, or at commit):
        a twin request got there first; look the key up again and replay its response.
        """
        session.execute(
            self.table.insert().values(
                scope=scope,
                key=key,
                request_hash=request_hash,
                status_code=response.status_code,
                response_body=response.body,
                created_at=datetime.now(UTC),
            )
        )


# -- the request side ------------------------------------------------------------------------


def request_fingerprint(body: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``body`` (sorted keys, no whitespace).

    Hash the *validated* body (``model.model_dump(mode="json")``), not the raw bytes, so key
    order, spacing and equivalent spellings of one request don't count as "different".
    """
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def require_idempotency_key(value: str | None) -> str:
    """The key, or ``BadRequest`` (400) when it is missing, empty, too long or not plain ASCII."""
    if value is None or not value.strip():
        raise BadRequest(f"The {IDEMPOTENCY_KEY_HEADER} header is required for this request.")
    if len(value) > MAX_KEY_LENGTH or not value.isascii() or not value.isprintable():
        raise BadRequest(
            f"The {IDEMPOTENCY_KEY_HEADER} header must be 1..{MAX_KEY_LENGTH} printable ASCII characters."
        )
    return value


def idempotency_key_openapi() -> dict[str, Any]:
    """``openapi_extra`` for a route using ``required_idempotency_key``: documents the header as
    required (the dependency reads it itself, so FastAPI would not list it)."""
    return {
        "parameters": [
            {
                "name": IDEMPOTENCY_KEY_HEADER,
                "in": "header",
                "required": True,
                "description": "Unique per intended operation. A retry with the same key and body "
                "gets the first response back; the same key with another body is a 422.",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
            }
        ]
    }


async def required_idempotency_key(request: Request) -> str:
    """FastAPI dependency: the request's ``Idempotency-Key``, or a 400 problem when absent or bad.

    Read from the request rather than declared as a header parameter: FastAPI answers a
    missing required parameter with 422, and the API promises 400. Add
    ``openapi_extra=idempotency_key_openapi()`` to the route so the docs still show it.
    """
    return require_idempotency_key(request.headers.get(IDEMPOTENCY_KEY_HEADER))
