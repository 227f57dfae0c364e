"""Forged tokens, minted with joserfc (an independent JWT library), never with the project's signer.

``Forge`` holds the stack's real signing keys (read from its keys folder, as an insider who stole
a key file would) and a key of the attacker's own. A variant is a function of the forge and the
claims of a valid token: it returns the compact token to send. Tokens joserfc refuses to make
(``alg: none``, HMAC keyed with a public key, odd header values) are put together by hand from
their parts: the point is what the verifier does with them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

Claims = dict[str, Any]
Header = dict[str, Any]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def payload_of(token: str) -> Claims:
    """The claims of a compact JWT, unverified (to read what a server put in it)."""
    part = token.split(".")[1]
    claims: Claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def sign(header: Header, claims: Claims, key: OKPKey | RSAKey | ECKey) -> str:
    """A token signed by joserfc with ``key`` and the header's ``alg``."""
    with warnings.catch_warnings():
        # joserfc flags EdDSA as deprecated (RFC 9864 names Ed25519 explicitly); it is what we use.
        warnings.simplefilter("ignore")
        return jwt.encode(header, claims, key, algorithms=[header["alg"]])


def compact(header: Header, claims: Claims, signature: bytes = b"") -> str:
    """A token put together by hand: ``b64(header).b64(claims).b64(signature)``."""
    return f"{b64json(header)}.{b64json(claims)}.{b64url(signature)}"


def hs256(header: Header, claims: Claims, secret: bytes) -> str:
    """HMAC-SHA256 signed by hand (joserfc rightly refuses a public key as an HMAC secret)."""
    signing_input = f"{b64json(header)}.{b64json(claims)}".encode()
    return f"{signing_input.decode()}.{b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())}"


