"""Service-to-service JWTs: the caller signs with its own Ed25519 key, the callee verifies.

Claims: ``iss`` = calling service, ``aud`` = called service, ``iat``/``exp`` at most 60 s apart,
``jti`` = a fresh UUID. The header's ``kid`` names the caller, so the callee picks that
caller's public key and then requires ``iss == kid``: the signature proves who sent it.

A token is good for ONE request: the caller mints a new one per request (per attempt, when a
call is retried), and the callee remembers every ``jti`` it accepted until that token expires
(``ReplayCache``), so a token copied off the wire or out of a log is refused (401) the second
time, even within its lifetime.

Tokens travel in ``X-Service-Token`` because ``Authorization`` carries the user's token,
which is forwarded alongside on the same call.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.auth.keys import JWT_ALGORITHM, PublicKeyStore, check_service_name
from common.errors import Unauthorized

# Header and scheme names, not secrets.
SERVICE_TOKEN_HEADER = "X-Service-Token"
SERVICE_TOKEN_SCHEME = "ServiceToken"
MAX_SERVICE_TOKEN_TTL = 60
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "jti"]

# Most specific first: InvalidSignatureError is a DecodeError.
_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidAudienceError, "audience mismatch"),
    (jwt.InvalidIssuerError, "issuer mismatch"),
    (jwt.InvalidSignatureError, "signature invalid"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.DecodeError, "malformed"),
]


def jwt_failure_reason(exc: jwt.PyJWTError, what: str) -> str:
    """A short reason for a rejected token that is safe to show: never the token's content."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"{what} missing claim {exc.claim!r}"
    reason = next((text for kind, text in _REASONS if isinstance(exc, kind)), "invalid")
    return f"{what} {reason}"


def _reject(reason: str) -> Unauthorized:
    return Unauthorized(reason, scheme=SERVICE_TOKEN_SCHEME)


@dataclass(frozen=True)
class ServiceIdentity:
    """The authenticated calling service; ``jti`` is its token's id (``None`` with a shared secret)."""

    caller: str
    jti: str | None = None


class ServiceAuthenticator(Protocol):
    """Both sides of service auth: headers to send as a caller, a check to run as a callee."""

    def headers_for(self, audience: str) -> dict[str, str]:
        """Headers that authenticate this service to the service named ``audience``."""
        ...

    def authenticate(self, headers: Mapping[str, str]) -> ServiceIdentity:
        """The caller proven by ``headers`` (e.g. ``request.headers``), else ``Unauthorized``."""
        ...


