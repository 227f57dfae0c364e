"""The failover suite: one stack with two room and two notification instances, one killed at a time.

One stack for the module (``stack up --instances room=2,notification=2`` in code): the gateway
balances over both rooms (``common.http.balancer``), both notifications share the consumer
groups' partitions. The chaos suite's helpers are reused as they are: ``World`` (users,
reservations through the gateway, keyed retries) and ``Ledger`` (every database and the
mailbox: nothing lost, nothing doubled, one mail per Message-ID). The numbers each scenario
measured go to ``<RUN_DIR>/results/failover.json`` and a table at the end of the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stack.kafka import default_run_dir
from stack.runner import Stack
from stack.testing import running_stack
from tests.chaos.conftest import CHAOS_ENV, World

INSTANCES = {"room": 2, "notification": 2}
FAILOVER_TIMEOUT_S = 300  # per test, the shared stack's start included (a loaded 2-core machine)
# Faster answers, never different ones: the chaos suite's settings, and the gateway ejecting a
# dead instance after 2 failed attempts instead of 3.
FAILOVER_ENV = {**CHAOS_ENV, "GATEWAY_OUTLIER_CONSECUTIVE_FAILURES": "2"}

MEASURED: dict[str, dict[str, Any]] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.timeout(FAILOVER_TIMEOUT_S))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURED:
        return
    run_dir = os.environ.get("RUN_DIR")
    path = (Path(run_dir) if run_dir else default_run_dir()) / "results" / "failover.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"written_at": datetime.now(UTC).isoformat(), "scenarios": MEASURED}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    terminalreporter.write_line("")
    terminalreporter.write_line(f"failover: {len(MEASURED)} scenarios (results in {path})")
    for name, numbers in MEASURED.items():
        terminalreporter.write_line(f"  {name}: {json.dumps(numbers)}")


@pytest.fixture(scope="module")
def failover_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The suite's own stack: two room and two notification instances, the rest one each."""
    with running_stack(
        tmp_path_factory.mktemp("failover-stack"), FAILOVER_ENV, timeout=240, instances=INSTANCES
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def world(failover_stack: Stack) -> Iterator[World]:
    w = World(failover_stack)
    yield w
    w.close()
