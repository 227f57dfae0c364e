"""A real Prometheus (Debian's package, tools/prometheus/install.sh) for the tests.

Started on a free port with a temporary config and data directory, never the packaged service.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from stack.ports import free_port_block

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
INSTALL_HINT = "install it with: bash tools/prometheus/install.sh (Debian's prometheus package)"


def tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; a clear failure when it is not installed."""
    path = shutil.which(name)
    assert path is not None, f"{name} is not on PATH; {INSTALL_HINT}"
    return path


def stack_config(ports: Mapping[str, int], rule_dir: Path, interval: str = "1s") -> dict[str, Any]:
    """The repo's prometheus.yml, pointed at ``ports`` (service → management port), with
    ``interval`` scrapes and evaluations and the rules of ``rule_dir``."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(rule_dir / "*.yml")]
    [job] = config["scrape_configs"]
    seen = set()
    for target in job["static_configs"]:
        name = target["labels"]["service"]
        target["targets"] = [f"127.0.0.1:{ports[name]}"]
        seen.add(name)
    assert seen == set(ports), f"prometheus.yml scrapes {sorted(seen)}, the stack runs {sorted(ports)}"
    return config


def copy_rules(into: Path, hold: str | None = None) -> Path:
    """The repo's rule files, unchanged, or with every ``for:`` set to ``hold``."""
    into.mkdir(parents=True, exist_ok=True)
    for path in RULE_FILES:
        rules = yaml.safe_load(path.read_text(encoding="utf-8"))
        if hold is not None:
            for group in rules["groups"]:
                for rule in group["rules"]:
                    if "for" in rule:
                        rule["for"] = hold
        (into / path.name).write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return into


class Prometheus:
    """A running Prometheus and the bits of its HTTP API the tests read."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10.0)

    def api(self, path: str, **params: str) -> Any:
        response = self.http.get(f"/api/v1/{path}", params=params)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self, name: str, state: str = "firing", **labels: str) -> list[dict[str, Any]]:
        """The alerts called ``name`` in ``state`` whose labels include ``labels``."""
        return [
            alert
            for alert in self.api("alerts")["alerts"]
            if alert["labels"].get("alertname") == name
            and alert["state"] == state
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]

    def targets_health(self) -> dict[str, str]:
        """service → "up" | "down" | "unknown" for every active target."""
        return {t["labels"]["service"]: t["health"] for t in self.api("targets")["activeTargets"]}


@contextmanager
def running_prometheus(
    workdir: Path, config: Mapping[str, Any], log: Callable[[str], None]
) -> Iterator[Prometheus]:
    """Start Prometheus on a free port with ``config``; stop it (and wait) on exit."""
    binary = tool("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    port = free_port_block(1)
    output = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    prometheus = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"prometheus exited: {(workdir / 'prometheus.log').read_text()}"
            try:
                if prometheus.http.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "prometheus not ready within 60 s"
            time.sleep(0.2)
        log(f"prometheus at {prometheus.url} (log: {workdir / 'prometheus.log'})")
        yield prometheus
    finally:
        prometheus.http.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        output.close()
