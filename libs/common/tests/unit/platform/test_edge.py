"""The edge of every service: management port, security headers, Host check, hostile headers."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import ValidationError

from common.app_factory import create_service_app
from common.context import current_deadline, current_trace
from common.docs import inline_script_hashes
from common.settings import ServiceSettings
from common.testing.apps import management_client


def _app(**kw: object) -> FastAPI:
    router = APIRouter()

    @router.get("/things")
    async def things() -> dict[str, object]:
        trace, deadline = current_trace(), current_deadline()
        return {
            "trace_id": trace.trace_id if trace else None,
            "flags": trace.flags if trace else None,
            "remaining": deadline.remaining() if deadline else None,
        }

    @router.get("/internal/things")
    async def internal_things() -> dict[str, str]:
        return {}

    return create_service_app(service="edge", title="Edge", routers=[router], **kw)  # type: ignore[arg-type]


def _client(app: FastAPI, host: str = "service") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


# -- management port ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/docs", "/openapi.json", "/redoc"])
async def test_metrics_and_docs_are_not_on_the_main_port(path: str) -> None:
    async with _client(_app()) as client:
        response = await client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_management_app_serves_metrics_and_the_full_spec_with_internal_routes() -> None:
    app = _app()
    async with _client(app) as client:
        await client.get("/things")
    async with management_client(app) as management:
        metrics = await management.get("/metrics")
        spec = await management.get("/openapi.json")
        docs = await management.get("/docs")
        redoc = await management.get("/redoc")

    assert 'http_requests_total{method="GET",route="/things",service="edge",status="200"}' in metrics.text
    assert spec.json() == app.openapi()
    assert "/internal/things" in spec.json()["paths"]
    assert "swagger-ui" in docs.text
    assert docs.headers["content-type"].startswith("text/html")
    assert "redoc" in redoc.text


async def test_public_docs_are_served_on_the_main_port_too() -> None:
    app = _app(public_docs=True)
    async with _client(app) as client:
        docs = await client.get("/docs")
        spec = await client.get("/openapi.json")
        metrics = await client.get("/metrics")

    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    assert spec.json() == app.openapi()
    assert metrics.status_code == 404


# -- security headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/things", "/nowhere", "/health/live"])
async def test_every_answer_carries_the_security_headers(path: str) -> None:
    async with _client(_app()) as client:
        response = await client.get(path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_docs_pages_allow_exactly_their_own_inline_scripts_and_the_cdn(path: str) -> None:
    async with management_client(_app()) as management:
        page = await management.get(path)

    csp = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    script_sources = csp["script-src"].split()
    hashes = inline_script_hashes(page.text)
    assert set(hashes) <= set(script_sources)
    assert "'unsafe-inline'" not in script_sources
    assert "'unsafe-eval'" not in script_sources
    for src in re.findall(r'<script src="([^"]+)"', page.text):
        assert any(
            src.startswith(allowed + "/") for allowed in script_sources if allowed.startswith("https:")
        )
    for link in re.findall(r"<link[^>]*>", page.text):
        if "stylesheet" in link:
            [href] = re.findall(r'href="([^"]+)"', link)
            assert any(href.startswith(allowed + "/") for allowed in csp["style-src"].split())


def test_an_injected_script_does_not_match_the_pages_hashes() -> None:
    page = "<script>ok()</script>"
    assert inline_script_hashes(page) != inline_script_hashes("<script>evil()</script>")
    assert len(inline_script_hashes(page + "<script>more()</script>")) == 2


# -- Host -----------------------------------------------------------------------------------------


async def test_a_forged_host_is_a_400_problem_and_never_reflected() -> None:
    app = _app(allowed_hosts=["127.0.0.1", "localhost"])
    async with _client(app, host="evil.example") as client:
        forged = await client.get("/things/")  # would be a trailing-slash redirect
    async with _client(app, host="localhost:8003") as client:
        allowed = await client.get("/things")
        slash = await client.get("/things/")

    assert forged.status_code == 400
    assert forged.headers["content-type"] == "application/problem+json"
    assert "location" not in forged.headers
    assert "evil" not in forged.text
    assert forged.json()["request_id"] == forged.headers["x-request-id"]
    assert allowed.status_code == 200
    # No redirects at all: an allowed host doesn't get one either, the route list is the API.
    assert slash.status_code == 404
    assert "location" not in slash.headers


async def test_the_management_app_checks_the_host_too() -> None:
    app = _app(allowed_hosts=["127.0.0.1"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.state.management), base_url="http://evil.example"
    ) as management:
        assert (await management.get("/metrics")).status_code == 400
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.state.management), base_url="http://127.0.0.1:9003"
    ) as management:
        assert (await management.get("/metrics")).status_code == 200


# -- hostile request headers ----------------------------------------------------------------------

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_an_oversized_traceparent_starts_a_new_trace_instead_of_travelling_on() -> None:
    long_flags = f"00-{TRACE_ID}-00f067aa0ba902b7-" + "0" * 6000
    async with _client(_app()) as client:
        valid = (
            await client.get("/things", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
        ).json()
        hostile = (await client.get("/things", headers={"traceparent": long_flags})).json()
        upper = (
            await client.get("/things", headers={"traceparent": f"00-{TRACE_ID.upper()}-00F067AA0BA902B7-01"})
        ).json()

    assert valid == valid | {"trace_id": TRACE_ID, "flags": "01"}
    assert hostile["trace_id"] != TRACE_ID
    assert len(hostile["flags"]) == 2
    assert upper["trace_id"] != TRACE_ID.lower()  # W3C: lower-case hex only


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000, "1" + "0" * 400, "-5", "1e3", " ", "٣"])
async def test_a_malformed_deadline_is_ignored_never_a_500(value: str) -> None:
    async with _client(_app(request_timeout_s=7.0)) as client:
        # latin-1 is what HTTP headers carry; "٣" can't be sent, its bytes can.
        raw = value.encode("utf-8") if not value.isascii() else value.encode()
        response = await client.get("/things", headers=[(b"X-Deadline-Ms", raw), (b"X-Deadline-At", raw)])

    assert response.status_code == 200, response.text
    assert 6.0 < response.json()["remaining"] <= 7.0


@pytest.mark.parametrize("value", ["x" * 200, "a b", "id\u00e9", "<script>"])
async def test_a_malformed_request_id_is_replaced(value: str) -> None:
    async with _client(_app()) as client:
        response = await client.get("/things", headers=[(b"X-Request-ID", value.encode("utf-8"))])

    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


# -- settings -------------------------------------------------------------------------------------


class _Settings(ServiceSettings):
    pass


def test_management_port_defaults_beside_the_main_port_and_hosts_must_be_named_in_prod() -> None:
    assert _Settings(port=8003).management_port == 9003
    assert _Settings(port=8003, management_port=9100).management_port == 9100
    assert _Settings().forwarded_allow_ips == []
    with pytest.raises(ValidationError, match="management_port"):
        _Settings(port=8003, management_port=8003)
    secrets = {
        "service_shared_secret": "a-real-secret-of-some-length",
        "cursor_secret": "another-real-secret",
    }
    with pytest.raises(ValidationError, match="allowed_hosts"):
        _Settings(env="prod", **secrets)
    assert _Settings(env="prod", allowed_hosts=["api.example.com"], **secrets).allowed_hosts == [
        "api.example.com"
    ]
