"""Reads one instance's ``/health/ready`` and ``/metrics`` for the ops console, each call bounded.

An instance that does not answer in time is reported as down, never waited for: one frozen
service must not hang the console. ``/metrics`` is on the management port, which by the
platform's rule (``common.settings``) is the main port + 1000 unless a deployment sets it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

PROBE_TIMEOUT_S = 1.5
MANAGEMENT_PORT_OFFSET = 1000
# The metric names the console shows; absent ones (another version, not exported yet) are "—".
WANTED_METRICS = frozenset(
    {
        "circuit_breaker_state",
        "circuit_breaker_transitions_total",
        "upstream_retries_total",
        "bulkhead_in_use",
        "bulkhead_capacity",
        "outbox_backlog",
        "outbox_oldest_unsent_age_seconds",
        "consumer_lag",
        "dead_letter_queue_size",
    }
)


@dataclass(frozen=True)
class Target:
    """One instance as the gateway's balancer names it: the URL, and the Host to send."""

    url: str
    host: str | None = None

    @classmethod
    def from_name(cls, name: str) -> Target:
        """Parse ``common.http.discovery.Endpoint.name``: ``url`` or ``url (host)``."""
        url, _, rest = name.partition(" (")
        return cls(url, rest.rstrip(")") or None)

    @property
    def management_url(self) -> str:
        parts = urlsplit(self.url)
        port = (parts.port or 80) + MANAGEMENT_PORT_OFFSET
        return urlunsplit((parts.scheme, f"{parts.hostname}:{port}", "", "", ""))

    def headers(self, management: bool = False) -> dict[str, str]:
        if self.host is None:
            return {}
        if not management:
            return {"Host": self.host}
        name, _, port = self.host.rpartition(":")
        return {"Host": f"{name}:{int(port) + MANAGEMENT_PORT_OFFSET}" if port.isdigit() else self.host}


def parse_metrics(text: str) -> list[dict[str, Any]]:
    """The samples of ``WANTED_METRICS`` in a Prometheus text exposition."""
    samples: list[dict[str, Any]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in WANTED_METRICS:
                samples.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value})
    return samples


class Probe:
    """A small HTTP client of its own: probes never queue behind the proxy's traffic."""

    def __init__(self, timeout_s: float = PROBE_TIMEOUT_S, transport: httpx.AsyncBaseTransport | None = None):
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ready(self, target: Target) -> dict[str, Any]:
        """``{"up": True, "status": ..., "checks": {...}}`` or ``{"up": False, "error": ...}``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._http.get(target.url + "/health/ready", headers=target.headers())
            body = response.json()
        except (httpx.HTTPError, TimeoutError, ValueError) as exc:
            return {"up": False, "error": _describe(exc)}
        checks = body.get("checks", {}) if isinstance(body, dict) else {}
        return {
            "up": True,
            "status": body.get("status") if isinstance(body, dict) else None,
            "checks": checks,
        }

    async def metrics(self, target: Target) -> list[dict[str, Any]] | None:
        """The wanted samples of the instance's ``/metrics``; None if it could not be read."""
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._http.get(
                    target.management_url + "/metrics", headers=target.headers(management=True)
                )
            response.raise_for_status()
            return parse_metrics(response.text)
        except (httpx.HTTPError, TimeoutError, ValueError):
            return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
