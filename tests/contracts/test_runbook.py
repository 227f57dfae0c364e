"""docs/runbook.md is true to the system: every alert has an entry, every entry is exercised by a
test that exists (a chaos scenario names the entries it exercises), and the metrics it tells
people to read exist under those names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import RUNBOOK, runbook_entries

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "rules" / "alerts.yml"
CHAOS = ROOT / "tests" / "chaos"


def field(text: str, name: str) -> str:
    """One ``- **Name**: …`` item of an entry, its continuation lines included."""
    match = re.search(rf"^- \*\*{name}\*\*:?(.*?)(?=^- \*\*|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"no '{name}' item"
    return match.group(1)


def chaos_runbook_names() -> dict[str, set[str]]:
    """Chaos test name → the runbook entries its ``settle_and_record(runbook=...)`` names."""
    named: dict[str, set[str]] = {}
    for path in CHAOS.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found: set[str] = set()
                for call in ast.walk(node):
                    if isinstance(call, ast.Call):
                        for kw in call.keywords:
                            if kw.arg == "runbook":
                                found |= set(ast.literal_eval(kw.value))
                named[node.name] = found
    return named


ENTRIES = runbook_entries()


def test_the_runbook_covers_every_failure_the_issue_lists() -> None:
    wanted = {
        "dependency-down-or-slow", "breaker-open", "retry-storm", "kafka-down", "consumer-lag",
        "dlq-non-empty", "outbox-growing", "auth-or-jwks-down", "token-or-key-errors",
        "database-locked-or-pool-exhausted", "disk-full-in-the-run-folder", "rate-limit-hit",
    }  # fmt: skip
    assert wanted <= set(ENTRIES)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_each_entry_says_what_to_read_and_do_and_names_a_test_that_exists(entry: str) -> None:
    text = ENTRIES[entry]
    for name in ("Alerts", "Console", "Metrics", "Logs", "Do", "Recovered when"):
        assert field(text, name).strip(), (entry, name)
    exercised = re.findall(r"`([^`]+)`", field(text, "Exercised by"))
    assert exercised, f"{entry}: no test named"
    chaos = chaos_runbook_names()
    for ref in exercised:
        if ref.startswith("test_"):
            assert ref in chaos, f"{entry}: no chaos scenario {ref}"
            assert entry in chaos[ref], f"{ref} does not name #{entry} in its runbook=(...)"
            continue
        path, _, function = ref.partition("::")
        assert (ROOT / path).exists(), f"{entry}: {path} does not exist"
        if function:
            assert f"def {function}(" in (ROOT / path).read_text(encoding="utf-8"), f"{entry}: no {ref}"


def test_every_runbook_entry_a_chaos_scenario_names_exists() -> None:
    for test, named in chaos_runbook_names().items():
        assert named <= set(ENTRIES), f"{test} names {named - set(ENTRIES)}"


def test_every_alert_is_in_the_runbook_and_links_an_entry_that_names_it() -> None:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}
    text = RUNBOOK.read_text(encoding="utf-8")
    missing = sorted(a for a in alerts if f"`{a}" not in text)
    assert not missing, f"alerts without a runbook entry: {missing}"
    for name, rule in alerts.items():
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/runbook.md", (name, page)
        assert f"`{name}" in field(ENTRIES[anchor], "Alerts"), f"{name} links #{anchor}, not naming it"


def test_the_metrics_it_names_exist() -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8")
        for base in ("libs/common/src", "services")
        for p in (ROOT / base).rglob("*.py")
        if "/tests/" not in str(p)
    )
    for entry, text in ENTRIES.items():
        for metric in re.findall(r"`([a-z_]+)(?:\{[^`]*\})?`", field(text, "Metrics")):
            if metric == "up":  # Prometheus's own, per scrape target
                continue
            base = metric.removesuffix("_total")
            assert f'"{base}' in sources, f"{entry}: no metric {metric}"
