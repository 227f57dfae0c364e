"""Shared by the contract tests: the fuzzing report (cases run per service, printed at the end)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest


@dataclass
class FuzzReport:
    """What the contract fuzzing sent and got back, per service."""

    answers: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    operations: defaultdict[str, defaultdict[str, Counter[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )

    def record(self, service: str, operation: str, status: int) -> None:
        self.answers[service][status] += 1
        self.operations[service][operation][status] += 1

    def answers_to(self, service: str) -> dict[str, Counter[int]]:
        """Statuses answered per operation of ``service``."""
        return dict(self.operations[service])

    def lines(self) -> list[str]:
        lines = []
        for service, statuses in self.answers.items():
            seen = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
            lines.append(
                f"{service:<13} {sum(statuses.values()):>5} cases, "
                f"{len(self.operations[service]):>2} operations   ({seen})"
            )
        return lines


REPORT = FuzzReport()


@pytest.fixture(scope="session")
def fuzz_report() -> FuzzReport:
    return REPORT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each schemathesis test its operation in its id (``...[room][GET /api/v1/rooms]``).

    schemathesis 4 names the item by operation, but pytest 9 builds the node id from the bare
    function name, so every operation's test had the same id (in failure summaries, ``--lf``).
    """
    for item in items:
        if type(item).__name__ == "SchemathesisFunction" and not item.nodeid.endswith("]"):
            node_id = getattr(item, "_id", None)
            if node_id is not None and item.parent is not None:
                item._id = item.parent.id.child(item.name)  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT.answers:
        terminalreporter.write_sep("-", "contract fuzzing (schemathesis): cases run per service")
        for line in REPORT.lines():
            terminalreporter.write_line(line)
