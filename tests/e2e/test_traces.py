"""Traces in a real Zipkin: one reservation is one trace across HTTP, Kafka and SMTP; an open breaker shows.

The session stack runs Zipkin (``running_stack(zipkin=True)``) and every service exports its
spans to it in batches, so each check polls Zipkin's API with a generous deadline.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx

from stack.runner import Stack

from .conftest import Stays, User, eventually

# Spans are batched (BatchSpanProcessor: every 5 s) and the machine is loaded: be generous.
EXPORT_DEADLINE_S = 90.0


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _trace(stack: Stack, trace_id: str) -> list[dict[str, Any]]:
    assert stack.zipkin is not None, "the session stack runs Zipkin (tests/conftest.py)"
    response = httpx.get(f"{stack.zipkin.url.removesuffix('/zipkin/')}/api/v2/trace/{trace_id}", timeout=5)
    return response.json() if response.status_code == 200 else []


def _spans(spans: list[dict[str, Any]], kind: str) -> set[str]:
    """``service: span name`` of the spans of ``kind`` (SERVER, CLIENT, PRODUCER, CONSUMER)."""
    return {
        f"{s['localEndpoint']['serviceName']}: {s.get('name', '')}" for s in spans if s.get("kind") == kind
    }


def _nearest_kind(by_id: dict[str, dict[str, Any]], span: dict[str, Any]) -> str | None:
    """The kind of ``span``'s nearest ancestor that has one (INTERNAL spans, e.g. a database
    transaction's, carry none in Zipkin's JSON)."""
    parent = by_id.get(span.get("parentId", ""))
    while parent is not None and "kind" not in parent:
        parent = by_id.get(parent.get("parentId", ""))
    return None if parent is None else str(parent["kind"])


def _services(spans: list[dict[str, Any]], kind: str) -> set[str]:
    return {s["localEndpoint"]["serviceName"] for s in spans if s.get("kind") == kind}


def test_one_reservation_is_one_trace_from_the_gateway_through_kafka_to_every_consumer(
    client: httpx.Client, stack: Stack, new_member: Callable[..., User], stays: Stays
) -> None:
    user = new_member("traced")
    check_in, check_out = stays.take(1)
    trace_id, traceparent = _traceparent()

    created = client.post(
        "/api/v1/reservations",
        headers={**user.headers(), "traceparent": traceparent},
        json={"room_id": "r101", "check_in": check_in, "check_out": check_out},
    )
    assert created.status_code == 201, created.text

    def complete() -> list[dict[str, Any]] | None:
        spans = _trace(stack, trace_id)
        servers, consumers = _services(spans, "SERVER"), _services(spans, "CONSUMER")
        whole = (
            {"gateway", "room", "member", "inventory"} <= servers
            and {
                "inventory",
                "member",
                "notification",
            }
            <= consumers
            and "notification: smtp send" in _spans(spans, "CLIENT")
        )
        return spans if whole else None

    spans = eventually(complete, f"trace {trace_id} in Zipkin", within=EXPORT_DEADLINE_S, interval=1.0)
    assert {s["traceId"] for s in spans} == {trace_id}  # ONE trace
    assert "gateway: post /api/v1/reservations" in _spans(spans, "SERVER")
    # Named after the route template, not the path: one span name for every member.
    assert "member: get /internal/members/{member_id}" in _spans(spans, "SERVER")
    assert {"gateway", "room"} <= _services(spans, "CLIENT")  # httpx: a span per attempt
    producers = [s for s in spans if s.get("kind") == "PRODUCER"]
    assert producers, "no Kafka produce span"
    assert all(s["localEndpoint"]["serviceName"] == "room" for s in producers)
    by_id = {s["id"]: s for s in spans}
    # Each consumer's processing span is a child of a produce span (via the Kafka headers).
    for consumer in (s for s in spans if s.get("kind") == "CONSUMER"):
        assert by_id[consumer["parentId"]]["kind"] == "PRODUCER", consumer
    # The SMTP send continues notification's processing span (the mail row keeps its traceparent).
    # Each database transaction of the request and of the consumers is a span of the trace.
    stored = {s["localEndpoint"]["serviceName"] for s in spans if s.get("name") == "db transaction"}
    assert {"room", "inventory", "member", "notification"} <= stored, stored
    [smtp] = [s for s in spans if s.get("name") == "smtp send"]
    assert _nearest_kind(by_id, smtp) == "CONSUMER"
    # The produce span continues the request that wrote the outbox row (room's server span).
    for producer in producers:
        parent = by_id[producer["parentId"]]
        assert parent["localEndpoint"]["serviceName"] == "room", parent
    print("\nspans of one reservation:")
    for s in sorted(spans, key=lambda s: s["timestamp"]):
        print(f"  {s['localEndpoint']['serviceName']:>12} {s.get('kind', 'INTERNAL'):>8} {s.get('name', '')}")


def test_a_call_refused_by_an_open_breaker_shows_it_on_its_span(
    client: httpx.Client, stack: Stack, new_member: Callable[..., User]
) -> None:
    user = new_member("breaker-traced")
    traces: list[str] = []
    stack.stop_service("member")
    try:
        for _ in range(15):  # the breaker opens after 10 failed calls in its window
            trace_id, traceparent = _traceparent()
            traces.append(trace_id)
            refused = client.get("/api/v1/members/me", headers={**user.auth, "traceparent": traceparent})
            assert refused.status_code == 503, refused.text
    finally:
        stack.start_service("member", migrate=False)

    def refused_by_the_breaker() -> dict[str, Any] | None:
        for trace_id in reversed(traces):
            for span in _trace(stack, trace_id):
                if any("breaker open" in a.get("value", "") for a in span.get("annotations", [])):
                    return span
        return None

    span = eventually(
        refused_by_the_breaker, "a span with a breaker-open event", within=EXPORT_DEADLINE_S, interval=1.0
    )
    assert span["localEndpoint"]["serviceName"] == "gateway"
    assert span["kind"] == "SERVER"
    event = next(a["value"] for a in span["annotations"] if "breaker open" in a["value"])
    assert "member" in event, event  # the event names the upstream
    # Restored: member answers through the gateway again (its breaker lets calls through).
    eventually(
        lambda: client.get("/api/v1/members/me", headers=user.auth).status_code == 200,
        "member back through the gateway",
        within=30,
        interval=0.5,
    )
