"""Ed25519 key pairs for service tokens, kept as PEM files in a keys directory.

Each service creates ``<service>.key`` (private, mode 0600) on first start and publishes
``<service>.pub`` next to it; callees read the ``.pub`` files to check callers' signatures.
The directory is created at run time (e.g. ``.run/keys``) and is never committed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger(__name__)

JWT_ALGORITHM = "EdDSA"  # the only algorithm our verifiers accept (JWS name for Ed25519 signatures)
PRIVATE_KEY_SUFFIX = ".key"
PUBLIC_KEY_SUFFIX = ".pub"

# Service names become file names: a strict pattern rules out path tricks such as "../x".
_SERVICE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def check_service_name(service: str) -> str:
    """Return ``service`` if it is a valid service name, else raise ``ValueError``."""
    if not _SERVICE_NAME.fullmatch(service):
        raise ValueError(f"invalid service name {service!r}: use [a-z][a-z0-9_-]*")
    return service


def ensure_service_keypair(keys_dir: Path, service: str) -> Ed25519PrivateKey:
    """Load this service's private key, generating and saving the pair on first use.

    Safe when several processes start at once: the first complete key file wins and every
    process ends up with that same key. ``<service>.pub`` is (re)written to match it.
    """
    check_service_name(service)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path = keys_dir / f"{service}{PRIVATE_KEY_SUFFIX}"
    if not private_path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _create_exclusively(private_path, pem)
    private_key = _load_private_key(private_path)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path = keys_dir / f"{service}{PUBLIC_KEY_SUFFIX}"
    if not public_path.exists() or public_path.read_bytes() != public_pem:
        _replace_atomically(public_path, public_pem, mode=0o644)
    return private_key


def load_public_keys(keys_dir: Path, services: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """Read ``<service>.pub`` for each service; services without a (valid) key are absent."""
    keys: dict[str, Ed25519PublicKey] = {}
    for service in services:
        path = keys_dir / f"{check_service_name(service)}{PUBLIC_KEY_SUFFIX}"
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except FileNotFoundError:
            continue
        except ValueError:
            log.warning("ignoring unreadable public key file", extra={"path": str(path)})
            continue
        if isinstance(key, Ed25519PublicKey):
            keys[service] = key
        else:
            log.warning("ignoring non-Ed25519 public key file", extra={"path": str(path)})
    return keys


class PublicKeyStore:
    """The callers' public keys, read from the keys directory.

    Services start in any order, so a caller's key may appear after we loaded ours: a miss
    re-reads the directory, at most once per ``min_reload_interval`` seconds so that tokens
    naming unknown services cannot make us hammer the disk.
    """

    def __init__(
        self,
        keys_dir: Path,
        *,
        min_reload_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys_dir = keys_dir
        self._min_reload_interval = min_reload_interval
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._last_reload: float | None = None

    def get(self, service: str) -> Ed25519PublicKey | None:
        """The service's public key, or ``None`` if it has none (even after a reload)."""
        key = self._keys.get(service)
        if key is None:
            self.reload()
            key = self._keys.get(service)
        return key

    def reload(self) -> bool:
        """Re-read every ``*.pub`` file; return ``False`` if skipped because of the rate limit."""
        now = self._clock()
        if self._last_reload is not None and now - self._last_reload < self._min_reload_interval:
            return False
        self._last_reload = now
        # Names come from the directory listing, never from a token, so no path is built
        # from untrusted input.
        names = [p.name.removesuffix(PUBLIC_KEY_SUFFIX) for p in self.keys_dir.glob("*.pub")]
        self._keys = load_public_keys(self.keys_dir, filter(_SERVICE_NAME.fullmatch, names))
        return True


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def _create_exclusively(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` (mode 0600) unless it exists; never leave it half-written.

    The data goes to a temporary file first, which is then hard-linked to ``path``: the link
    appears complete or not at all, and fails if another process linked its key first.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # FileExistsError: another process won the race; the caller loads its key instead.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _replace_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
