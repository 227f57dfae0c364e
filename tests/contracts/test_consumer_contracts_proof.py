"""Proof that the consumer-contract checks fail when they must, on fixtures (main stays intact).

- provider side: a provider that drops or changes a field a consumer reads, misses a provider
  state or refuses the consumer fails verification, and the report names the consumer, the
  interaction and the field; shown on a fixture contract and provider, and on the real
  room--member contract against the real member app with ``active`` removed from its answers;
- consumer side: a consumer reading a field its contract does not declare fails against the
  stub, and so does one sending another path, header, body or service token than declared;
- the contract files themselves: an example that does not match what the consumer says it
  reads is refused when loading.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

import member_service
from common.app_factory import create_service_app
from common.auth import build_service_auth, require_service
from common.testing.apps import migrated
from common.testing.contracts import (
    ContractError,
    Credentials,
    InteractionStub,
    failure_report,
    load_contract,
    load_contracts,
    verify_interaction,
)
from common.testing.tokens import TestUsers
from member_service.app import create_app as create_member
from member_service.service_layer.members import register_member
from member_service.settings import MemberSettings

# -- a fixture consumer (billing) and provider (ledger) -----------------------------------------

CONTRACT = """\
consumer: billing
provider: ledger
interactions:
  - description: balance of an account
    given: account acc-1 has one entry
    request:
      method: POST
      path: /internal/accounts/{account_id}/balance
      auth: service:billing
      params: {account_id: acc-1}
      headers: {Idempotency-Key: k-1}
      json: {as_of: "2030-01-01", include_entries: true}
    response:
      status: 200
      reads:
        balance: integer
        currency: {type: string, one_of: [EUR, USD]}
        entries[].amount: integer
      body: {balance: 12, currency: EUR, entries: [{amount: 12}]}

  - description: close an account (admin)
    request:
      method: DELETE
      path: /api/v1/accounts/acc-1
      auth: admin:a1
    response:
      status: 204
