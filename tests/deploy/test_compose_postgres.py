"""deploy/compose/postgres-init.sh on a real PostgreSQL server (the machine's, no Docker).

The postgres image runs that script once, on its first start: it must give every service its own
database, owned by a role of the same name with the password from the generated .env, and shut
the others out. Here it runs the same way (``sh`` + ``psql`` as the superuser over the socket),
against a throwaway cluster on a free port; then each role logs in over TCP with scram-sha-256,
as the services will.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack import compose_env
from stack.ports import free_port_block

from .catalogue import REPO

SCRIPT = REPO / "deploy" / "compose" / "postgres-init.sh"
TIMEOUT_S = 180  # initdb and a start on a loaded 2-core machine


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """initdb refuses root: run the server's tools as the postgres user when we are root."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=TIMEOUT_S, **kwargs)


@pytest.fixture
def cluster() -> Iterator[tuple[Path, Path, int]]:
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.fail("no PostgreSQL server binaries (apt-get install postgresql)")
    # Not under pytest's tmp folder: that is root's, mode 0700, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="compose-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, port = home / "data", free_port_block(1)
    try:
        init = _as_postgres([str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"])
        assert init.returncode == 0, init.stderr
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
        log = str(home / "log")
        start = _as_postgres(
            [str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "-t", "120", "start"]
        )
        assert start.returncode == 0, start.stderr + start.stdout
        yield pg_bin, home, port
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(home, ignore_errors=True)


def test_each_service_gets_its_own_database_and_role(cluster: tuple[Path, Path, int]) -> None:
    pg_bin, home, port = cluster
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]["postgres"]["environment"]["SERVICE_DATABASES"].split()
    values = compose_env.generate(services)
    values["DB_PASSWORD_ROOM"] = "it's $(odd) \\ but valid"  # quoting is psql's, not the shell's
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": str(home),
        "PGPORT": str(port),
        "POSTGRES_USER": "postgres",
        "SERVICE_DATABASES": " ".join(services),
        **{k: v for k, v in values.items() if k.startswith("DB_PASSWORD_")},
    }
    run = _as_postgres(["sh", str(SCRIPT)], env=env)
    assert run.returncode == 0, run.stderr
    assert values["DB_PASSWORD_AUTH"] not in run.stdout + run.stderr, "a password was printed"

    # From here on, as in the image: TCP logins need the role's password.
    hba = home / "data" / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("trust", "scram-sha-256"))
    _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(home / "data"), "reload"])

    def psql(user: str, database: str, password: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(pg_bin / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", database, "-Atc"]
        login = {"PATH": os.environ["PATH"], "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "30"}
        return subprocess.run(
            [*cmd, "select current_user"], env=login, capture_output=True, text=True, timeout=TIMEOUT_S
        )

    for name in services:
        password = values[f"DB_PASSWORD_{name.upper()}"]
        mine = psql(name, name, password)
        assert (mine.returncode, mine.stdout.strip()) == (0, name), mine.stderr
        other = "auth" if name != "auth" else "room"
        theirs = psql(name, other, password)
        assert theirs.returncode != 0, f"{name} connected to {other}'s database"
        assert "CONNECT" in theirs.stderr, theirs.stderr
        wrong = psql(name, name, password + "x")
        assert wrong.returncode != 0
