"""Key files: generated once, reused, private, race-safe; the public key store refreshes on a miss."""

from __future__ import annotations

import logging
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.auth import PublicKeyStore, ensure_service_keypair, load_public_keys


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_use_writes_a_private_pkcs8_key_and_a_matching_public_key(keys_dir: Path) -> None:
    key = ensure_service_keypair(keys_dir, "room")

    private_pem = (keys_dir / "room.key").read_bytes()
    # PKCS8, unencrypted: it loads without a password and re-serialises to the same bytes.
    loaded = serialization.load_pem_private_key(private_pem, password=None)
    pkcs8 = loaded.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert private_pem == pkcs8
    assert stat.S_IMODE((keys_dir / "room.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    public = serialization.load_pem_public_key((keys_dir / "room.pub").read_bytes())
    assert public == key.public_key()


def test_later_calls_reuse_the_same_key_without_rewriting_it(keys_dir: Path) -> None:
    first = ensure_service_keypair(keys_dir, "room")
    before = (keys_dir / "room.key").stat()

    second = ensure_service_keypair(keys_dir, "room")

    assert raw_public(first) == raw_public(second)
    after = (keys_dir / "room.key").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_missing_public_key_is_rewritten_from_the_private_key(keys_dir: Path) -> None:
    key = ensure_service_keypair(keys_dir, "room")
    (keys_dir / "room.pub").unlink()

    ensure_service_keypair(keys_dir, "room")

    assert load_public_keys(keys_dir, ["room"])["room"] == key.public_key()


def test_processes_starting_at_once_all_end_up_with_the_one_stored_key(keys_dir: Path) -> None:
    # Threads stand in for processes: the race is on the file system either way.
    workers = 8
    start = threading.Barrier(workers)

    def start_service() -> bytes:
        start.wait()
        return raw_public(ensure_service_keypair(keys_dir, "room"))

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda _: start_service(), range(workers)))

    stored = serialization.load_pem_private_key((keys_dir / "room.key").read_bytes(), password=None)
    assert isinstance(stored, Ed25519PrivateKey)
    assert set(results) == {raw_public(stored)}
    assert sorted(p.name for p in keys_dir.iterdir()) == ["room.key", "room.pub"]  # no temp files left


@pytest.mark.parametrize("name", ["", "../etc/passwd", "Room", "room/../auth", "a" * 65])
def test_service_names_that_could_escape_the_keys_dir_are_refused(keys_dir: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid service name"):
        ensure_service_keypair(keys_dir, name)


def test_load_public_keys_leaves_out_services_without_a_key(keys_dir: Path) -> None:
    room = ensure_service_keypair(keys_dir, "room")

    keys = load_public_keys(keys_dir, ["room", "inventory"])

    assert keys == {"room": room.public_key()}


def test_an_unreadable_public_key_file_is_skipped_with_a_warning(
    keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys_dir.mkdir()
    (keys_dir / "room.pub").write_text("not a key")

    with caplog.at_level(logging.WARNING):
        assert load_public_keys(keys_dir, ["room"]) == {}
    assert "unreadable public key" in caplog.text


def test_store_reloads_on_a_miss_so_callers_may_start_later(keys_dir: Path) -> None:
    clock = FakeClock()
    store = PublicKeyStore(keys_dir, min_reload_interval=1.0, clock=clock)
    assert store.get("room") is None  # room has not started yet

    room = ensure_service_keypair(keys_dir, "room")
    clock.now += 1.0

    assert store.get("room") == room.public_key()


def test_store_reloads_at_most_once_per_interval(keys_dir: Path) -> None:
    clock = FakeClock()
    store = PublicKeyStore(keys_dir, min_reload_interval=1.0, clock=clock)
    assert store.get("room") is None
    room = ensure_service_keypair(keys_dir, "room")

    clock.now += 0.5
    assert store.get("room") is None  # too soon: a flood of unknown names can't hammer the disk
    assert store.reload() is False

    clock.now += 0.5
    assert store.get("room") == room.public_key()


def test_store_serves_known_keys_without_touching_the_disk(keys_dir: Path) -> None:
    room = ensure_service_keypair(keys_dir, "room")
    store = PublicKeyStore(keys_dir, min_reload_interval=3600)
    assert store.get("room") == room.public_key()

    (keys_dir / "room.pub").unlink()

    assert store.get("room") == room.public_key()
