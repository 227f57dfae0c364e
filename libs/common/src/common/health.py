"""Readiness checks: small async callables reporting one dependency each.

``/health/live`` only says the process answers; ``/health/ready`` runs every check and
answers 503 with details when a *critical* one fails (DB down, Kafka unreachable), so a load
balancer stops sending traffic while the process stays alive. Informational checks (breaker
states, outbox backlog) are reported but never make the service unready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.db import Database

CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: Any = None


@dataclass(frozen=True)
class ReadinessCheck:
    name: str
    run: Callable[[], Awaitable[CheckResult]]
    critical: bool = True


@dataclass
class ReadinessReport:
    ready: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


async def run_checks(checks: Sequence[ReadinessCheck]) -> ReadinessReport:
    """Run all checks concurrently, each bounded by a timeout."""

    async def one(check: ReadinessCheck) -> CheckResult:
        try:
            return await asyncio.wait_for(check.run(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return CheckResult(False, "timed out")
        except Exception as exc:  # a failing check is a result, not a crash
            return CheckResult(False, f"{type(exc).__name__}: {exc}")

    results = await asyncio.gather(*(one(c) for c in checks))
    report = ReadinessReport(ready=True)
    for check, result in zip(checks, results, strict=True):
        report.checks[check.name] = {"ok": result.ok, "critical": check.critical, "detail": result.detail}
        if check.critical and not result.ok:
            report.ready = False
    return report


def database_check(db: Database) -> ReadinessCheck:
    async def run() -> CheckResult:
        await asyncio.to_thread(db.ping)
        return CheckResult(True, db.engine.dialect.name)

    return ReadinessCheck("database", run)


def kafka_check(bootstrap_servers: str) -> ReadinessCheck:
    """Kafka is reachable when any bootstrap server accepts a TCP connection."""

    async def run() -> CheckResult:
        errors = []
        for server in bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
            except (OSError, TimeoutError, ValueError) as exc:
                errors.append(f"{server}: {type(exc).__name__}")
                continue
            writer.close()
            return CheckResult(True, server)
        return CheckResult(False, "; ".join(errors))

    return ReadinessCheck("kafka", run)


def info_check(name: str, read: Callable[[], Any]) -> ReadinessCheck:
    """A non-critical check that just reports a value (breaker states, outbox backlog)."""

    async def run() -> CheckResult:
        # In a thread: some reads query the database (the outbox backlog), never on the loop.
        return CheckResult(True, await asyncio.to_thread(read))

    return ReadinessCheck(name, run, critical=False)
