"""Readiness checks: small async callables reporting one dependency each.

``/health/live`` only says the process answers; ``/health/ready`` runs every check and
answers 503 with details when a *critical* one fails, so a load balancer stops sending traffic
while the process stays alive. Critical means "this service can't answer its API without it":
the database. Kafka is informational: the outbox absorbs an outage (requests still succeed and
their events wait), so a service that drops out of the load balancer while Kafka is down would
fail exactly the requests that work. Informational checks (Kafka, breaker states, outbox
backlog and age, consumers) are reported but never make the service unready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, select

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


def kafka_check(bootstrap_servers: str, *, critical: bool = False) -> ReadinessCheck:
    """Kafka is reachable when any bootstrap server accepts a TCP connection.

    Informational by default: every service here publishes through its outbox and consumes in
    the background, so its API answers without Kafka.
    """

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

    return ReadinessCheck("kafka", run, critical=critical)


def outbox_status(db: Database, outbox: Table) -> dict[str, Any]:
    """How many outbox rows wait for Kafka and how long the oldest has waited (seconds)."""
    with db.read() as session:
        count, oldest = session.execute(
            select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.published_at.is_(None))
        ).one()
    if oldest is not None and oldest.tzinfo is None:  # SQLite returns naive UTC
        oldest = oldest.replace(tzinfo=UTC)
    age = round((datetime.now(UTC) - oldest).total_seconds(), 3) if oldest is not None else None
    return {"backlog": int(count or 0), "oldest_unsent_age_s": age}


def info_check(name: str, read: Callable[[], Any]) -> ReadinessCheck:
    """A non-critical check that just reports a value (breaker states, outbox backlog)."""

    async def run() -> CheckResult:
        # In a thread: some reads query the database (the outbox backlog), never on the loop.
        return CheckResult(True, await asyncio.to_thread(read))

    return ReadinessCheck(name, run, critical=False)
