"""The user-token signing key: made once, private, with a kid derived from the key."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt

from auth_service.adapters.signing_keys import jwk_thumbprint, load_signing_key


def test_the_key_is_created_once_private_and_reloaded(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys" / "user-tokens"

    key, kid = load_signing_key(keys_dir)
    again, kid_again = load_signing_key(keys_dir)

    assert kid == kid_again
    assert again.private_bytes_raw() == key.private_bytes_raw()
    [private_file] = keys_dir.glob("*.key")
    assert stat.S_IMODE(private_file.stat().st_mode) == 0o600
    _, other_kid = load_signing_key(tmp_path / "elsewhere")
    assert other_kid != kid


def test_kid_is_the_rfc_7638_thumbprint() -> None:
    # The Ed25519 example of RFC 8037, appendix A.3.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    public_key = jwt.PyJWK(jwk, algorithm="EdDSA").key
    assert jwk_thumbprint(public_key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