"""

FULL_ANSWER = {"balance": 12, "currency": "EUR", "entries": [{"amount": 12, "memo": "x"}], "owner": "o"}


@pytest.fixture
def contract(tmp_path: Path):
    path = tmp_path / "contracts" / "billing--ledger.yaml"
    path.parent.mkdir()
    path.write_text(CONTRACT)
    return load_contract(path)


def ledger(keys_dir: Path, answer: dict[str, Any], *, callers: tuple[str, ...] = ("billing",)) -> FastAPI:
    """The fixture provider: answers ``answer`` for a known account, 404 otherwise."""
    router = APIRouter(dependencies=[Depends(require_service(*callers))])
    accounts: set[str] = set()

    @router.post("/internal/accounts/{account_id}/balance")
    def balance(account_id: str) -> Response:
        if account_id not in accounts:
            return Response(status_code=404)
        return Response(json.dumps(answer), media_type="application/json")

    app = create_service_app(
        service="ledger",
        title="ledger",
        routers=[router],
        state={"service_auth": build_service_auth("jwt", "ledger", keys_dir, None), "accounts": accounts},
    )
    return app


def has_one_entry(app: FastAPI, params: dict[str, str]) -> None:
    app.state.accounts.add(params["account_id"])


async def verify(contract, app: FastAPI, keys_dir: Path, states=None) -> list[str]:
    return await verify_interaction(
        contract,
        contract.interactions[0],
        app,
        states={"account acc-1 has one entry": has_one_entry} if states is None else states,
        credentials=Credentials(keys_dir, TestUsers()),
    )


# -- provider side -------------------------------------------------------------------------------


async def test_a_provider_answering_every_field_read_passes(contract, tmp_path):
    assert await verify(contract, ledger(tmp_path, FULL_ANSWER), tmp_path) == []


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (
            {k: v for k, v in FULL_ANSWER.items() if k != "currency"},
            "field 'currency' (string, one of ['EUR', 'USD']) is missing",
        ),
        ({**FULL_ANSWER, "balance": "12.00"}, "field 'balance' is string '12.00', the contract says integer"),
        ({**FULL_ANSWER, "currency": "GBP"}, "field 'currency' is 'GBP', the contract says string, one of"),
        ({**FULL_ANSWER, "entries": [{"value": 12}]}, "field 'entries[0].amount' (integer) is missing"),
        ({**FULL_ANSWER, "entries": []}, "field 'entries' is an empty array"),
    ],
    ids=["field removed", "type changed", "value outside one_of", "nested field renamed", "no item to check"],
)
async def test_a_provider_breaking_what_the_consumer_reads_fails_naming_consumer_and_field(
    contract, tmp_path, answer, problem
):
    problems = await verify(contract, ledger(tmp_path, answer), tmp_path)

    assert any(p.startswith(problem) for p in problems), problems
    report = failure_report(contract, contract.interactions[0], problems)
    assert "provider 'ledger' breaks consumer 'billing'" in report
    assert "interaction: balance of an account" in report
    assert problem in report


async def test_a_provider_refusing_the_consumer_fails(contract, tmp_path):
    problems = await verify(contract, ledger(tmp_path, FULL_ANSWER, callers=("reporting",)), tmp_path)

    assert len(problems) == 1
    assert problems[0].startswith("answered 403 instead of 200")


async def test_a_provider_without_the_provider_state_fails(contract, tmp_path):
    problems = await verify(contract, ledger(tmp_path, FULL_ANSWER), tmp_path, states={})

    assert problems == ["provider ledger has no provider state 'account acc-1 has one entry'"]


async def test_member_without_active_breaks_room_and_the_report_says_so(tmp_path, monkeypatch):
    """The acceptance case on real code: member stops sending ``active``, room's contract fails."""
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    [contract] = load_contracts(consumer="room", provider="member")
    interaction = contract.interaction("standing of an active member")
    settings = migrated(
        MemberSettings(
            env="test", database_url=f"sqlite:///{tmp_path / 'member.db'}", service_keys_dir=tmp_path
        ),
        Path(member_service.__file__).parent / "migrations",
    )
    app = create_member(settings)

    @app.middleware("http")
    async def drop_active(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Response:
        response = await call_next(request)
        body = json.loads(b"".join([chunk async for chunk in response.body_iterator]))
        body.pop("active", None)
        return Response(json.dumps(body), status_code=response.status_code, media_type="application/json")

    def member_m1(app: FastAPI, _params: dict[str, str]) -> None:
        with app.state.runtime.db.transaction() as session:
            register_member(session, "m1", "m1@example.com", "Ada", datetime.now(UTC))

    try:
        problems = await verify_interaction(
            contract,
            interaction,
            app,
            states={interaction.given: member_m1},
            credentials=Credentials(tmp_path, TestUsers()),
        )
    finally:
        app.state.runtime.db.dispose()

    assert problems == ["field 'active' (boolean) is missing"]
    report = failure_report(contract, interaction, problems)
    assert report.startswith(
        "provider 'member' breaks consumer 'room' (contracts/consumers/room--member.yaml)"
    )


# -- consumer side -------------------------------------------------------------------------------


async def billing_client(
    stub: InteractionStub, keys_dir: Path, *, caller: str = "billing", audience: str = "ledger"
) -> httpx.AsyncClient:
    auth = build_service_auth("jwt", caller, keys_dir, None)
    return httpx.AsyncClient(
        base_url="http://ledger", transport=stub.transport, headers=auth.headers_for(audience)
    )


GOOD_REQUEST: dict[str, Any] = {
    "url": "/internal/accounts/acc-1/balance",
    "json": {"as_of": "2030-02-01", "include_entries": False},  # other values, same shape: fine
    "headers": {"Idempotency-Key": "k-1"},
}


async def test_a_consumer_reading_only_declared_fields_passes(contract, tmp_path):
    stub = InteractionStub(contract, contract.interactions[0], keys_dir=tmp_path)
    async with await billing_client(stub, tmp_path) as client:
        with stub.verified():
            body = (await client.post(**GOOD_REQUEST)).json()

    assert (body["balance"], body["currency"]) == (12, "EUR")


async def test_a_consumer_reading_an_undeclared_field_fails_against_the_stub(contract, tmp_path):
    stub = InteractionStub(contract, contract.interactions[0], keys_dir=tmp_path)
    async with await billing_client(stub, tmp_path) as client:
        body = (await client.post(**GOOD_REQUEST)).json()

    with pytest.raises(KeyError, match="owner"):
        _ = body["owner"]  # the provider sends it today; the contract never said billing reads it


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"url": "/internal/accounts/acc-2/balance"}, "path is /internal/accounts/acc-2/balance"),
        ({"url": "/internal/accounts/acc-1/balance?fresh=1"}, "query is {'fresh': '1'}"),
        ({"headers": {}}, "header Idempotency-Key is None, the contract says 'k-1'"),
        ({"json": {"as_of": "2030-01-01"}}, "body.include_entries is missing"),
        ({"json": {"as_of": "2030-01-01", "include_entries": True, "x": 1}}, "body.x is not in the contract"),
        (
            {"json": {"as_of": 20300101, "include_entries": True}},
            "body.as_of is number, the contract says string",
        ),
        ({"caller": "reporting"}, "the service token is from reporting, the contract says billing"),
        ({"audience": "billing"}, "no valid service token for ledger"),
    ],
    ids=[
        "path",
        "query",
        "header",
        "missing body field",
        "extra body field",
        "body type",
        "caller",
        "audience",
    ],
)
async def test_a_consumer_sending_other_than_declared_fails_naming_the_difference(
    contract, tmp_path, change, problem
):
    stub = InteractionStub(contract, contract.interactions[0], keys_dir=tmp_path)
    identity = {k: change.pop(k) for k in ("caller", "audience") if k in change}
    request = {**GOOD_REQUEST, **change}

    with pytest.raises(AssertionError) as failed:
        async with await billing_client(stub, tmp_path, **identity) as client:
            with stub.verified():
                await client.post(**request)

    assert "consumer 'billing' does not call 'ledger' as its contract says" in str(failed.value)
    assert problem in str(failed.value)


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({}, "no bearer access token (Authorization)"),
        ({"Authorization": "Bearer not-a-jwt"}, "the bearer access token is not a JWT"),
        ("u2 admin", "the access token is for 'u2', the contract says 'a1'"),
        ("a1 member", "the access token has no admin role, the contract says admin"),
    ],
    ids=["no token", "garbage", "other user", "not admin"],
)
async def test_a_consumer_sending_another_user_than_declared_fails(contract, headers, problem):
    stub = InteractionStub(contract, contract.interaction("close an account (admin)"))
    if isinstance(headers, str):
        user, role = headers.split()
        headers = TestUsers().headers(user, admin=role == "admin")

    with pytest.raises(AssertionError) as failed:
        async with httpx.AsyncClient(base_url="http://ledger", transport=stub.transport) as client:
            with stub.verified():
                await client.delete("/api/v1/accounts/acc-1", headers=headers)

    assert problem in str(failed.value)


