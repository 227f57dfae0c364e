"""The gateway's rate limit, in a scenario of its own: a second gateway with a low limit.

The session's gateway has a generous limit so the other tests never trip it; this one runs
another gateway process in front of the same services, then stops it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from stack.ports import free_port_block, probe
from stack.procs import ProcessHandle
from stack.runner import Stack

from .conftest import User, assert_problem

LOW_LIMIT = 5


@pytest.fixture
def strict_gateway(stack: Stack) -> Iterator[str]:
    """The URL of a second gateway allowing ``LOW_LIMIT`` requests per minute per caller."""
    port = free_port_block(2)
    env = stack.service_env("gateway") | {
        "GATEWAY_PORT": str(port),
        "GATEWAY_MANAGEMENT_PORT": str(port + 1),
        "GATEWAY_RATE_LIMIT": f"{LOW_LIMIT}/minute",
    }
    process = ProcessHandle(
        "gateway-strict",
        [sys.executable, "-m", "gateway_service", "serve"],
        log_path=stack.log_path("gateway-strict"),
        pid_path=None,
        env=env,
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not probe(url).ready:
            assert process.running, f"the second gateway exited:\n{process.tail()}"
            assert time.monotonic() < deadline, f"the second gateway is not ready:\n{process.tail()}"
            time.sleep(0.2)
        yield url
    finally:
        process.stop()


def test_rate_limit_per_user_and_per_client_ip_429_with_retry_after(
    strict_gateway: str, new_member: Callable[..., User]
) -> None:
    ann, ben = new_member("ann"), new_member("ben")
    with httpx.Client(base_url=strict_gateway, timeout=30) as client:
        answers = [client.get("/api/v1/reservations", headers=ann.auth) for _ in range(LOW_LIMIT + 1)]

        assert [a.status_code for a in answers[:LOW_LIMIT]] == [200] * LOW_LIMIT
        assert_problem(answers[-1], 429)
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
        # Per user: Ben has his own budget; anonymous callers are counted per client IP.
        assert client.get("/api/v1/reservations", headers=ben.auth).status_code == 200
        anonymous = [client.get("/api/v1/rooms") for _ in range(LOW_LIMIT + 1)]
        assert [a.status_code for a in anonymous] == [200] * LOW_LIMIT + [429]
        assert_problem(anonymous[-1], 429)


def test_the_public_api_is_documented_at_the_gateway(client: httpx.Client) -> None:
    docs = client.get("/docs")
    spec = client.get("/openapi.json")

    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/api/v1/auth/signup",
        "/api/v1/reservations",
        "/api/v1/dashboard",
        "/api/v1/licenses/activate",
    ):
        assert path in paths, sorted(paths)
    assert not [p for p in paths if p.startswith("/internal")]


def test_metrics_are_on_the_management_port_only(stack: Stack, client: httpx.Client) -> None:
    public = client.get("/metrics")
    assert_problem(public, 404)
    for name in stack.service_names:
        assert httpx.get(f"{stack.url(name)}/metrics").status_code == 404, name
        metrics = httpx.get(f"{stack.management_url(name)}/metrics")
        assert metrics.status_code == 200, name
        assert "http_requests_total" in metrics.text
    # An internal service's spec (with its /internal routes) is on its management port too.
    internal = httpx.get(f"{stack.management_url('member')}/openapi.json").json()
    assert [p for p in internal["paths"] if p.startswith("/internal")]
    assert httpx.get(f"{stack.url('member')}/openapi.json").status_code == 404


def test_a_forged_host_is_refused_and_answers_carry_security_headers(client: httpx.Client) -> None:
    forged = client.get("/api/v1/rooms/", headers={"Host": "evil.example"})
    assert_problem(forged, 400)
    assert "location" not in forged.headers
    rooms = client.get("/api/v1/rooms")
    assert rooms.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in rooms.headers["content-security-policy"]
    assert "server" not in rooms.headers
