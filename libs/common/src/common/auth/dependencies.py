"""Wiring auth into FastAPI apps: the service-auth factory and the route dependencies.

Apps put their authenticators on ``app.state`` at start-up (``service_auth`` and
``user_tokens``); the dependencies read them from there, so tests can swap them freely.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Request

from common.auth.keys import PublicKeyStore, ensure_service_keypair
from common.auth.service_tokens import (
    JwtServiceAuth,
    ServiceAuthenticator,
    ServiceIdentity,
    ServiceTokenIssuer,
    ServiceTokenVerifier,
)
from common.auth.shared_secret import SharedSecretServiceAuth
from common.auth.user_tokens import UserPrincipal, UserTokenVerifier
from common.errors import Forbidden, Unauthorized

ServiceAuthMode = Literal["jwt", "shared-secret"]


def build_service_auth(
    mode: ServiceAuthMode,
    service: str,
    keys_dir: Path,
    shared_secret: str | None,
    *,
    ttl_seconds: int = 30,
) -> ServiceAuthenticator:
    """The authenticator for ``service``: its own key pair in JWT mode, else the shared secret."""
    if mode == "jwt":
        private_key = ensure_service_keypair(keys_dir, service)
        return JwtServiceAuth(
            ServiceTokenIssuer(service, private_key, ttl_seconds),
            ServiceTokenVerifier(audience=service, keys=PublicKeyStore(keys_dir)),
        )
    if mode == "shared-secret":
        if not shared_secret:
            raise ValueError("shared-secret service auth needs a shared secret")
        return SharedSecretServiceAuth(service, shared_secret)
    raise ValueError(f"unknown service auth mode {mode!r}")


def service_identity(request: Request) -> ServiceIdentity:
    """The calling service proven by the request's headers, else ``Unauthorized``.

    Verified once per request and kept on ``request.state``: a token is good for one request
    (the replay cache), so a second check of the same request must not count as a replay.
    """
    known: ServiceIdentity | None = getattr(request.state, "service_identity", None)
    if known is not None:
        return known
    # Unset state is a wiring bug: AttributeError, logged, answered as a 500.
    auth: ServiceAuthenticator = request.app.state.service_auth
    identity = auth.authenticate(request.headers)
    request.state.service_identity = identity
    return identity


def require_service(*allowed_callers: str) -> Callable[[Request], Awaitable[ServiceIdentity]]:
    """A dependency admitting only the named calling services.

    No or invalid service credentials → 401; a valid caller not in the list → 403.
    Use it in ``dependencies=[Depends(...)]`` or as a parameter to get the ``ServiceIdentity``.
    """
    if not allowed_callers:
        raise ValueError("name at least one allowed calling service")
    allowed = frozenset(allowed_callers)

    async def authenticated_service(request: Request) -> ServiceIdentity:
        identity = service_identity(request)
        if identity.caller not in allowed:
            raise Forbidden(f"service {identity.caller!r} may not call this route")
        return identity

    return authenticated_service


async def current_user(request: Request) -> UserPrincipal:
    """The user behind the ``Authorization: Bearer`` access token, else 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("bearer access token required")
    verifier: UserTokenVerifier = request.app.state.user_tokens
    return await verifier.verify(token.strip())


def require_role(role: str) -> Callable[[UserPrincipal], Awaitable[UserPrincipal]]:
    """A dependency admitting only users with ``role`` (401 without a valid token, else 403)."""

    async def user_with_role(user: Annotated[UserPrincipal, Depends(current_user)]) -> UserPrincipal:
        if role not in user.roles:
            raise Forbidden(f"requires the {role!r} role")
        return user

    return user_with_role
