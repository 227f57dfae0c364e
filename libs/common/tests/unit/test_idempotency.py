"""Idempotency keys: one stored answer per (scope, key), replayed for retries, refused for misuse."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Annotated

import httpx
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import APIRouter, Depends
from sqlalchemy import MetaData, create_engine, inspect
from sqlalchemy.exc import IntegrityError

from common.app_factory import create_service_app
from common.db import Database
from common.errors import BadRequest
from common.idempotency import (
    IdempotencyKeyReused,
    IdempotencyStore,
    StoredResponse,
    create_idempotency_table,
    drop_idempotency_table,
    idempotency_key_openapi,
    idempotency_table,
    request_fingerprint,
    require_idempotency_key,
    required_idempotency_key,
)

SCOPE = "user-1:POST /api/v1/reservations"
BODY = {"room_id": "r101", "check_in": "2030-01-01", "check_out": "2030-01-03"}
RESPONSE = StoredResponse(201, {"reservation_id": "res-1", "status": "confirmed"})


@pytest.fixture
def db(new_database) -> Iterator[tuple[Database, IdempotencyStore]]:
    metadata = MetaData()
    store = IdempotencyStore(idempotency_table(metadata))
    database = Database(new_database("idem"))
    metadata.create_all(database.engine)
    yield database, store
    database.dispose()


# -- fingerprints ------------------------------------------------------------------------------


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    reordered = {"check_out": "2030-01-03", "room_id": "r101", "check_in": "2030-01-01"}
    assert request_fingerprint(BODY) == request_fingerprint(reordered)
    assert request_fingerprint(BODY) != request_fingerprint({**BODY, "room_id": "r102"})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": "1"})
    assert request_fingerprint({"a": [1, 2]}) != request_fingerprint({"a": [2, 1]})


def test_fingerprint_is_sha256_of_canonical_json() -> None:
    expected = hashlib.sha256(b'{"a":1,"b":"\xc3\xa9"}').hexdigest()
    assert request_fingerprint({"b": "é", "a": 1}) == expected
    assert len(expected) == 64


# -- the store ---------------------------------------------------------------------------------


def test_unknown_key_then_saved_key_replays_the_stored_response(db) -> None:
    database, store = db
    fingerprint = request_fingerprint(BODY)
    with database.read() as session:
        assert store.lookup(session, SCOPE, "k-1", fingerprint) is None
    with database.transaction() as session:
        store.save(session, SCOPE, "k-1", fingerprint, RESPONSE)
    with database.read() as session:
        assert store.lookup(session, SCOPE, "k-1", fingerprint) == RESPONSE


def test_same_key_with_a_different_body_is_422(db) -> None:
    database, store = db
    with database.transaction() as session:
        store.save(session, SCOPE, "k-1", request_fingerprint(BODY), RESPONSE)
    other = request_fingerprint({**BODY, "check_out": "2030-01-04"})
    with database.read() as session, pytest.raises(IdempotencyKeyReused) as raised:
        store.lookup(session, SCOPE, "k-1", other)
    assert raised.value.status == 422
    assert raised.value.detail == "Idempotency-Key reused with a different request."


def test_keys_are_scoped(db) -> None:
    database, store = db
    fingerprint = request_fingerprint(BODY)
    with database.transaction() as session:
        store.save(session, SCOPE, "k-1", fingerprint, RESPONSE)
        # Another user may pick the same key (and another body) without any clash.
        store.save(session, "user-2:POST /api/v1/reservations", "k-1", "0" * 64, StoredResponse(201, {}))
    with database.read() as session:
        assert store.lookup(session, "user-3:POST /api/v1/reservations", "k-1", fingerprint) is None


def test_saving_a_key_twice_violates_the_primary_key(db) -> None:
    database, store = db
    fingerprint = request_fingerprint(BODY)
    with database.transaction() as session:
        store.save(session, SCOPE, "k-1", fingerprint, RESPONSE)
    # The race: a twin request that missed the lookup can't store a second answer.
    with pytest.raises(IntegrityError), database.transaction() as session:
        store.save(session, SCOPE, "k-1", fingerprint, StoredResponse(201, {"reservation_id": "res-2"}))
    with database.read() as session:
        assert store.lookup(session, SCOPE, "k-1", fingerprint) == RESPONSE


def test_saved_response_rolls_back_with_the_transaction(db) -> None:
    database, store = db
    fingerprint = request_fingerprint(BODY)
    with pytest.raises(RuntimeError), database.transaction() as session:
        store.save(session, SCOPE, "k-1", fingerprint, RESPONSE)
        raise RuntimeError("the effect failed: its answer must not be stored either")
    with database.read() as session:
        assert store.lookup(session, SCOPE, "k-1", fingerprint) is None


def test_migration_creates_what_the_metadata_declares(new_database) -> None:
    def describe(engine) -> dict:
        inspector = inspect(engine)
        return {
            "columns": {
                c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns("idempotency_keys")
            },
            "pk": inspector.get_pk_constraint("idempotency_keys")["constrained_columns"],
        }

    from_metadata = create_engine(new_database("a"))
    metadata = MetaData()
    assert idempotency_table(metadata) is idempotency_table(metadata)
    metadata.create_all(from_metadata)
    from_migration = create_engine(new_database("b"))
    with from_migration.begin() as conn:
        create_idempotency_table(Operations(MigrationContext.configure(conn)))

    assert describe(from_metadata)["pk"] == ["scope", "key"]
    assert describe(from_migration) == describe(from_metadata)
    with from_migration.begin() as conn:
        drop_idempotency_table(Operations(MigrationContext.configure(conn)))
    assert inspect(from_migration).get_table_names() == []
    from_metadata.dispose()
    from_migration.dispose()


# -- the header --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_key_is_400(value: str | None) -> None:
    with pytest.raises(BadRequest, match="required"):
        require_idempotency_key(value)


@pytest.mark.parametrize("value", ["k" * 256, "clé", "tab\there"])
def test_malformed_key_is_400(value: str) -> None:
    with pytest.raises(BadRequest, match="printable ASCII"):
        require_idempotency_key(value)


def test_valid_keys_pass_unchanged() -> None:
    assert require_idempotency_key("k" * 255) == "k" * 255
    assert require_idempotency_key("3f1c-01 retry") == "3f1c-01 retry"


async def test_dependency_answers_400_problem_without_the_header_and_docs_say_required() -> None:
    router = APIRouter()

    @router.post("/things", openapi_extra=idempotency_key_openapi())
    async def create(key: Annotated[str, Depends(required_idempotency_key)]) -> dict[str, str]:
        return {"key": key}

    app = create_service_app(service="test", title="test", routers=[router])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        missing = await client.post("/things")
        given = await client.post("/things", headers={"Idempotency-Key": "abc"})
    assert missing.status_code == 400
    assert missing.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in missing.json()["detail"]
    assert given.status_code == 200
    assert given.json() == {"key": "abc"}
    [parameter] = app.openapi()["paths"]["/things"]["post"]["parameters"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == ("Idempotency-Key", "header", True)
