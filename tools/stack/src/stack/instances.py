"""Several instances of a service: ``stack up --instances room=2,notification=2``.

The n-th instance of a service is a process of its own, named ``<service>-<n>`` (``room-2``;
the first keeps the plain name, so ``stack logs room`` and every test that knows one instance
still work), on ports ``INSTANCE_PORT_STEP`` apart: room on 8003 (management 9003), room-2 on
8013 (9013), room-3 on 8023. Every instance of a service uses the same database (on SQLite the
same file; SQLite serialises writers, fine for a demo, not for load) and the same consumer
groups, so Kafka shares the partitions among them. Every caller gets all instances in its
``<NAME>_URL`` setting, comma-separated (``common.http.discovery``), and balances over them.

Only the first instance migrates and seeds (the others start once it has), and on SQLite only
the first runs the outbox relay (``outbox_relay``: one publisher per SQLite outbox).
"""

from __future__ import annotations

from collections.abc import Mapping

from stack.services import INSTANCE_PORT_STEP, SERVICE_NAMES

__all__ = [
    "INSTANCE_PORT_STEP",
    "MAX_INSTANCES",
    "instance_env",
    "instance_name",
    "parse_instances",
    "split_name",
]

# Nine keeps every main port (base + 0..85) below the management ports (base + 1000 + ...) and
# clear of Kafka's default 9092 next to them (9000 + 85).
MAX_INSTANCES = 9


def instance_name(service: str, n: int) -> str:
    """``room`` for the first instance, ``room-2`` for the second."""
    return service if n == 1 else f"{service}-{n}"


def split_name(name: str) -> tuple[str, int]:
    """``room-2`` → ``("room", 2)``, ``room`` → ``("room", 1)``; other names unchanged, 1."""
    service, sep, number = name.rpartition("-")
    if sep and service in SERVICE_NAMES and number.isdigit() and int(number) >= 2:
        return service, int(number)
    return name, 1


def parse_instances(value: str) -> dict[str, int]:
    """``room=2,inventory=2`` → ``{"room": 2, "inventory": 2}``; ``ValueError`` says what is wrong."""
    counts: dict[str, int] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        service, sep, number = entry.partition("=")
        service = service.strip()
        if not sep or service not in SERVICE_NAMES:
            known = ", ".join(SERVICE_NAMES)
            raise ValueError(f"{entry!r}: expected <service>=<count>, the service one of {known}")
        try:
            n = int(number)
        except ValueError:
            raise ValueError(f"{entry!r}: the count is not a whole number") from None
        if not 1 <= n <= MAX_INSTANCES:
            raise ValueError(f"{entry!r}: between 1 and {MAX_INSTANCES} instances")
        counts[service] = n
    return counts


def instance_env(service: str, n: int, env: Mapping[str, str]) -> dict[str, str]:
    """What instance ``n`` runs with beyond its service's environment ``env`` (ports aside).

    On SQLite only the first instance relays the outbox: two relays on one SQLite file could
    publish a row twice (PostgreSQL's ``FOR UPDATE SKIP LOCKED`` is what makes several safe).
    """
    prefix = f"{service.upper()}_"
    extra: dict[str, str] = {}
    database = env.get(f"{prefix}DATABASE_URL", "")
    if n > 1 and not database.startswith("postgresql") and f"{prefix}OUTBOX_RELAY" not in env:
        extra[f"{prefix}OUTBOX_RELAY"] = "false"
    return extra
