"""What every HTTP answer carries at the edge: the Host check and the security headers.

Both are pure ASGI middleware, so they also cover answers no route produced (404s, early
problems of ``RequestContextMiddleware``) and the management port's small app.
See docs/security.md for the choices.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import BadRequest
from common.problems import problem_response

# For JSON answers: load nothing, be framed by no one. HTML pages (the docs) send their own.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),  # for browsers that predate CSP frame-ancestors
    ("Content-Security-Policy", API_CSP),
    # API answers are per user and change: nobody may keep a copy unless the route says so.
    ("Cache-Control", "no-store"),
)


class SecurityHeadersMiddleware:
    """Adds ``SECURITY_HEADERS`` to every answer that doesn't set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name not in headers:  # a route's own policy (docs pages, cacheable keys) wins
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """``host`` (a Host header, port stripped) matches a name, a ``*.suffix`` or ``*``."""
    name = _hostname(host)
    for pattern in allowed:
        if pattern == "*" or name == pattern.lower():
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:].lower()):
            return True
    return False


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal: [::1]:8000
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class TrustedHostMiddleware:
    """Refuses a request whose ``Host`` is not an allowed name: a 400 problem, nothing reflected.

    Links the service builds from the request (a redirect, ``url_for``) would otherwise point
    wherever the client's ``Host`` says; a cache in front could keep such an answer for others.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.allow_any = "*" in self.allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allow_any:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if host and host_allowed(host, self.allowed_hosts):
            await self.app(scope, receive, send)
            return
        # The detail names no host: the forged value is not echoed back.
        problem = BadRequest("The Host header does not name this service.")
        await problem_response(problem)(scope, receive, send)
