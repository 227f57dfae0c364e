"""The Prometheus config and rules in deploy/prometheus are valid, and every alert's unit tests
(one case that fires it, one that does not) pass: promtool, from Debian's prometheus package."""

from __future__ import annotations

import subprocess

import yaml

from stack.services import SERVICES

from .prometheus import CONFIG, PROMETHEUS_DIR, RULE_FILES, RULE_TESTS, tool


def promtool(*args: str) -> str:
    done = subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS_DIR
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_rules_are_valid() -> None:
    assert RULE_FILES, "no rule files in deploy/prometheus/rules"
    promtool("check", "rules", *map(str, RULE_FILES))


def test_config_is_valid() -> None:
    promtool("check", "config", str(CONFIG))


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    out = promtool("test", "rules", *map(str, RULE_TESTS))
    assert "SUCCESS" in out, out
    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fired == alerts, f"alerts no test fires: {sorted(alerts - fired)}"
    assert quiet == alerts, f"alerts no test keeps quiet: {sorted(alerts - quiet)}"


def test_the_scrape_config_matches_the_stacks_management_ports() -> None:
    """`make up`'s ports: base 8000, management +1000 (tools/stack/src/stack/services.py)."""
    [job] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["scrape_configs"]
    scraped = {t["labels"]["service"]: t["targets"] for t in job["static_configs"]}
    assert job["metrics_path"] == "/metrics"
    assert scraped == {s.name: [f"127.0.0.1:{s.management_port(8000)}"] for s in SERVICES}


def test_docs_slo_lists_every_alert_with_its_expression_and_every_recording_rule() -> None:
    doc = (PROMETHEUS_DIR.parents[1] / "docs" / "slo.md").read_text(encoding="utf-8")
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    assert f"`{rule['record']}`" in doc, f"docs/slo.md lacks recording rule {rule['record']}"
                    continue
                expr, hold = " ".join(rule["expr"].split()), rule.get("for", "—")
                row = f"| `{rule['alert']}` | {rule['labels']['severity']} | `{expr}` | {hold} |"
                assert row in doc, f"docs/slo.md's alert table lacks or differs for:\n{row}"
