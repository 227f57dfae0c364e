"""Password hashing with Argon2 (pwdlib)."""

from __future__ import annotations

import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


class PasswordHasher:
    """Hashes and checks passwords; ``waste_time`` makes an unknown user cost as much as a known one."""

    def __init__(self, *, time_cost: int = 2, memory_kib: int = 19456) -> None:
        # Argon2id, one lane (OWASP: p=1): the service already handles requests in parallel,
        # and hashes stored with other parameters still verify (they are in the hash string).
        self._hash = PasswordHash((Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1),))
        # A real Argon2 hash of nobody's password, so a login for an unknown email runs the
        # same verification as for a known one and the response time reveals no accounts.
        self._decoy = self._hash.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hash.hash(password)

    def verify(self, password: str, password_hash: str) -> bool:
        return self._hash.verify(password, password_hash)

    def waste_time(self, password: str) -> None:
        """Do the work of one verification, for a login whose user doesn't exist."""
        self._hash.verify(password, self._decoy)