@dataclass
class Forge:
    """Keys for forging: the stack's real ones (by name) and the attacker's own."""

    keys_dir: Path
    user_kid: str
    attacker: OKPKey = field(default_factory=lambda: OKPKey.generate_key("Ed25519"))
    attacker_rsa: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048))
    attacker_ec: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    _real: dict[str, OKPKey] = field(default_factory=dict)

    def real(self, name: str) -> OKPKey:
        """A real private key of the stack: a service's (``room``) or auth's user-token key (``signing``)."""
        if name not in self._real:
            path = (
                self.keys_dir / "user-tokens" / "signing.key"
                if name == "signing"
                else self.keys_dir / f"{name}.key"
            )
            self._real[name] = OKPKey.import_key(path.read_bytes())
        return self._real[name]

    def public_pem(self, name: str) -> bytes:
        return self.real(name).as_pem(private=False)

    def public_raw(self, name: str) -> bytes:
        x = str(self.real(name).as_dict(private=False)["x"])
        return base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))

    # -- claims of a valid token, to start a variant from -----------------------------------

    def user_claims(self, user_id: str, roles: list[str] | None = None, **overrides: Any) -> Claims:
        now = int(time.time())
        claims: Claims = {
            "iss": "auth",
            "aud": "reservations",
            "sub": user_id,
            "roles": roles if roles is not None else ["member"],
            "iat": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return claims

    def service_claims(self, caller: str, audience: str, **overrides: Any) -> Claims:
        now = int(time.time())
        claims: Claims = {
            "iss": caller,
            "aud": audience,
            "iat": now,
            "exp": now + 30,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return claims

    def user_token(self, claims: Claims, header: Header | None = None) -> str:
        """Signed with auth's real user-token key: valid unless the claims or header say otherwise."""
        return sign({"alg": "EdDSA", "kid": self.user_kid, **(header or {})}, claims, self.real("signing"))

    def service_token(self, caller: str, claims: Claims, header: Header | None = None) -> str:
        """Signed with ``caller``'s real key, ``kid`` = ``caller``."""
        return sign({"alg": "EdDSA", "kid": caller, **(header or {})}, claims, self.real(caller))


def without(claims: Claims, name: str) -> Claims:
    return {k: v for k, v in claims.items() if k != name}


# A variant: (forge, claims of a valid token, kid of the real key, real key's name) -> token.
Variant = Callable[[Forge, Claims, str, str], str]


def _none(alg: str) -> Variant:
    return lambda f, c, kid, key: compact({"alg": alg, "kid": kid, "typ": "JWT"}, c)


def _real_signed(change: Callable[[Claims], Claims], header: Header | None = None) -> Variant:
    return lambda f, c, kid, key: sign(
        {"alg": "EdDSA", "kid": kid, **(header or {})}, change(dict(c)), f.real(key)
    )


def _attacker_signed(
    header: Header | None = None, change: Callable[[Claims], Claims] | None = None
) -> Variant:
    def make(f: Forge, c: Claims, kid: str, key: str) -> str:
        claims = change(dict(c)) if change else c
        return sign({"alg": "EdDSA", "kid": kid, **(header or {})}, claims, f.attacker)

    return make


def _hand_signed_real(header: Header) -> Variant:
    """Header values joserfc will not write (a numeric kid), signed with the real key by hand."""

    def make(f: Forge, c: Claims, kid: str, key: str) -> str:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        private = load_pem_private_key(f.real(key).as_pem(private=True), password=None)
        signing_input = f"{b64json(header)}.{b64json(c)}".encode()
        signature = private.sign(signing_input)  # type: ignore[union-attr, call-arg]
        return f"{signing_input.decode()}.{b64url(signature)}"

    return make


def _flip_signature(f: Forge, c: Claims, kid: str, key: str) -> str:
    token = sign({"alg": "EdDSA", "kid": kid}, c, f.real(key))
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0x01
    return f"{head}.{body}.{b64url(bytes(raw))}"


def _swap_payload(f: Forge, c: Claims, kid: str, key: str) -> str:
    """A real signature over other claims, with the claims edited afterwards (roles/sub)."""
    token = sign({"alg": "EdDSA", "kid": kid}, c, f.real(key))
    head, _, sig = token.split(".")
    edited = {**c, "roles": ["member", "admin"], "sub": str(uuid.uuid4())}
    return f"{head}.{b64json(edited)}.{sig}"


def _strip_signature(f: Forge, c: Claims, kid: str, key: str) -> str:
    head, body, _ = sign({"alg": "EdDSA", "kid": kid}, c, f.real(key)).split(".")
    return f"{head}.{body}."


def _padded(size: int) -> Variant:
    return _attacker_signed(change=lambda c: {**c, "pad": "A" * size})


def _hmac_with(secret: Callable[[Forge, str], bytes]) -> Variant:
    return lambda f, c, kid, key: hs256({"alg": "HS256", "kid": kid, "typ": "JWT"}, c, secret(f, key))


def _now() -> int:
    return int(time.time())


# Variants shared by user and service tokens. Each must be refused with 401.
COMMON_VARIANTS: dict[str, Variant] = {
    "alg none": _none("none"),
    "alg None": _none("None"),
    "alg NONE": _none("NONE"),
    "alg none, signature kept": lambda f, c, kid, key: (
        compact({"alg": "none", "kid": kid}, c)
        + sign({"alg": "EdDSA", "kid": kid}, c, f.real(key)).split(".")[2]
    ),
    "HS256 keyed with the public key PEM (key confusion)": _hmac_with(lambda f, key: f.public_pem(key)),
    "HS256 keyed with the raw public key": _hmac_with(lambda f, key: f.public_raw(key)),
    "HS256 keyed with the public JWK x": _hmac_with(lambda f, key: str(f.real(key).as_dict()["x"]).encode()),
    "HS256 keyed with an empty secret": _hmac_with(lambda f, key: b""),
    "RS256 with the attacker's RSA key": lambda f, c, kid, key: sign(
        {"alg": "RS256", "kid": kid}, c, f.attacker_rsa
    ),
    "ES256 with the attacker's EC key": lambda f, c, kid, key: sign(
        {"alg": "ES256", "kid": kid}, c, f.attacker_ec
    ),
    "expired an hour ago": _real_signed(lambda c: {**c, "iat": _now() - 7200, "exp": _now() - 3600}),
    "expired 60 s ago (beyond leeway)": _real_signed(lambda c: {**c, "iat": _now() - 90, "exp": _now() - 60}),
    "not valid before an hour from now (nbf)": _real_signed(lambda c: {**c, "nbf": _now() + 3600}),
    "issued an hour in the future (iat)": _real_signed(
        lambda c: {**c, "iat": _now() + 3600, "exp": _now() + 3630}
    ),
    "exp not a number": _real_signed(lambda c: {**c, "exp": "tomorrow"}),
    "wrong audience": _real_signed(lambda c: {**c, "aud": "somewhere-else"}),
    "wrong issuer": _real_signed(lambda c: {**c, "iss": "evil"}),
    "issuer in another case": _real_signed(lambda c: {**c, "iss": str(c["iss"]).upper()}),
    "missing exp": _real_signed(lambda c: without(c, "exp")),
    "missing aud": _real_signed(lambda c: without(c, "aud")),
    "missing iss": _real_signed(lambda c: without(c, "iss")),
    "unknown kid": _attacker_signed({"kid": "mallory-key"}),
    "unknown kid, real key": _real_signed(lambda c: c, {"kid": "mallory-key"}),
    "kid path traversal": _attacker_signed({"kid": "../../../../../../dev/null"}),
    "kid path traversal to a key file": _attacker_signed({"kid": "../keys/user-tokens/signing"}),
    "kid SQL-ish": _attacker_signed({"kid": "x' OR '1'='1' -- "}),
    "kid empty": _attacker_signed({"kid": ""}),
    "kid a number": _hand_signed_real({"alg": "EdDSA", "kid": 1}),
    "no kid": _hand_signed_real({"alg": "EdDSA"}),
    "jku pointing at the attacker's JWKS": _attacker_signed({"jku": "http://127.0.0.1:9/jwks.json"}),
    "x5u pointing at the attacker's certificate": _attacker_signed({"x5u": "http://127.0.0.1:9/cert.pem"}),
    "jwk header with the attacker's key": lambda f, c, kid, key: sign(
        {"alg": "EdDSA", "kid": kid, "jwk": f.attacker.as_dict(private=False)}, c, f.attacker
    ),
    "signed with the attacker's Ed25519 key": _attacker_signed(),
    "signature bit flipped": _flip_signature,
    "claims edited after signing": _swap_payload,
    "signature stripped": _strip_signature,
    "60 kB token": _padded(60_000),
    "9 kB token": _padded(9_000),
    "garbage": lambda f, c, kid, key: "garbage",
    "three dots": lambda f, c, kid, key: "...",
    "base64 junk segments": lambda f, c, kid, key: "eyJ.eyJ.eyJ",
    "header not JSON": lambda f, c, kid, key: f"{b64url(b'not json')}.{b64json(c)}.AAAA",
    "claims not JSON": lambda f, c, kid, key: (
        f"{b64json({'alg': 'EdDSA', 'kid': kid})}.{b64url(b'[1,2')}.AAAA"
    ),
    "JWE-shaped (five parts)": lambda f, c, kid, key: "a.b.c.d.e",
}

# Only for user tokens (the service-token ones are in SERVICE_VARIANTS).
USER_VARIANTS: dict[str, Variant] = {
    "missing sub": _real_signed(lambda c: without(c, "sub")),
    "roles not a list": _real_signed(lambda c: {**c, "roles": "admin"}),
    "admin role self-granted (attacker key)": _attacker_signed(
        change=lambda c: {**c, "roles": ["member", "admin"]}
    ),
}

SERVICE_VARIANTS: dict[str, Variant] = {
    "missing jti": _real_signed(lambda c: without(c, "jti")),
    "missing iat": _real_signed(lambda c: without(c, "iat")),
    "lifetime over 60 s": _real_signed(lambda c: {**c, "exp": int(c["iat"]) + 3600}),
    "audience list with this service and another": _real_signed(
        lambda c: {**c, "aud": [c["aud"], "gateway"]}
    ),
    "issuer differs from kid": _real_signed(
        lambda c: {**c, "iss": "member" if c["iss"] != "member" else "room"}
    ),
}
