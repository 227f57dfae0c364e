"""Password hashing: Argon2id at OWASP's parameters by default; older hashes keep verifying."""

from __future__ import annotations

from pwdlib.hashers.argon2 import Argon2Hasher

from auth_service.adapters.passwords import PasswordHasher


def test_the_default_hash_is_argon2id_at_owasps_parameters() -> None:
    hashed = PasswordHasher().hash("correct-horse-battery")

    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_a_hash_made_with_other_parameters_still_verifies() -> None:
    # Stored before the defaults changed (argon2-cffi's m=64 MiB, t=3, p=4).
    old = Argon2Hasher(time_cost=3, memory_cost=65536, parallelism=4).hash("correct-horse-battery")
    hasher = PasswordHasher(time_cost=1, memory_kib=8192)

    assert hasher.verify("correct-horse-battery", old)
    assert not hasher.verify("wrong-horse-battery", old)
