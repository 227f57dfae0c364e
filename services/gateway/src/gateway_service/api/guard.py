"""Who is calling, and may they: the token check and the rate limit every routed request passes.

Order matters: the caller is identified first (a valid token → the user, else the client IP),
then counted, and only then is a missing or bad token refused. So a flood of garbage tokens
is rate-limited per IP like any other anonymous traffic, and one user can't exhaust another's
allowance by claiming their ``sub`` in a token that doesn't verify.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from common.auth import UserPrincipal, UserTokenVerifier
from common.errors import RateLimited, Unauthorized
from common.openapi import USER_BEARER
from gateway_service.adapters.rate_limit import RateLimiter

# Declares the bearer scheme in /docs ("Authorize" logs in through auth's token endpoint);
# auto_error off: the gateway answers a missing token itself, as a problem.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    auto_error=False,
    scheme_name=USER_BEARER,
    description="A user access token (a JWT); log in with email and password to get one.",
)


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def _identify_and_count(
    request: Request, token: str | None
) -> tuple[UserPrincipal | None, Unauthorized | None]:
    """The verified user (or why the token was refused), after counting the request."""
    user: UserPrincipal | None = None
    rejection: Unauthorized | None = None
    if token is not None:
        verifier: UserTokenVerifier = request.app.state.user_tokens
        try:
            user = await verifier.verify(token)
        except Unauthorized as exc:
            rejection = exc
    # The TCP peer, unless it is a trusted proxy (GATEWAY_FORWARDED_ALLOW_IPS, empty by default):
    # then uvicorn has put the client it names here. X-Forwarded-For from anyone else is ignored.
    client_ip = request.client.host if request.client else "unknown"
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = await limiter.hit(f"user:{user.user_id}" if user else f"ip:{client_ip}")
    if wait is not None:
        raise RateLimited(f"Rate limit of {limiter.limit} exceeded; try again later.", retry_after=wait)
    return user, rejection


async def public_caller(request: Request) -> None:
    """For public routes: no token needed; a valid one makes the user (not the IP) the one counted."""
    await _identify_and_count(request, _bearer_token(request))


async def authenticated_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> UserPrincipal:
    """For every other route: a valid user access token, else 401 at the gateway."""
    user, rejection = await _identify_and_count(request, token or None)
    if user is None:
        raise rejection or Unauthorized("bearer access token required")
    return user