async def test_the_declared_user_passes(contract):
    stub = InteractionStub(contract, contract.interaction("close an account (admin)"))
    async with httpx.AsyncClient(base_url="http://ledger", transport=stub.transport) as client:
        with stub.verified():
            response = await client.delete(
                "/api/v1/accounts/acc-1", headers=TestUsers().headers("a1", admin=True)
            )

    assert response.status_code == 204


# -- the contract files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (
            ("body: {balance: 12,", "body: {balance: 12, owner: o,"),
            "field 'owner' is not declared in 'reads'",
        ),
        (("body: {balance: 12,", "body: {balance: twelve,"), "field 'balance' is string 'twelve'"),
        (
            ("params: {account_id: acc-1}", "params: {}"),
            "no example value in request.params for ['account_id']",
        ),
        (("auth: service:billing", "auth: service:reporting"), "a service token comes from the consumer"),
        (("balance: integer", "balance: money"), "field 'balance': type must be one of"),
    ],
    ids=["undeclared example field", "example of the wrong type", "param without example", "caller", "type"],
)
def test_a_malformed_contract_is_refused_when_loading(tmp_path, edit, error):
    path = tmp_path / "billing--ledger.yaml"
    path.write_text(CONTRACT.replace(*edit))

    with pytest.raises(
        ContractError, match=r"billing--ledger\.yaml, interaction 'balance of an account'"
    ) as refused:
        load_contract(path)

    assert error in str(refused.value)


def test_every_committed_contract_loads():
    contracts = load_contracts()
    assert {c.name for c in contracts} >= {"room--member", "room--inventory", "gateway--auth"}
