"""The same matrix in shared-secret mode (``<PREFIX>_SERVICE_AUTH_MODE=shared-secret``).

Three services with internal routes (auth, member, inventory) run in-process, each on a migrated
SQLite database of its own, with the secret set: fast, and the real app factories. Their user
tokens come from a key of this suite's own (published to the apps as a JWKS), so the user-token
forgeries run here too. The lifespan is not started: these cases need no relay or consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import OKPKey

import auth_service
import inventory_service
import member_service
from auth_service.app import create_app as create_auth
from auth_service.settings import AuthSettings
from common.auth import JwksKeyCache, UserTokenVerifier
from common.testing.apps import migrated
from inventory_service.app import create_app as create_inventory
from inventory_service.settings import InventorySettings
from member_service.app import create_app as create_member
from member_service.settings import MemberSettings

from .conftest import Judge, category
from .forge import COMMON_VARIANTS, USER_VARIANTS, Forge, sign

CATEGORY = "shared-secret mode"
SECRET = "a-long-shared-secret-for-the-attack-suite"
KID = "suite-key"


@dataclass
class Apps:
    clients: dict[str, TestClient]
    forge: Forge


def _trust(app: FastAPI, key: OKPKey) -> None:
    jwks = {"keys": [{**key.as_dict(private=False), "kid": KID, "alg": "EdDSA", "use": "sig"}]}
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, json=jwks))
    cache = JwksKeyCache(
        "http://auth.test/.well-known/jwks.json", http=httpx.AsyncClient(transport=transport)
    )
    app.state.user_tokens = UserTokenVerifier("auth", "reservations", cache)


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apps]:
    root = tmp_path_factory.mktemp("shared-secret")
    keys = root / "keys"
    (keys / "user-tokens").mkdir(parents=True)
    user_key = OKPKey.generate_key("Ed25519")
    (keys / "user-tokens" / "signing.key").write_bytes(user_key.as_pem(private=True))
    common: dict[str, Any] = {
        "service_auth_mode": "shared-secret",
        "service_shared_secret": SECRET,
        "service_keys_dir": keys,
        "kafka_bootstrap_servers": "127.0.0.1:9",  # never used: no lifespan
    }
    builders: dict[str, tuple[Callable[[Any], FastAPI], Any, Any]] = {
        "auth": (
            create_auth,
            AuthSettings(
                **common, user_token_keys_dir=root / "auth-keys", database_url=f"sqlite:///{root / 'auth.db'}"
            ),
            auth_service,
        ),
        "member": (
            create_member,
            MemberSettings(**common, database_url=f"sqlite:///{root / 'member.db'}"),
            member_service,
        ),
        "inventory": (
            create_inventory,
            InventorySettings(**common, database_url=f"sqlite:///{root / 'inventory.db'}"),
            inventory_service,
        ),
    }
    clients: dict[str, TestClient] = {}
    for name, (create, settings, package) in builders.items():
        app = create(migrated(settings, Path(package.__file__).parent / "migrations"))
        _trust(app, user_key)
        clients[name] = TestClient(app, raise_server_exceptions=False)
    yield Apps(clients, Forge(keys, user_kid=KID))
    for client in clients.values():
        client.close()


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str
    caller: str
    ok: frozenset[int]

    @property
    def id(self) -> str:
        return f"{self.service} {self.method} {self.path.split('{')[0]}"


ROUTES = (
    Route("auth", "GET", "/internal/users/{id}", "member", frozenset({404})),
    Route("member", "GET", "/internal/members/{id}", "room", frozenset({404})),
    Route("inventory", "DELETE", "/internal/holds/{id}", "room", frozenset({204})),
    *(
        Route(name, "GET", "/admin/faults", "gateway", frozenset({200}))
        for name in ("auth", "member", "inventory")
    ),
)


def _jwt_token(apps: Apps, route: Route) -> dict[str, str]:
    token = sign(
        {"alg": "EdDSA", "kid": route.caller},
        apps.forge.service_claims(route.caller, route.service),
        apps.forge.attacker,
    )
    return {"X-Service-Token": token}


def _admin_bearer(apps: Apps, route: Route) -> dict[str, str]:
    claims = apps.forge.user_claims(str(uuid.uuid4()), ["member", "admin"])
    return {"Authorization": f"Bearer {apps.forge.user_token(claims)}"}


CREDENTIALS: dict[str, tuple[Callable[[Apps, Route], dict[str, str]], frozenset[int]]] = {
    "no credentials": (lambda a, r: {}, frozenset({401})),
    "the secret without a name": (lambda a, r: {"X-Service-Secret": SECRET}, frozenset({401})),
    "a name without the secret": (lambda a, r: {"X-Service-Name": r.caller}, frozenset({401})),
    "a wrong secret": (
        lambda a, r: {"X-Service-Name": r.caller, "X-Service-Secret": "x" * len(SECRET)},
        frozenset({401}),
    ),
    "the secret in upper case": (
        lambda a, r: {"X-Service-Name": r.caller, "X-Service-Secret": SECRET.upper()},
        frozenset({401}),
    ),
    "a prefix of the secret": (
        lambda a, r: {"X-Service-Name": r.caller, "X-Service-Secret": SECRET[:16]},
        frozenset({401}),
    ),
    "the secret plus a suffix": (
        lambda a, r: {"X-Service-Name": r.caller, "X-Service-Secret": SECRET + "x"},
        frozenset({401}),
    ),
    "an empty secret": (lambda a, r: {"X-Service-Name": r.caller, "X-Service-Secret": ""}, frozenset({401})),
    "the placeholder secret": (
        lambda a, r: {"X-Service-Name": r.caller, "X-Service-Secret": "dev-only-change-me"},
        frozenset({401}),
    ),
    "the secret as a bearer token": (
        lambda a, r: {"Authorization": f"Bearer {SECRET}", "X-Service-Name": r.caller},
        frozenset({401}),
    ),
    "a signed service token (JWT mode)": (_jwt_token, frozenset({401})),
    "a user's valid access token": (_admin_bearer, frozenset({401})),
    "the secret, a caller not allowed": (
        lambda a, r: {"X-Service-Name": "notification", "X-Service-Secret": SECRET},
        frozenset({403}),
    ),
    "the secret, the caller's name in upper case": (
        lambda a, r: {"X-Service-Name": r.caller.upper(), "X-Service-Secret": SECRET},
        frozenset({401, 403}),
    ),
    "the secret, a path-like name": (
        lambda a, r: {"X-Service-Name": f"../{r.caller}", "X-Service-Secret": SECRET},
        frozenset({401, 403}),
    ),
}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
@pytest.mark.parametrize("credential", CREDENTIALS, ids=str)
def test_internal_routes_need_the_secret_and_an_allowed_name(
    credential: str, route: Route, apps: Apps, judge: Judge
) -> None:
    headers_for, expected = CREDENTIALS[credential]
    response = apps.clients[route.service].request(
        route.method, route.path.format(id=uuid.uuid4()), headers=headers_for(apps, route)
    )
    judge.refused(response, expected, f"{route.id} (shared-secret) with {credential}")


@category("shared-secret mode (controls)")
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_the_secret_and_an_allowed_name_get_in(route: Route, apps: Apps, judge: Judge) -> None:
    headers = {"X-Service-Name": route.caller, "X-Service-Secret": SECRET}
    response = apps.clients[route.service].request(
        route.method, route.path.format(id=uuid.uuid4()), headers=headers
    )
    judge.status(response, route.ok, f"{route.id} (shared-secret) as {route.caller} with the secret")


USER_MATRIX = {**COMMON_VARIANTS, **USER_VARIANTS}


@pytest.mark.parametrize("variant", USER_MATRIX, ids=str)
def test_forged_user_tokens_are_refused_in_shared_secret_mode(variant: str, apps: Apps, judge: Judge) -> None:
    token = USER_MATRIX[variant](apps.forge, apps.forge.user_claims(str(uuid.uuid4())), KID, "signing")
    response = apps.clients["member"].get("/api/v1/members/me", headers={"Authorization": f"Bearer {token}"})
    expected = {400, 401, 413, 431} if "kB token" in variant else {401}
    judge.refused(response, expected, f"member (shared-secret) GET /api/v1/members/me with {variant}")


@category("shared-secret mode (controls)")
def test_a_valid_user_token_gets_in_in_shared_secret_mode(apps: Apps, judge: Judge) -> None:
    token = apps.forge.user_token(apps.forge.user_claims(str(uuid.uuid4())))
    response = apps.clients["member"].get("/api/v1/members/me", headers={"Authorization": f"Bearer {token}"})
    judge.status(
        response, {404}, "member (shared-secret) GET /api/v1/members/me with a valid token (no profile yet)"
    )
