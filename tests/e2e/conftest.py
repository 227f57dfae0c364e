"""The whole system, started once per test session, driven through the gateway only.

The stack, the users, the nights and the mailbox come from ``tests/conftest.py``, shared with
the security suite (one stack per pytest session). This file marks the e2e tests and gives them
the names they import (``from .conftest import ...``).

Tests talk to the gateway only, read the SMTP sink's mailbox file, and (the fault test) stop
and start a service process. They are independent of each other and of their order: each
signs up its own users (unique emails) and books its own nights (``stays``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.testing.problems import assert_problem
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
    availability,
    eventually,
    login,
)

E2E_TIMEOUT_S = STACK_TEST_TIMEOUT_S  # per test, start-up of the session's stack included

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)
            # The first test also waits for the stack to start (Kafka's JVM, six services, seed).
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))
