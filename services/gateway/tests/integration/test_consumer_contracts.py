"""The gateway's side of its consumer contracts (contracts/consumers/gateway--<service>.yaml).

The real gateway (in-process, real ``ServiceClient``s over HTTP) talks to upstream stubs made
from the contracts: each stub answers with the contract's example body, which holds only the
fields the gateway declares it reads, and checks the request the gateway sends (method, raw
path, query, Idempotency-Key, body shape, the user behind the forwarded token). The routing
table and the dashboard's parts are checked against the contracts, so a new route or part
without a contract fails here. The services verify the same files in
tests/contracts/test_consumer_contracts.py.
"""

from __future__ import annotations

from contextlib import ExitStack
from urllib.parse import unquote

import pytest

from common.testing.contracts import Auth, Contract, Interaction, InteractionStub, load_contracts
from common.testing.tokens import TestUsers
from gateway_service.domain.dashboard import PARTS, Part
from gateway_service.domain.routes import ROUTES, UPSTREAMS

CONTRACTS = {c.provider: c for c in load_contracts(consumer="gateway")}
CASES = [(c, i) for c in CONTRACTS.values() for i in c.interactions]


def credentials(users: TestUsers, auth: Auth) -> dict[str, str]:
    return users.headers(auth.subject, admin=auth.kind == "admin") if auth.kind in ("user", "admin") else {}


def part_interaction(part: Part, status: int = 200) -> tuple[Contract, Interaction]:
    contract = CONTRACTS[part.upstream]
    for interaction in contract.interactions:
        request = interaction.request
        if (request.method, request.path, interaction.response.status) == ("GET", part.path, status):
            return contract, interaction
    raise AssertionError(f"{contract.name}.yaml has no GET {part.path} answering {status} (dashboard part)")


def test_the_gateway_has_a_contract_with_every_upstream() -> None:
    assert set(CONTRACTS) == set(UPSTREAMS)


def test_every_routed_endpoint_is_in_the_contract_with_its_service() -> None:
    for route in ROUTES:
        contract = CONTRACTS[route.upstream]
        statuses = {
            i.response.status
            for i in contract.interactions
            if (i.request.method, i.request.path) == (route.method, route.path)
        }
        assert route.status in statuses, (
            f"{route.method} {route.path} (answers {route.status}) is routed to {route.upstream} "
            f"but {contract.name}.yaml has no such interaction: declare it"
        )
    routed = {(r.upstream, r.method, r.path) for r in ROUTES}
    for contract, interaction in CASES:
        request = interaction.request
        assert (contract.provider, request.method, request.path) in routed, (
            f"{contract.name}.yaml declares {request.method} {request.path}, which the gateway does not route"
        )


@pytest.mark.parametrize("part", PARTS, ids=[p.name for p in PARTS])
def test_every_dashboard_part_declares_what_the_gateway_reads(part: Part) -> None:
    _, interaction = part_interaction(part)
    reads = {f.path: f.type for f in interaction.response.reads}
    if part.is_list:
        assert (reads.get("items"), reads.get("items[]")) == ("array", "object")
    else:
        assert reads.get("$") == "object"
    if part.absent_on_404:
        part_interaction(part, status=404)


async def forward(interaction: Interaction, contract: Contract, client, upstreams, users) -> None:
    """One interaction through the gateway, against a stub made from it."""
    # The JWKS interaction serves the test users' key (in the contract's shape): the gateway
    # keeps verifying their tokens after it was proxied.
    [key] = users.issuer.jwks()["keys"]
    params = {"kid": key["kid"], "x": key["x"]}
    stub = InteractionStub(contract, interaction, params=params)
    call = interaction.request.resolve()
    upstreams[contract.provider].handle(call.method, unquote(call.path), stub.serve)
    headers = {**credentials(users, interaction.request.auth), **call.headers}

    with stub.verified():
        response = await client.request(
            call.method, call.target, headers=headers, json=call.json, data=call.form
        )

    assert response.status_code == interaction.response.status, interaction.description
    if interaction.response.body is not None:
        assert response.json() == interaction.example_body(params), interaction.description


# One test per contract (the gateway and five stub servers start once), every interaction checked.
@pytest.mark.parametrize("contract", CONTRACTS.values(), ids=CONTRACTS.keys())
async def test_the_gateway_forwards_as_its_contract_says(
    contract: Contract, client, upstreams, users
) -> None:
    failures = []
    for interaction in contract.interactions:
        try:
            await forward(interaction, contract, client, upstreams, users)
        except AssertionError as failure:
            failures.append(str(failure))
    assert not failures, "\n\n".join(failures)


async def test_the_gateway_verifies_tokens_with_only_the_jwks_fields_it_declares(client, upstreams, users):
    contract = CONTRACTS["auth"]
    [key] = users.issuer.jwks()["keys"]
    stub = InteractionStub(
        contract,
        contract.interaction("the public keys of access tokens"),
        params={"kid": key["kid"], "x": key["x"]},  # the test users' key, in the contract's shape
    )
    upstreams["auth"].handle("GET", "/.well-known/jwks.json", stub.serve)
    upstreams["notification"].answer("GET", "/api/v1/notifications", (200, {"items": []}))

    with stub.verified():
        response = await client.get("/api/v1/notifications", headers=users.headers("u1"))

    assert response.status_code == 200


@pytest.mark.parametrize("profile_status", [200, 404])
async def test_the_dashboard_reads_no_more_than_its_contracts(client, upstreams, users, profile_status):
    stubs: dict[str, InteractionStub] = {}
    for part in PARTS:
        status = profile_status if part.name == "profile" else 200
        contract, interaction = part_interaction(part, status)
        stubs[part.name] = InteractionStub(contract, interaction)
        upstreams[part.upstream].handle("GET", part.path, stubs[part.name].serve)

    with ExitStack() as all_verified:
        for stub in stubs.values():
            all_verified.enter_context(stub.verified())
        response = await client.get("/api/v1/dashboard", headers=users.headers("u1"))

    assert response.status_code == 200
    body = response.json()
    assert (body["degraded"], body["missing"]) == (False, [])
    for part in PARTS:
        example = stubs[part.name].interaction.example_body()
        expected = example["items"] if part.is_list else example  # a 404 profile: None, "none yet"
        assert body[part.name] == expected
