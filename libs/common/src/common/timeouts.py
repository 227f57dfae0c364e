"""The cascade of timeouts: every layer waits longer than the layers it waits for.

    client > gateway budget > gateway → service attempt > service budget
           > service → dependency attempt > dependency's DB lock wait

Why the order matters: the inner layer must give up first, so that the layer above gets its
answer (a 503/504 problem with ``Retry-After``) while it is still listening. Reverse two of them
and the outer layer gives up while the inner one keeps working: the user sees a 503 and the
booking happens anyway (issue 7: "504 but booked", a sign-up 201 after the gateway's 503).

Each value is a setting of the service that waits (``GATEWAY_AUTH_TIMEOUT_S``,
``ROOM_MEMBER_TIMEOUT_S``, ``INVENTORY_DB_LOCK_TIMEOUT_S``...). ``chains`` reads them from the
settings of every service into one table (docs/patterns/resilient-http.md#timeouts shows it);
``tests/contracts/test_timeouts.py`` fails when an order breaks or the page's table drifts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common.settings import ServiceSettings

# What a client of the public API should be prepared to wait (the system suites' clients do):
# above the gateway's budget, so a client always gets the gateway's answer, never its own timeout.
CLIENT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Wait:
    """One layer's patience: who waits, the setting that says how long, and its value."""

    layer: str
    setting: str
    seconds: float


@dataclass(frozen=True)
class Chain:
    """The waits one request path goes through, outermost first."""

    path: str
    waits: tuple[Wait, ...]

    def violations(self) -> list[str]:
        """Each pair of neighbours where the outer layer does not wait strictly longer."""
        return [
            f"{self.path}: {outer.setting}={outer.seconds:g} s "
            f"must exceed {inner.setting}={inner.seconds:g} s"
            for outer, inner in zip(self.waits, self.waits[1:], strict=False)
            if outer.seconds <= inner.seconds
        ]


def _setting(settings: ServiceSettings, field: str) -> str:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def _request(settings: ServiceSettings) -> Wait:
    return Wait(
        f"{settings.service_name} budget", _setting(settings, "request_timeout_s"), settings.request_timeout_s
    )


def _attempt(caller: ServiceSettings, upstream: str) -> Wait:
    field = (
        f"{upstream}_timeout_s"
        if f"{upstream}_timeout_s" in type(caller).model_fields
        else "upstream_timeout_s"
    )
    return Wait(
        f"{caller.service_name} → {upstream}", _setting(caller, field), caller.upstream_timeout(upstream)
    )


def _db(settings: ServiceSettings) -> Wait:
    return Wait(
        f"{settings.service_name} DB", _setting(settings, "db_lock_timeout_s"), settings.db_lock_timeout_s
    )


def chains(edge: ServiceSettings, services: Mapping[str, ServiceSettings]) -> list[Chain]:
    """Every path a public request takes, from the client through ``edge`` down to a database.

    ``services`` holds the settings of every service by name; who calls whom comes from their
    ``upstream_urls()``. A dependency's own budget is not in its chain: its caller's deadline
    (``X-Deadline-Ms``/``X-Deadline-At``) is what bounds it there.
    """
    client = Wait("client", "(the API's clients)", CLIENT_TIMEOUT_S)
    top = (client, _request(edge))
    found = [Chain(edge.service_name, (*top, _db(edge)))]
    for name in edge.upstream_urls():
        service = services[name]
        via = (*top, _attempt(edge, name), _request(service))
        found.append(Chain(f"{edge.service_name} → {name}", (*via, _db(service))))
        for dependency in service.upstream_urls():
            found.append(
                Chain(
                    f"{edge.service_name} → {name} → {dependency}",
                    (*via, _attempt(service, dependency), _db(services[dependency])),
                )
            )
    return found


def markdown_table(found: list[Chain]) -> str:
    """The chains as one Markdown table: a row per path, a column per layer."""
    columns = [
        "client",
        "gateway budget",
        "gateway → service",
        "service budget",
        "service → dependency",
        "DB lock wait",
    ]
    lines = ["| path | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for chain in found:
        cells = [f"{w.seconds:g} s" for w in chain.waits]
        if len(cells) == 3:  # the edge's own database
            cells = [cells[0], cells[1], "", "", "", cells[2]]
        elif len(cells) == 5:  # a service's own database
            cells = [*cells[:4], "", cells[4]]
        lines.append(f"| {chain.path} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
