"""The e2e suite once more, on a stack whose services keep their data on PostgreSQL.

``stack up --db postgres``: one database per service on a throwaway PostgreSQL server of the
stack's own. This directory has its own ``stack`` and re-registers every fixture built on it
(the client, users, nights, mailbox): pytest caches a session fixture per definition, so the
ones in ``tests/conftest.py`` stay on the SQLite stack that ``tests/e2e`` and ``tests/security``
share, and nothing here leaks into them. The tests are the e2e suite's own
(``test_on_postgres.py`` imports them); ``-m "not postgres"`` leaves this stack unstarted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.runner import Stack
from stack.testing import running_stack
from tests.conftest import (  # noqa: F401 - re-registered here, on this directory's stack
    ENV_OVERRIDES,
    STACK_TEST_TIMEOUT_S,
    SuiteLifetime,
    admin,
    admin_token,
    client,
    gateway,
    mailbox,
    new_member,
    signup_and_login,
    stays,
)

LIFETIME = SuiteLifetime({"e2e_postgres"})


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The running, seeded system on PostgreSQL; stopped (every process and the server gone)
    after this directory's last test."""
    run_dir = tmp_path_factory.mktemp("e2e-postgres-stack")
    with LIFETIME:
        yield LIFETIME.enter_context(running_stack(run_dir, ENV_OVERRIDES, timeout=180, db="postgres"))


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    LIFETIME.end_after(item, nextitem)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.postgres)
            # The first test also waits for the stack to start (PostgreSQL, Kafka, six services, seed).
            item.add_marker(pytest.mark.timeout(STACK_TEST_TIMEOUT_S))
