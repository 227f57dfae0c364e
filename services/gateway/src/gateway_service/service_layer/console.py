"""The ops console's picture of the system: every service and instance, asked at once, each bounded.

Per service: the gateway's view of it (its breaker, calls in flight, each instance's balancer
state), each instance's readiness details and metrics, and its fault switches. Beside them the
dead letters of every topic and the gateway's recent requests. A part that can't be had in
time is reported (``up: False``, ``error``), never waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from prometheus_client import generate_latest

from common.context import Deadline, deadline_var
from common.errors import DeadlineExceeded, UpstreamUnavailable
from common.faults import Switchboard
from common.http import ServiceClient
from gateway_service.adapters.dead_letters import DeadLetterBoard
from gateway_service.adapters.probe import Probe, Target, parse_metrics
from gateway_service.adapters.recent import RecentRequests
from gateway_service.domain.routes import UPSTREAMS

GATEWAY = "gateway"


def summarize(samples: list[dict[str, Any]] | None, service: str) -> dict[str, Any] | None:
    """The console's numbers from one instance's samples (None: /metrics could not be read).

    A metric this version does not export is left out; the page shows "—" for it.
    """
    if samples is None:
        return None
    own = [s for s in samples if s["labels"].get("service", service) == service]
    summary: dict[str, Any] = {}

    def per(name: str, label: str) -> dict[str, float]:
        values: dict[str, float] = {}
        for s in own:
            if s["name"] == name:
                key = s["labels"].get(label, "")
                values[key] = values.get(key, 0.0) + s["value"]
        return values

    for name, label, key in (
        ("bulkhead_in_use", "upstream", "bulkhead_in_use"),
        ("bulkhead_capacity", "upstream", "bulkhead_capacity"),
        ("circuit_breaker_transitions_total", "upstream", "breaker_transitions"),
        ("upstream_retries_total", "upstream", "retries"),
        ("consumer_lag", "consumer", "consumer_lag"),
        ("dead_letter_queue_size", "consumer", "dead_letter_queue_size"),
    ):
        if any(s["name"] == name for s in own):
            summary[key] = per(name, label)
    for name in ("outbox_backlog", "outbox_oldest_unsent_age_seconds"):
        values = [s["value"] for s in own if s["name"] == name]
        if values:
            summary[name] = max(values)
    return summary


async def _instance(probe: Probe, service: str, name: str, balancer_state: str) -> dict[str, Any]:
    target = Target.from_name(name)
    ready, samples = await asyncio.gather(probe.ready(target), probe.metrics(target))
    return {"name": name, "balancer": balancer_state, **ready, "metrics": summarize(samples, service)}


async def _faults(client: ServiceClient, budget_s: float) -> dict[str, Any]:
    token = deadline_var.set(Deadline.after(budget_s))  # travels as X-Deadline-Ms, stops the client
    try:
        async with asyncio.timeout(budget_s + 0.5):
            response = await client.get("/admin/faults", headers={"Accept": "application/json"})
        if response.status_code != 200:
            return {"error": f"answered {response.status_code}"}
        return {"faults": response.json().get("faults", [])}
    except (UpstreamUnavailable, DeadlineExceeded) as problem:
        return {"error": problem.detail}
    except (TimeoutError, ValueError) as exc:
        return {"error": type(exc).__name__}
    finally:
        deadline_var.reset(token)


async def _service(name: str, client: ServiceClient, probe: Probe) -> dict[str, Any]:
    state = client.state
    instances = asyncio.gather(*(_instance(probe, name, n, s) for n, s in state.instances.items()))
    listed, faults = await asyncio.gather(instances, _faults(client, probe.timeout_s))
    return {
        "name": name,
        "gateway_view": {"breaker": state.breaker, "in_flight": state.in_flight},
        "instances": listed,
        **faults,
    }


def _gateway(clients: Mapping[str, ServiceClient], faults: Switchboard) -> dict[str, Any]:
    """The gateway itself, read in process: it answers this very request, so it is up."""
    checks = {
        "breakers": {"ok": True, "detail": {n: c.state.breaker for n, c in clients.items()}},
        "in_flight": {"ok": True, "detail": {n: c.state.in_flight for n, c in clients.items()}},
    }
    samples = parse_metrics(generate_latest().decode())
    instance = {
        "name": "this instance",
        "balancer": "-",
        "up": True,
        "status": "ready",
        "checks": checks,
        "metrics": summarize(samples, GATEWAY),
    }
    return {
        "name": GATEWAY,
        "gateway_view": None,
        "instances": [instance],
        "faults": [f.model_dump(mode="json") for f in faults.list()],
    }


async def console_state(
    clients: Mapping[str, ServiceClient],
    faults: Switchboard,
    probe: Probe,
    dead_letters: DeadLetterBoard,
    recent: RecentRequests,
    trace_links_base: str,
) -> dict[str, Any]:
    """Everything the console page shows, in one document."""
    services, letters = await asyncio.gather(
        asyncio.gather(*(_service(name, clients[name], probe) for name in UPSTREAMS if name in clients)),
        dead_letters.snapshot(),
    )
    base = trace_links_base.rstrip("/")
    requests = [
        {**r, "trace_url": f"{base}/zipkin/traces/{r['trace_id']}" if base and r["trace_id"] else None}
        for r in recent.newest_first()
    ]
    return {
        "services": [_gateway(clients, faults), *services],
        "dead_letters": letters,
        "recent_requests": requests,
    }
