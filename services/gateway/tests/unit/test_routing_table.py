"""The routing table is the public API of docs/api.md, and nothing more."""

from __future__ import annotations

import pytest

from gateway_service.domain.routes import ROUTES, UPSTREAMS, Route, checked
from gateway_service.settings import GatewaySettings

# docs/api.md, "gateway": who owns which prefix, and what is public.
OWNERS = {
    "/api/v1/auth/": "auth",
    "/api/v1/licenses": "auth",
    "/.well-known/jwks.json": "auth",
    "/api/v1/members": "member",
    "/api/v1/admin/members": "member",
    "/api/v1/rooms": "room",
    "/api/v1/reservations": "room",
    "/api/v1/availability": "inventory",
    "/api/v1/notifications": "notification",
}
PUBLIC = {
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),  # the refresh token is the credential, not an access token
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/{room_id}"),
    ("GET", "/api/v1/availability"),
}


def test_every_route_goes_to_the_owner_of_its_prefix():
    for route in ROUTES:
        [owner] = [name for prefix, name in OWNERS.items() if route.path.startswith(prefix)]
        assert route.upstream == owner, route.path


def test_exactly_the_documented_routes_are_public():
    assert {(r.method, r.path) for r in ROUTES if r.public} == PUBLIC


def test_every_upstream_has_a_configured_url():
    assert set(GatewaySettings(env="test").upstream_urls()) == set(UPSTREAMS)
    assert {r.upstream for r in ROUTES} == set(UPSTREAMS)


def test_table_refuses_duplicates_internal_routes_and_unknown_upstreams():
    signup = Route("POST", "/api/v1/auth/signup", "auth", "Sign up")
    with pytest.raises(ValueError, match="duplicate"):
        checked((signup, signup))
    with pytest.raises(ValueError, match="internal"):
        checked((Route("GET", "/internal/members/{id}", "member", "no"),))
    with pytest.raises(ValueError, match="unknown upstream"):
        Route("GET", "/api/v1/billing", "billing", "no")
