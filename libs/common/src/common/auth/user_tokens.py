"""User access tokens: auth signs them, every other service verifies them locally via JWKS.

Auth publishes its public key(s) as a JWKS; verifiers cache the keys by ``kid`` and fetch
the JWKS again only when a token names a key they don't know (at most once per interval).
A failed fetch keeps the cached keys, so existing tokens keep working while auth is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from common.auth.keys import JWT_ALGORITHM
from common.auth.service_tokens import jwt_failure_reason
from common.errors import Unauthorized

log = logging.getLogger(__name__)

_RESERVED_CLAIMS = frozenset({"iss", "aud", "sub", "roles", "iat", "nbf", "exp", "jti"})
_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


def _reject(reason: str) -> Unauthorized:
    # RFC 6750: tell the client its bearer token (not the request) was the problem.
    return Unauthorized(reason, scheme='Bearer error="invalid_token"')


@dataclass(frozen=True)
class UserPrincipal:
    """The authenticated user; ``token`` is kept to forward downstream, never printed."""

    user_id: str
    roles: tuple[str, ...]
    token: str = field(repr=False)


class UserTokenIssuer:
    """Signs access tokens (used by the auth service) and publishes the key as a JWKS."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        private_key: Ed25519PrivateKey,
        kid: str,
        ttl_seconds: int = 900,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.issuer = issuer
        self.audience = audience
        self.kid = kid
        self.ttl_seconds = ttl_seconds
        self._private_key = private_key
        self._clock = clock

    def issue(self, subject: str, roles: list[str], extra: dict[str, Any] | None = None) -> str:
        """A signed access token for ``subject``; ``extra`` may not override standard claims."""
        clashes = _RESERVED_CLAIMS & set(extra or {})
        if clashes:
            raise ValueError(f"extra claims may not override {sorted(clashes)}")
        issued_at = int(self._clock())
        claims = {
            **(extra or {}),
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "roles": list(roles),
            "iat": issued_at,
            "exp": issued_at + self.ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._private_key, algorithm=JWT_ALGORITHM, headers={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        """The public key set to serve at the JWKS endpoint (no private material)."""
        jwk = OKPAlgorithm.to_jwk(self._private_key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": JWT_ALGORITHM, "use": "sig"}]}


class JwksKeyCache:
    """Auth's public keys by ``kid``, fetched from its JWKS URL when an unknown ``kid`` shows up."""

    def __init__(
        self,
        jwks_url: str,
        http: httpx.AsyncClient | None = None,
        min_refresh_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        timeout_seconds: float = 3.0,
    ) -> None:
        self.jwks_url = jwks_url
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._timeout = timeout_seconds
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._last_refresh: float | None = None
        self._lock = asyncio.Lock()  # concurrent misses share one fetch

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        """The key with this ``kid``, refreshing the set first if it is unknown."""
        key = self._keys.get(kid)
        if key is None:
            # Look again even if this call didn't fetch: a concurrent one may just have.
            await self.refresh()
            key = self._keys.get(kid)
        return key

    async def refresh(self) -> bool:
        """Fetch the JWKS unless fetched within the interval; ``True`` if the keys were replaced."""
        async with self._lock:
            now = self._clock()
            if self._last_refresh is not None and now - self._last_refresh < self._min_refresh_interval:
                return False
            self._last_refresh = now  # failures count too: a down auth is not retried per request
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning(
                    "JWKS fetch failed; keeping %d cached keys",
                    len(self._keys),
                    extra={"jwks_url": self.jwks_url, "error": type(exc).__name__},
                )
                return False
            self._keys = keys
            return True

    async def aclose(self) -> None:
        """Close the HTTP client if this cache created it."""
        if self._owns_http:
            await self._http.aclose()

    async def _fetch(self) -> dict[str, Ed25519PublicKey]:
        # Several auth instances serve the same keys: the first that answers will do.
        urls = jwks_urls(self.jwks_url)
        for url in urls[:-1]:
            try:
                return await self._fetch_one(url)
            except (httpx.HTTPError, ValueError) as exc:
                log.info("JWKS fetch from %s failed (%s); trying the next instance", url, type(exc).__name__)
        return await self._fetch_one(urls[-1])

    async def _fetch_one(self, url: str) -> dict[str, Ed25519PublicKey]:
        response = await self._http.get(url, timeout=self._timeout)
        response.raise_for_status()
        document = response.json()
        entries = document.get("keys") if isinstance(document, dict) else None
        keys: dict[str, Ed25519PublicKey] = {}
        for entry in entries if isinstance(entries, list) else []:
            parsed = _public_key(entry)
            if parsed is not None:
                keys[parsed[0]] = parsed[1]
        if not keys:
            # An empty or junk answer is treated as a failure: better the keys we have than none.
            raise ValueError("JWKS holds no usable Ed25519 keys")
        return keys


def jwks_urls(value: str) -> list[str]:
    """The URLs of a JWKS setting: one, or a comma-separated list (one per auth instance).

    A ``dns+http://`` entry (``common.http.discovery``) is fetched by its name: any address
    it resolves to serves the same keys.
    """
    urls = [entry.strip().removeprefix("dns+") for entry in value.split(",") if entry.strip()]
    return urls or [value]


def _public_key(jwk: Any) -> tuple[str, Ed25519PublicKey] | None:
    """``(kid, key)`` for an Ed25519 signing key entry, ``None`` for anything else."""
    if not (
        isinstance(jwk, dict)
        and jwk.get("kty") == "OKP"
        and jwk.get("crv") == "Ed25519"
        and isinstance(jwk.get("kid"), str)
        and jwk.get("alg", JWT_ALGORITHM) == JWT_ALGORITHM
        and jwk.get("use", "sig") == "sig"
        and "d" not in jwk  # a private key has no business in a JWKS: don't use it
    ):
        return None
    try:
        key = OKPAlgorithm.from_jwk(jwk)
    except jwt.PyJWTError:
        return None
    return (jwk["kid"], key) if isinstance(key, Ed25519PublicKey) else None


class UserTokenVerifier:
    """Verifies access tokens from ``issuer`` addressed to ``audience``, with keys from JWKS."""

    def __init__(self, issuer: str, audience: str, keys: JwksKeyCache, leeway_seconds: float = 5) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self._keys = keys

    async def verify(self, token: str) -> UserPrincipal:
        """The user the token speaks for, or ``Unauthorized`` with a short reason safe to show."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _reject("access token malformed") from None
        if header.get("alg") != JWT_ALGORITHM:
            raise _reject("access token algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _reject("access token has no key id")
        key = await self._keys.get(kid)
        if key is None:
            raise _reject("access token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[JWT_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise _reject(jwt_failure_reason(exc, "access token")) from None
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise _reject("access token roles claim invalid")
        return UserPrincipal(user_id=claims["sub"], roles=tuple(roles), token=token)