class ServiceTokenIssuer:
    """Mints short-lived tokens that prove to other services that we are ``service``."""

    def __init__(
        self,
        service: str,
        private_key: Ed25519PrivateKey,
        ttl_seconds: int = 30,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < ttl_seconds <= MAX_SERVICE_TOKEN_TTL:
            raise ValueError(f"ttl_seconds must be in 1..{MAX_SERVICE_TOKEN_TTL}")
        self.service = check_service_name(service)
        self.ttl_seconds = ttl_seconds
        self._private_key = private_key
        self._clock = clock

    def token_for(self, audience: str) -> str:
        """A new token for one call to ``audience``.

        Never reused: the callee refuses a ``jti`` it has seen (replay protection), so a retry
        needs a new token too (``ServiceClient`` asks for headers on every attempt). An EdDSA
        signature costs tens of microseconds; a cache would save nothing that matters.
        """
        issued_at = int(self._clock())
        claims = {
            "iss": self.service,
            "aud": audience,
            "iat": issued_at,
            "exp": issued_at + self.ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self._private_key, algorithm=JWT_ALGORITHM, headers={"kid": self.service})


class ReplayCache:
    """The token ids a callee has accepted, each kept until its token expires.

    Bounded in time (an entry goes when its token could no longer be accepted anyway) and in
    size (``max_entries``). When full of live entries, the one closest to expiry is dropped:
    that token could then be replayed for the few seconds it has left, which is the price of
    never refusing honest callers for lack of memory. At ~100 bytes an entry, the default
    holds ~1,600 calls a second at the 60 s maximum lifetime in about 10 MB.
    """

    def __init__(self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []  # (forget_at, key), soonest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, caller: str, jti: str, forget_at: float) -> bool:
        """Remember ``(caller, jti)`` until ``forget_at``; False if it was already remembered.

        Keyed by caller too: one service can't burn another's token ids.
        """
        key = (caller, jti)
        with self._lock:
            self._forget_expired(self._clock())
            if key in self._expiry:
                return False
            while len(self._expiry) >= self.max_entries:
                _, oldest = heapq.heappop(self._heap)
                self._expiry.pop(oldest, None)
            self._expiry[key] = forget_at
            heapq.heappush(self._heap, (forget_at, key))
            return True

    def _forget_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            self._expiry.pop(key, None)


class ServiceTokenVerifier:
    """Checks service tokens addressed to ``audience`` (this service) against callers' keys."""

    def __init__(
        self,
        audience: str,
        keys: PublicKeyStore,
        leeway_seconds: float = 5,
        *,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self._keys = keys
        self.replay_cache = replay_cache or ReplayCache()

    def verify(self, token: str) -> ServiceIdentity:
        """The calling service, or ``Unauthorized`` with a short reason safe to show."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _reject("service token malformed") from None
        # Checked before any key lookup: "none" and HMAC tokens never reach a verifier.
        if header.get("alg") != JWT_ALGORITHM:
            raise _reject("service token algorithm not allowed")
        caller = header.get("kid")
        if not isinstance(caller, str):
            raise _reject("service token has no key id")
        key = self._keys.get(caller)
        if key is None:
            raise _reject("service token from unknown service")
        try:
            try:
                claims = self._decode(token, key, caller)
            except jwt.InvalidSignatureError:
                # The caller may have restarted with a new key pair: re-read the keys
                # (rate-limited) and retry once if its key changed.
                fresh = self._keys.get(caller) if self._keys.reload() else None
                if fresh is None or fresh == key:
                    raise
                claims = self._decode(token, fresh, caller)
        except jwt.PyJWTError as exc:
            # "from None": the cause adds nothing for the client and is kept out of logs.
            raise _reject(jwt_failure_reason(exc, "service token")) from None
        # pyjwt has already checked that both convert to int.
        if int(claims["exp"]) - int(claims["iat"]) > MAX_SERVICE_TOKEN_TTL:
            raise _reject(f"service token lifetime exceeds {MAX_SERVICE_TOKEN_TTL} s")
        jti = str(claims["jti"])
        # Checked last, so only valid tokens take room; kept while the token (with leeway) is valid.
        if not self.replay_cache.first_use(caller, jti, int(claims["exp"]) + self.leeway_seconds):
            raise _reject("service token replayed (a token is good for one request)")
        return ServiceIdentity(caller=caller, jti=jti)

    def _decode(self, token: str, key: Ed25519PublicKey, caller: str) -> dict[str, Any]:
        return jwt.decode(
            token,
            key,
            algorithms=[JWT_ALGORITHM],
            audience=self.audience,
            issuer=caller,  # iss must equal kid: a key speaks only for its own service
            leeway=self.leeway_seconds,
            # strict_aud: aud must be exactly us, not a list that could be replayed elsewhere.
            options={"require": _REQUIRED_CLAIMS, "strict_aud": True},
        )


class JwtServiceAuth:
    """Service auth with signed tokens in ``X-Service-Token`` (the default mode)."""

    def __init__(self, issuer: ServiceTokenIssuer, verifier: ServiceTokenVerifier) -> None:
        self.issuer = issuer
        self.verifier = verifier

    def headers_for(self, audience: str) -> dict[str, str]:
        """``{"X-Service-Token": <token for audience>}``."""
        return {SERVICE_TOKEN_HEADER: self.issuer.token_for(audience)}

    def authenticate(self, headers: Mapping[str, str]) -> ServiceIdentity:
        """Verify the ``X-Service-Token`` header; a user's ``Authorization`` is never enough."""
        token = headers.get(SERVICE_TOKEN_HEADER)
        if not token:
            raise _reject(f"missing {SERVICE_TOKEN_HEADER} header")
        return self.verifier.verify(token)
