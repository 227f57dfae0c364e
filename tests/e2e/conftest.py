"""The whole system, started once per test session, driven through the gateway only.

The stack, the users, the nights and the mailbox come from ``tests/conftest.py``, shared with
the security suite (one stack per pytest session). This file marks the e2e tests and gives them
the names they import (``from .conftest import ...``).

Tests talk to the gateway only, read the SMTP sink's mailbox file, and (the fault test) stop
and start a service process. They are independent of each other and of their order: each
signs up its own users (unique emails) and books its own nights (``stays``).

Every e2e test that touches storage runs twice: ``[sqlite]`` on the session's shared stack
(SQLite files), then ``[postgres]`` on a second stack whose services keep their data on
PostgreSQL, one database each (``stack up --db postgres``). pytest groups the tests by engine,
so the PostgreSQL stack starts once, after the SQLite run (``-m "not postgres"`` skips it). The
gateway's own behaviour (rate limit, docs, metrics, Host checks) stores nothing: SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.runner import Stack
from stack.testing import running_stack
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    DEMO_LICENSE_KEY,
    ENV_OVERRIDES,
    PASSWORD,
    PROBLEM_JSON,
    SEEDED_DAYS,
    STACK_TEST_TIMEOUT_S,
    Mailbox,
    Stays,
    User,
    assert_problem,
    availability,
    eventually,
    login,
)

E2E_TIMEOUT_S = STACK_TEST_TIMEOUT_S  # per test, start-up of the session's stack included
ENGINES = ("sqlite", "postgres")
STORES_NOTHING = frozenset({"test_gateway"})  # modules run on the SQLite stack only

__all__ = [
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "DEMO_LICENSE_KEY",
    "E2E_TIMEOUT_S",
    "ENV_OVERRIDES",
    "PASSWORD",
    "PROBLEM_JSON",
    "SEEDED_DAYS",
    "Mailbox",
    "Stays",
    "User",
    "assert_problem",
    "availability",
    "eventually",
    "login",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test against the whole running stack")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stack" in metafunc.fixturenames:
        engines = ENGINES[:1] if metafunc.module.__name__.rsplit(".", 1)[-1] in STORES_NOTHING else ENGINES
        metafunc.parametrize("stack", engines, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)
            # The first test also waits for the stack to start (Kafka's JVM, six services, seed).
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))
            callspec = getattr(item, "callspec", None)
            if callspec is not None and callspec.params.get("stack") == "postgres":
                item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The system of this run of the test: the shared SQLite stack, or one on PostgreSQL.

    The PostgreSQL one is stopped as soon as pytest moves on from its tests (every process gone,
    its server's temp folder removed).
    """
    if request.param == "sqlite":
        yield request.getfixturevalue("shared_stack")
        return
    run_dir = tmp_path_factory.mktemp("e2e-postgres-stack")
    with running_stack(run_dir, ENV_OVERRIDES, timeout=180, db="postgres") as on_postgres:
        yield on_postgres
