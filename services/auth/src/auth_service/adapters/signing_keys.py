"""The Ed25519 key that signs user access tokens, and its key id (an RFC 7638 thumbprint)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.auth import ensure_service_keypair

SIGNING_KEY_NAME = "signing"


def load_signing_key(keys_dir: Path) -> tuple[Ed25519PrivateKey, str]:
    """The signing key in ``keys_dir`` (created on first run) and its ``kid``.

    The platform's key-file helper does the careful part: created once, mode 0600, atomically,
    safe against two processes starting together. ``keys_dir`` must not be the service keys
    directory: every ``.pub`` there is accepted as a service identity.
    """
    private_key = ensure_service_keypair(keys_dir, SIGNING_KEY_NAME)
    return private_key, jwk_thumbprint(private_key.public_key())


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of the key's JWK: derived from the key, so a new key gets a new ``kid``."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # Required members only, in lexicographic order, no whitespace (RFC 7638 §3.2, RFC 8037 §2).
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
