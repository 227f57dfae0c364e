"""The gateway as ``serve`` runs it (real uvicorn, both ports): proxy headers, banner, management port.

The rate limit keys on the client address uvicorn reports. uvicorn's defaults believe
``X-Forwarded-For`` from 127.0.0.1, which on one host is every client; ``serve`` believes it only
from ``forwarded_allow_ips`` (empty by default). See docs/security.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import httpx

from common.cli import ManagementServer, management_config, serve_both, server_config

from .conftest import Gateway, GatewayFactory, Stub

FORGED = [
    {"X-Forwarded-For": "198.51.100.9"},
    {"X-Forwarded-For": "198.51.100.9, 127.0.0.1"},
    {"X-Real-IP": "198.51.100.10"},
    {"Forwarded": "for=198.51.100.11"},
]


def _socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def served(gw: Gateway) -> AsyncIterator[tuple[str, str]]:
    """``(main_url, management_url)`` of ``gw`` served the way ``python -m gateway_service serve`` does."""
    main_config, management = server_config(gw.app, gw.settings), management_config(gw.app, gw.settings)
    main_config.lifespan = "off"  # the fixture already runs the app's lifespan
    main_socket, management_socket = _socket(), _socket()
    main = ManagementServer(main_config)  # leaves the test runner's signals alone, like the other one
    beside = ManagementServer(management)
    task = asyncio.create_task(serve_both(main, [main_socket], beside, [management_socket]))
    deadline = time.monotonic() + 20
    while not (main.started and beside.started):
        assert not task.done(), "the servers did not start"
        assert time.monotonic() < deadline, "the servers did not start in time"
        await asyncio.sleep(0.01)
    try:
        yield (
            f"http://127.0.0.1:{main_socket.getsockname()[1]}",
            f"http://127.0.0.1:{management_socket.getsockname()[1]}",
        )
    finally:
        main.should_exit = True
        await task
        main_socket.close()
        management_socket.close()


async def test_once_limited_a_forged_forwarded_for_still_gets_429(
    gateway_with: GatewayFactory, upstreams: dict[str, Stub]
) -> None:
    async with (
        gateway_with(rate_limit="3/minute") as gw,
        served(gw) as (url, _),
        httpx.AsyncClient(base_url=url) as client,
    ):
        allowed = [(await client.get("/api/v1/rooms")).status_code for _ in range(3)]
        limited = await client.get("/api/v1/rooms")
        forged = [await client.get("/api/v1/rooms", headers=h) for h in FORGED]

    assert allowed == [200, 200, 200]
    assert limited.status_code == 429
    assert [f.status_code for f in forged] == [429] * len(FORGED)
    assert len(upstreams["room"].requests("/api/v1/rooms")) == 3


async def test_a_trusted_proxy_is_believed_about_its_clients(gateway_with: GatewayFactory) -> None:
    async with (
        gateway_with(rate_limit="2/minute", forwarded_allow_ips=["127.0.0.1"]) as gw,
        served(gw) as (url, _),
        httpx.AsyncClient(base_url=url) as client,
    ):
        first = [(await client.get("/api/v1/rooms", headers=FORGED[0])).status_code for _ in range(3)]
        other_client = await client.get("/api/v1/rooms", headers={"X-Forwarded-For": "198.51.100.77"})

    assert first == [200, 200, 429]
    assert other_client.status_code == 200  # another client behind the same proxy: its own budget


async def test_metrics_only_on_the_management_port_and_no_server_banner(gateway_with: GatewayFactory) -> None:
    async with gateway_with() as gw, served(gw) as (url, management_url), httpx.AsyncClient() as client:
        public_metrics = await client.get(f"{url}/metrics")
        public_docs = await client.get(f"{url}/docs")
        metrics = await client.get(f"{management_url}/metrics")
        health = await client.get(f"{url}/health/live")

    assert public_metrics.status_code == 404
    assert public_metrics.headers["content-type"] == "application/problem+json"
    assert public_docs.status_code == 200  # the public API's docs stay on the public port
    assert metrics.status_code == 200
    assert "gateway_rate_limited_total" in metrics.text
    for answer in (public_metrics, metrics, health):
        assert "server" not in answer.headers
