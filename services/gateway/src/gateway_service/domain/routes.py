"""The routing table: every public endpoint, the service that owns it, and who may call it.

This is the whole public API as the gateway sees it, and it is an allow-list: a path or
method not listed here (``/internal/...`` included) gets a 404 or 405 at the gateway and never
reaches a service. The routes of ``/docs`` are generated from the same rows, so what is
documented is exactly what is routed. A new public endpoint in a service needs one row here.

Services serve their public routes at the same path, so a row only says *where* to send
it; the path, query and body go through as they came.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UPSTREAMS = ("auth", "member", "room", "inventory", "notification")

# Request headers a service needs from the client; request id, trace context, deadline and
# the gateway's own service token are added by the HTTP client (common.http.ServiceClient).
FORWARDED_REQUEST_HEADERS = ("Authorization", "Content-Type", "Accept")
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"  # forwarded too, and makes retrying a POST safe
# Response headers that carry meaning for the client (besides status, body and content type),
# passed end to end; an allow-list, so hop-by-hop and internal ones (Server, X-Request-ID: the
# gateway sends its own) stay behind. tests/contracts/test_forwarded_headers.py compares every
# routed operation's headers direct and through the gateway. See docs/security.md.
FORWARDED_RESPONSE_HEADERS = (
    "Retry-After",  # 429, 503: when to try again
    "Location",  # 201: where the new resource is
    "WWW-Authenticate",  # 401: the scheme
    "Cache-Control",  # auth's no-store on tokens (RFC 6749 §5.1); the service knows what may be kept
    "Pragma",  # no-cache beside it, for HTTP/1.0 caches
    "Idempotent-Replayed",  # room: this answer is a replay of the first one (docs/api.md)
    "ETag",
    "Last-Modified",
    "Vary",
    "Content-Language",
    "Link",
)


@dataclass(frozen=True)
class Route:
    """One public endpoint. The fields after ``summary`` only document it in ``/docs``."""

    method: str
    path: str  # a path template; ``{name}`` matches one segment
    upstream: str
    summary: str
    public: bool = False  # callable without an access token
    status: int = 200  # success status
    query: tuple[str, ...] = ()  # required query parameters
    paged: bool = False  # a paged list: optional ``limit`` and ``cursor`` (docs/api.md)
    headers: tuple[str, ...] = ()  # required request headers
    json_example: Mapping[str, Any] | None = None  # a JSON body
    form_fields: tuple[str, ...] = ()  # an urlencoded form body

    def __post_init__(self) -> None:
        if self.upstream not in UPSTREAMS:
            raise ValueError(f"unknown upstream {self.upstream!r} for {self.method} {self.path}")


def checked(routes: tuple[Route, ...]) -> tuple[Route, ...]:
    """The routes, once it is sure each method and path appears once and none is internal."""
    seen: set[tuple[str, str]] = set()
    for route in routes:
        if (route.method, route.path) in seen:
            raise ValueError(f"duplicate route {route.method} {route.path}")
        if route.path.startswith("/internal"):
            raise ValueError("internal routes are never exposed by the gateway")
        seen.add((route.method, route.path))
    return routes


ROUTES: tuple[Route, ...] = checked(
    (
        # -- auth: accounts, tokens, keys, licenses ---------------------------------------------
        Route(
            "POST",
            "/api/v1/auth/signup",
            "auth",
            "Create an account",
            public=True,
            status=201,
            json_example={"email": "ada@example.com", "password": "correct-horse", "display_name": "Ada"},
        ),
        Route(
            "POST",
            "/api/v1/auth/token",
            "auth",
            "Log in (OAuth2 password form): an access and a refresh token",
            public=True,
            form_fields=("username", "password"),
        ),
        Route(
            "POST",
            "/api/v1/auth/refresh",
            "auth",
            "Swap a refresh token for new tokens (the old one is spent)",
            public=True,
            json_example={"refresh_token": "..."},
        ),
        Route(
            "POST",
            "/api/v1/auth/logout",
            "auth",
            "End a session: the refresh token's family is revoked (idempotent)",
            public=True,  # the refresh token is the proof; an expired access token must not stop it
            status=204,
            json_example={"refresh_token": "..."},
        ),
        Route("GET", "/.well-known/jwks.json", "auth", "Public keys of access tokens (JWKS)", public=True),
        Route(
            "POST",
            "/api/v1/licenses",
            "auth",
            "Issue a license (admin)",
            status=201,
            json_example={"product": "reservations-pro", "seats": 3},
        ),
        Route(
            "POST",
            "/api/v1/licenses/activate",
            "auth",
            "Activate a license on a machine (same machine again: same activation)",
            json_example={"license_key": "...", "machine_id": "laptop-1"},
        ),
        Route("GET", "/api/v1/licenses", "auth", "My license activations", paged=True),
        # -- member: profiles ------------------------------------------------------------------
        Route("GET", "/api/v1/members/me", "member", "My member profile"),
        Route(
            "PATCH",
            "/api/v1/members/me",
            "member",
            "Update my profile",
            json_example={"display_name": "Ada L."},
        ),
        Route(
            "GET",
            "/api/v1/members/me/history",
            "member",
            "My reservations and activations so far",
            paged=True,
        ),
        Route("POST", "/api/v1/admin/members/{member_id}/suspend", "member", "Suspend a member (admin)"),
        # -- room: catalogue and reservations --------------------------------------------------
        Route("GET", "/api/v1/rooms", "room", "List rooms", public=True),
        Route("GET", "/api/v1/rooms/{room_id}", "room", "One room", public=True),
        Route(
            "POST",
            "/api/v1/reservations",
            "room",
            "Reserve a room (send the same Idempotency-Key to retry safely)",
            status=201,
            headers=(IDEMPOTENCY_KEY_HEADER,),
            json_example={"room_id": "r101", "check_in": "2030-01-10", "check_out": "2030-01-12"},
        ),
        Route("GET", "/api/v1/reservations", "room", "My reservations", paged=True),
        Route("GET", "/api/v1/reservations/{reservation_id}", "room", "One of my reservations"),
        Route(
            "DELETE",
            "/api/v1/reservations/{reservation_id}",
            "room",
            "Cancel one of my reservations (idempotent)",
        ),
        # -- inventory: availability -----------------------------------------------------------
        Route(
            "GET",
            "/api/v1/availability",
            "inventory",
            "Availability of a room per night (to is exclusive)",
            public=True,
            query=("room_id", "from", "to"),
        ),
        # -- notification: what was sent to me -------------------------------------------------
        Route("GET", "/api/v1/notifications", "notification", "Notifications sent to me", paged=True),
        Route(
            "GET",
            "/api/v1/notifications/contact",
            "notification",
            "The contact details notification keeps for me",
        ),
        Route(
            "POST",
            "/api/v1/notifications/{notification_id}/resend",
            "notification",
            "Send a sent or failed mail again, same Message-ID (admin)",
            status=202,
        ),
    )
)
