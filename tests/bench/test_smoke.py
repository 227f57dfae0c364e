"""``make bench``'s smoke mode: every figure runs for a few seconds, so the benchmark never rots.

It runs on the session's stack (``tests/conftest.py``), writes its results to a temp folder and
checks what they say about behaviour, never about speed: each figure measured something, the
answers were the expected ones (the open breaker's were 503s), and the table and plots exist.
The stack is left as it was found (member is stopped for the breaker figure, then started).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import measure
from bench.figures import FIGURES
from stack.runner import Stack
from tests.conftest import STACK_TEST_TIMEOUT_S

pytestmark = pytest.mark.timeout(STACK_TEST_TIMEOUT_S + 300)


def test_every_figure_measures_and_the_results_file_table_and_plots_are_written(
    stack: Stack, tmp_path: Path
) -> None:
    results = measure(stack, smoke=True, db="sqlite", say=lambda line: None)
    paths = report.write(results, tmp_path, "smoke")

    assert results["errors"] == {}
    figures = results["figures"]
    assert set(figures) == set(FIGURES)
    for target in ("gateway", "room", "fastapi", "starlette"):
        fixed = figures["hop"][target]["open_20rps"]
        assert fixed["requests"] > 0, (target, fixed)
        assert fixed["statuses"] == {"200": fixed["requests"]}, (target, fixed)
        assert all(ms > 0 for ms in figures["hop"][target]["cpu_ms_per_request"].values()), target
    for via in ("gateway", "room"):
        rejected = figures["open_breaker"][via]
        assert set(rejected["statuses"]) == {"503"}, (via, rejected)
    for level in ("c1", "c4"):
        assert figures["reservations"][level]["statuses"].get("201", 0) > 0, figures["reservations"][level]
    assert figures["booked_after_201"]["applied"]["requests"] == 5
    assert figures["booked_after_201"]["raw_kafka_produce_consume"]["requests"] == 5
    assert figures["signup_login"]["signup"]["statuses"] == {"201": 2}
    assert set(figures["idle"]["cpu_percent_of_one_core"]) >= {"gateway", "room", "kafka"}

    written = json.loads((tmp_path / "smoke.json").read_text())
    assert written["meta"]["mode"] == "smoke"
    table = (tmp_path / "smoke.md").read_text()
    assert "| open-breaker 503 p50/p99 |" in table
    assert "| reserve + cancel cycles, c4 |" in table
    assert {p.name for p in paths} >= {"smoke-hop.png", "smoke-reservations.png"}
    # The stack is whole again for the suites after this one.
    assert stack.readiness()["member"].ready
