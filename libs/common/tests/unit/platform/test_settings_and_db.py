"""Settings refuse placeholder secrets in prod; the database unit of work commits or rolls back."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text

from common.db import Database
from common.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "demo"


def test_env_prefix_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    monkeypatch.setenv("DEMO_PORT", "8123")
    settings = DemoSettings()
    assert settings.port == 8123
    assert settings.database_url == f"sqlite:///{tmp_path}/data/demo.db"
    assert settings.service_keys_dir == tmp_path / "keys"


def test_placeholder_secret_refused_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ENV", "prod")
    with pytest.raises(ValidationError, match="placeholder"):
        DemoSettings()
    monkeypatch.setenv("DEMO_SERVICE_SHARED_SECRET", "a-real-secret-of-enough-length")
    monkeypatch.setenv("DEMO_ALLOWED_HOSTS", '["demo.example"]')  # "*" is refused in prod too
    monkeypatch.setenv("DEMO_CURSOR_SECRET", "another-real-secret-of-enough-length")
    assert DemoSettings().env == "prod"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        DemoSettings()


def test_secret_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SERVICE_SHARED_SECRET", "a-real-secret-of-enough-length")
    assert "a-real-secret" not in repr(DemoSettings())


def test_unit_of_work_commits_or_rolls_back(new_database) -> None:
    db = Database(new_database("uow"))
    with db.transaction() as session:
        session.execute(text("CREATE TABLE t (v INTEGER)"))
    with db.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("domain rule failed")
    with db.read() as session:
        assert session.execute(text("SELECT v FROM t")).scalars().all() == [1]
        if db.is_sqlite:
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    db.ping()
    db.dispose()


def test_a_new_connection_opens_while_another_thread_holds_the_write_lock(tmp_path: Path) -> None:
    # A service's consumer or reaper thread may be inside a write transaction when a request
    # opens a fresh pooled connection: that connection must not fail with "database is locked".
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    writer, reader = Database(url), Database(url)
    with writer.transaction() as session:
        session.execute(text("CREATE TABLE t (v INTEGER)"))
    with writer.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock (BEGIN IMMEDIATE)
        with reader.read() as other:
            assert other.execute(text("SELECT count(*) FROM t")).scalar() == 0  # WAL: a snapshot
    writer.dispose()
    reader.dispose()
