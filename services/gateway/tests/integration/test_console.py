"""The ops console: its page is public, its JSON is for admins, and a frozen service can't hang it."""

from __future__ import annotations

import time

import httpx
import pytest

from common.testing.tokens import TestUsers
from gateway_service.adapters.probe import Target, parse_metrics
from gateway_service.service_layer.console import summarize

from .conftest import GatewayFactory, Stub

STATE = "/api/v1/admin/console/state"
REDRIVE = "/api/v1/admin/console/dead-letters/redrive"
ROOM_READY = {
    "status": "ready",
    "checks": {
        "breakers": {"ok": True, "critical": False, "detail": {"member": "open", "inventory": "closed"}}
    },
}


@pytest.mark.parametrize(("method", "path"), [("GET", STATE), ("POST", REDRIVE)])
@pytest.mark.parametrize("who", ["anonymous", "member"])
async def test_nobody_but_an_admin_reads_the_console(
    client: httpx.AsyncClient, users: TestUsers, who: str, method: str, path: str
) -> None:
    headers = users.headers("u1") if who == "member" else {}
    response = await client.request(method, path, headers=headers, json={"topic": "room.reservations.dlq"})
    assert response.status_code == (403 if who == "member" else 401)
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_page_and_its_assets_are_served_with_a_policy_that_allows_only_them(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/console/console.js"' in page.text
    script = await client.get("/console/console.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/console/console.css")).status_code == 200
    assert (await client.get("/console/nothing.js")).status_code == 404


async def test_the_state_shows_each_instance_and_a_frozen_one_as_down_within_the_probe_timeout(
    gateway_with: GatewayFactory, users: TestUsers, upstreams: dict[str, Stub], closed_port: int
) -> None:
    upstreams["room"].answer("GET", "/health/ready", (200, ROOM_READY))
    upstreams["room"].answer("GET", "/admin/faults", (200, {"faults": [{"name": "slow", "kind": "latency"}]}))
    upstreams["member"].slow("GET", "/health/ready")
    upstreams["member"].slow("GET", "/admin/faults")
    async with (
        gateway_with(
            kafka_bootstrap_servers=f"127.0.0.1:{closed_port}", trace_links_base="http://t:9411"
        ) as gw,
        gw.client() as client,
    ):
        admin = users.headers("a1", admin=True)
        await client.get("/api/v1/rooms")  # a request to remember
        began = time.monotonic()
        response = await client.get(STATE, headers=admin)
        took = time.monotonic() - began
    assert response.status_code == 200, response.text
    assert took < 8, f"the console waited {took:.1f} s for a frozen service"
    body = response.json()
    services = {s["name"]: s for s in body["services"]}
    assert list(services) == ["gateway", "auth", "member", "room", "inventory", "notification"]
    room = services["room"]
    assert room["gateway_view"]["breaker"] == "closed"
    [instance] = room["instances"]
    assert instance["up"] is True
    assert instance["checks"]["breakers"]["detail"]["member"] == "open"
    assert instance["metrics"] is None  # nothing serves its management port here
    assert room["faults"] == [{"name": "slow", "kind": "latency"}]
    member = services["member"]
    assert member["instances"][0]["up"] is False
    assert member["instances"][0]["error"] == "no answer in time"
    assert "error" in member
    assert body["dead_letters"]["error"]  # Kafka can't be reached: said, not raised
    [recent] = [r for r in body["recent_requests"] if r["path"] == "/api/v1/rooms"]
    assert recent["trace_id"]
    assert recent["trace_url"] == f"http://t:9411/zipkin/traces/{recent['trace_id']}"
    assert not any(r["path"].startswith("/api/v1/admin/console") for r in body["recent_requests"])


async def test_a_redrive_of_an_unknown_topic_is_a_404_problem(
    client: httpx.AsyncClient, users: TestUsers
) -> None:
    response = await client.post(REDRIVE, headers=users.headers("a1", admin=True), json={"topic": "nope.dlq"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_metrics_are_summarized_per_upstream_and_consumer_and_absent_ones_left_out() -> None:
    text = "\n".join(
        [
            "# TYPE bulkhead_in_use gauge",
            'bulkhead_in_use{service="room",upstream="member"} 3.0',
            "# TYPE bulkhead_capacity gauge",
            'bulkhead_capacity{service="room",upstream="member"} 20.0',
            "# TYPE consumer_lag gauge",
            'consumer_lag{service="room",consumer="c",topic="t",partition="0"} 2.0',
            'consumer_lag{service="room",consumer="c",topic="t",partition="1"} 5.0',
            "# TYPE outbox_backlog gauge",
            'outbox_backlog{service="room"} 4.0',
            "# TYPE http_requests_total counter",
            'http_requests_total{service="room",method="GET",route="/",status="200"} 9.0',
            "",
        ]
    )
    summary = summarize(parse_metrics(text), "room")
    assert summary == {
        "bulkhead_in_use": {"member": 3.0},
        "bulkhead_capacity": {"member": 20.0},
        "consumer_lag": {"c": 7.0},
        "outbox_backlog": 4.0,
    }


def test_an_instance_name_gives_its_urls_and_host_headers() -> None:
    plain = Target.from_name("http://127.0.0.1:8002")
    assert (plain.url, plain.host, plain.management_url) == (
        "http://127.0.0.1:8002",
        None,
        "http://127.0.0.1:9002",
    )
    named = Target.from_name("http://10.0.0.5:8002 (member:8002)")
    assert named.headers() == {"Host": "member:8002"}
    assert named.headers(management=True) == {"Host": "member:9002"}
