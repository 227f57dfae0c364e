"""Mint user and service tokens in tests, and make an app trust them without a running auth."""

from __future__ import annotations

from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from common.auth import JwksKeyCache, UserTokenIssuer, UserTokenVerifier, build_service_auth


class TestUsers:
    """A stand-in for auth: signs user tokens and serves their JWKS in-process.

    ``trust(app)`` points the app's user-token verifier at this issuer, so a service under
    test verifies real EdDSA tokens through the real ``JwksKeyCache`` with no auth running.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, issuer: str = "auth", audience: str = "reservations") -> None:
        self.issuer = UserTokenIssuer(issuer, audience, Ed25519PrivateKey.generate(), kid="test-key")
        self._audience = audience
        self._issuer_name = issuer

    def token(self, user_id: str, *, admin: bool = False) -> str:
        return self.issuer.issue(user_id, ["member", "admin"] if admin else ["member"])

    def headers(self, user_id: str, *, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, admin=admin)}"}

    def trust(self, app: FastAPI) -> None:
        jwks = self.issuer.jwks()
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, json=jwks))
        cache = JwksKeyCache(
            "http://auth.test/.well-known/jwks.json", http=httpx.AsyncClient(transport=transport)
        )
        app.state.user_tokens = UserTokenVerifier(self._issuer_name, self._audience, cache)


def service_headers(keys_dir: Path, caller: str, callee: str) -> dict[str, str]:
    """Headers ``caller`` would send to ``callee`` (keys generated in ``keys_dir`` if absent)."""
    return build_service_auth("jwt", caller, keys_dir, None).headers_for(callee)
