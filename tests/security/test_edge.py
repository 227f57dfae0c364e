"""The edge: what is served where, which headers go out, which come in.

Most cases ask the session's stack. The forwarding and rate-limit cases ask a *probe gateway*:
a second gateway process (same code, same auth) with a low rate limit and room's URL pointing at
a capture server, which records exactly which headers the gateway sends on and answers with
headers of its own.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from stack.ports import free_port_block
from stack.procs import ProcessHandle
from stack.runner import Stack
from stack.services import spec

from ..conftest import PASSWORD, eventually
from .conftest import INTERNAL_SERVICES, SERVICES, Judge, People, System, category

CATEGORY = "exposure"
PROBE_RATE_LIMIT = 5  # per minute, per user else per client address


# -- what is served on the main ports ----------------------------------------------------------------

NOT_ON_MAIN_PORT = [("gateway", "/metrics")] + [
    (service, path)
    for service in INTERNAL_SERVICES
    for path in ("/metrics", "/docs", "/openapi.json", "/redoc")
]


@pytest.mark.parametrize(("service", "path"), NOT_ON_MAIN_PORT, ids=lambda v: str(v))
def test_operational_pages_are_not_on_the_main_port(
    service: str, path: str, http: httpx.Client, system: System, judge: Judge
) -> None:
    judge.refused(http.get(system.url(service) + path), {404}, f"{service}: GET {path} on the main port")


@category("exposure (controls)")
@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/health/live"])
def test_the_public_docs_stay_on_the_gateway(
    path: str, http: httpx.Client, system: System, judge: Judge
) -> None:
    judge.status(http.get(system.url("gateway") + path), {200}, f"gateway: GET {path}")


@category("exposure (controls)")
@pytest.mark.parametrize("service", SERVICES)
def test_metrics_are_served_on_the_management_port(
    service: str, http: httpx.Client, system: System, judge: Judge
) -> None:
    management_url = getattr(system.stack, "management_url", None)
    if management_url is None:
        judge.holds(
            False,
            f"{service}: Stack.management_url",
            "a management port",
            "no management_url",
            accepted=False,
        )
        return
    response = http.get(management_url(service) + "/metrics")
    judge.status(response, {200}, f"{service}: GET /metrics on the management port")


# -- response headers ----------------------------------------------------------------------------------

HEADER_PROBES = [
    ("gateway", "GET", "/api/v1/rooms"),
    ("gateway", "GET", "/api/v1/no-such-route"),
    ("gateway", "GET", "/api/v1/members/me"),  # 401 without a token
    *((service, "GET", "/health/live") for service in SERVICES),
]


@category("security headers")
@pytest.mark.parametrize(("service", "method", "path"), HEADER_PROBES, ids=lambda v: str(v))
def test_answers_say_nosniff_and_name_no_server(
    service: str, method: str, path: str, http: httpx.Client, system: System, judge: Judge
) -> None:
    response = http.request(method, system.url(service) + path)
    server = response.headers.get("server", "")
    ok = (
        response.headers.get("x-content-type-options", "").lower() == "nosniff"
        and "uvicorn" not in server.lower()
    )
    got = f"x-content-type-options={response.headers.get('x-content-type-options')!r}, server={server!r}"
    judge.holds(ok, f"{service}: {method} {path}", "nosniff, no server banner", got)


@category("security headers")
@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_may_not_be_framed(
    path: str, http: httpx.Client, system: System, judge: Judge
) -> None:
    response = http.get(system.url("gateway") + path)
    csp = response.headers.get("content-security-policy", "")
    framing = "frame-ancestors" in csp or response.headers.get("x-frame-options", "").upper() in {
        "DENY",
        "SAMEORIGIN",
    }
    if response.status_code == 404 and path == "/redoc":
        judge.status(response, {404}, f"gateway: GET {path}")  # not served at all: nothing to frame
        return
    judge.holds(framing, f"gateway: GET {path}", "CSP frame-ancestors or X-Frame-Options", f"csp={csp!r}")


@category("token answers")
@pytest.mark.parametrize("service", ["gateway", "auth"])
@pytest.mark.parametrize("answer", ["token", "refresh"])
def test_token_answers_are_not_cached(
    answer: str, service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    url = system.url(service)
    response = http.post(
        url + "/api/v1/auth/token", data={"username": people.bob.email, "password": PASSWORD}
    )
    if answer == "refresh" and response.status_code == 200:
        response = http.post(
            url + "/api/v1/auth/refresh", json={"refresh_token": response.json()["refresh_token"]}
        )
    cache = response.headers.get("cache-control", "")
    ok = response.status_code == 200 and "no-store" in cache
    judge.holds(
        ok,
        f"{service}: {answer} answer",
        "200 with Cache-Control: no-store",
        f"{response.status_code} cache-control={cache!r}",
    )


@category("idempotency scoping")
@pytest.mark.parametrize("service", ["gateway", "room"])
def test_a_replay_says_so(
    service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    response = http.post(
        system.url(service) + "/api/v1/reservations",
        json=people.reservation_body,
        headers=people.alice.headers(people.reservation_key),
    )
    ok = (
        response.status_code == 201
        and response.json().get("reservation_id") == people.reservation_id
        and response.headers.get("idempotent-replayed") == "true"
    )
    got = f"{response.status_code} idempotent-replayed={response.headers.get('idempotent-replayed')!r}"
    judge.holds(
        ok,
        f"{service}: Alice repeats her reservation (same key)",
        "201, same id, Idempotent-Replayed: true",
        got,
    )


# -- request headers -------------------------------------------------------------------------------------

EVIL_HOSTS = ["evil.example", "evil.example:80", "127.0.0.1@evil.example", "evil.example#"]
REDIRECTING = ["/api/v1/rooms/", "/docs/", "/api/v1/reservations/"]


@category("header injection")
@pytest.mark.parametrize("service", ["gateway", "room", "member"])
@pytest.mark.parametrize("path", REDIRECTING)
@pytest.mark.parametrize("host", EVIL_HOSTS)
def test_a_forged_host_is_never_reflected(
    host: str, path: str, service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    response = http.get(system.url(service) + path, headers={"Host": host, **people.alice.auth})
    location = response.headers.get("location", "")
    reflected = "evil" in location or "evil" in response.text
    request = f"{service}: GET {path} with Host: {host}"
    if response.status_code >= 500:
        judge.status(response, {400, 404}, request)
        return
    judge.holds(
        not reflected,
        request,
        "400, or no Location naming that host",
        f"{response.status_code} location={location!r}",
    )


@category("header injection")
@pytest.mark.parametrize("service", ["gateway", "room"])
@pytest.mark.parametrize(
    "header", ["X-Forwarded-Host", "X-Forwarded-Proto", "X-Original-URL", "X-Rewrite-URL"]
)
def test_forwarding_headers_do_not_redirect_elsewhere(
    header: str, service: str, http: httpx.Client, system: System, judge: Judge
) -> None:
    value = "/internal/members/x" if "URL" in header else ("evil.example" if "Host" in header else "gopher")
    response = http.get(system.url(service) + "/api/v1/rooms/", headers={header: value})
    location = response.headers.get("location", "")
    ok = (
        "evil" not in location
        and "gopher" not in location
        and "internal" not in location
        and response.status_code < 500
    )
    judge.holds(
        ok,
        f"{service}: GET /api/v1/rooms/ with {header}: {value}",
        "not reflected",
        f"{response.status_code} location={location!r}",
    )


SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
EVIL_REQUEST_IDS = {
    "6 kB": "a" * 6000,
    "HTML": "<script>alert(1)</script>",
    "spaces": "id with spaces",
    "encoded CRLF": "abc%0d%0aSet-Cookie:%20x=1",
    "JSON": '{"level":"ERROR"}',
    "path": "../../etc/passwd",
}


@category("header injection")
@pytest.mark.parametrize("service", ["gateway", "auth", "room"])
@pytest.mark.parametrize("value", EVIL_REQUEST_IDS, ids=str)
def test_an_unsafe_request_id_is_replaced(
    value: str, service: str, http: httpx.Client, system: System, judge: Judge
) -> None:
    response = http.get(
        system.url(service) + "/health/live", headers={"X-Request-ID": EVIL_REQUEST_IDS[value]}
    )
    echoed = response.headers.get("x-request-id", "")
    ok = response.status_code < 500 and bool(SAFE_ID.match(echoed)) and echoed != EVIL_REQUEST_IDS[value]
    judge.holds(
        ok,
        f"{service}: X-Request-ID {value}",
        "a fresh safe id",
        f"{response.status_code} echoed {echoed[:60]!r}",
    )


DEADLINES = ["-1", "0x10", "NaN", "1e999", "99999999999999999999999", "", "5.5"]


@category("header injection")
@pytest.mark.parametrize("service", ["gateway", "room"])
@pytest.mark.parametrize("value", DEADLINES)
def test_an_odd_deadline_is_never_a_500(
    value: str, service: str, http: httpx.Client, system: System, judge: Judge
) -> None:
    response = http.get(
        system.url(service) + "/api/v1/rooms", headers={"X-Deadline-Ms": value, "X-Deadline-At": value}
    )
    judge.status(response, {200, 400, 422, 504}, f"{service}: GET /api/v1/rooms with X-Deadline-Ms {value!r}")


# -- the probe gateway: what goes upstream, and the rate limit --------------------------------------------


@dataclass
class Capture:
    """The requests the probe gateway sent to "room", by path."""

    seen: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def headers_for(self, path: str) -> dict[str, str]:
        return eventually(lambda: self.seen.get(path), f"the probe's upstream call for {path}", within=10)


def _capture_server(capture: Capture) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with capture.lock:
                capture.seen[self.path.split("?")[0]] = {k.lower(): v for k, v in self.headers.items()}
            body = json.dumps(
                {"room_id": "r1", "name": "n", "description": "d", "capacity": 1, "nightly_rate": 1}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Set-Cookie", "upstream=secret")
            self.send_header("X-Internal-Debug", "upstream internals")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port_block(1)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="capture").start()
    return server


@dataclass
class Probe:
    url: str
    capture: Capture


@pytest.fixture(scope="session")
def probe(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    capture = Capture()
    server = _capture_server(capture)
    port = free_port_block(2)
    env = stack.service_env("gateway") | {
        "GATEWAY_PORT": str(port),
        "GATEWAY_MANAGEMENT_PORT": str(port + 1),
        "GATEWAY_ROOM_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "GATEWAY_RATE_LIMIT": f"{PROBE_RATE_LIMIT}/minute",
    }
    logs = tmp_path_factory.mktemp("probe-gateway")
    process = ProcessHandle(
        "probe-gateway",
        spec("gateway").command(sys.executable, "serve"),
        log_path=logs / "gateway.log",
        pid_path=None,
        env=env,
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _live(url), f"the probe gateway on {url} (log {logs})", within=60, interval=0.2)
        yield Probe(url, capture)
    finally:
        process.stop()
        server.shutdown()


def _live(url: str) -> bool:
    try:
        return httpx.get(url + "/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@category("header injection")
@pytest.mark.parametrize(
    ("name", "headers", "check"),
    [
        (
            "traceparent with 6 kB of flags",
            {"traceparent": f"00-{'a' * 32}-{'b' * 16}-{'f' * 6000}"},
            "traceparent",
        ),
        (
            "traceparent with a 2 kB trace id",
            {"traceparent": f"00-{'a' * 2048}-{'b' * 16}-01"},
            "traceparent",
        ),
        ("tracestate of 6 kB", {"tracestate": "k=" + "v" * 6000}, "tracestate"),
        ("X-Deadline-Ms of a year", {"X-Deadline-Ms": str(365 * 86_400_000)}, "deadline"),
        ("X-Request-ID of 6 kB", {"X-Request-ID": "r" * 6000}, "request-id"),
        ("a client's own X-Service-Token", {"X-Service-Token": "client-made"}, "service-token"),
        (
            "a client's X-Service-Name/Secret",
            {"X-Service-Name": "room", "X-Service-Secret": "guess-guess-guess"},
            "secret",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else "",
)
def test_what_the_gateway_sends_on_is_bounded(
    name: str, headers: dict[str, str], check: str, probe: Probe, http: httpx.Client, judge: Judge
) -> None:
    path = f"/api/v1/rooms/probe-{uuid.uuid4().hex[:12]}"
    with httpx.Client(transport=httpx.HTTPTransport(local_address=own_address()), timeout=20) as client:
        response = client.get(probe.url + path, headers=headers)  # its own address: never rate-limited
    if response.status_code != 200:
        judge.status(response, {200, 400, 431}, f"probe gateway: GET {path} with {name}")
        return
    sent = probe.capture.headers_for(path)
    ok = {
        "traceparent": len(sent.get("traceparent", "")) == 55,
        "tracestate": len(sent.get("tracestate", "")) <= 512,
        "deadline": 0 <= int(sent.get("x-deadline-ms", "0") or 0) <= 60_000,
        "request-id": len(sent.get("x-request-id", "")) <= 128,
        "service-token": sent.get("x-service-token") != "client-made",
        "secret": sent.get("x-service-secret") != "guess-guess-guess",
    }[check]
    got = {k: v[:60] for k, v in sent.items() if k.startswith(("trace", "x-"))}
    judge.holds(ok, f"probe gateway: GET {path} with {name}", f"{check} bounded / replaced", repr(got))


@category("header injection")
@pytest.mark.parametrize("header", ["set-cookie", "x-internal-debug"])
def test_upstream_only_headers_are_not_passed_to_clients(
    header: str, probe: Probe, http: httpx.Client, judge: Judge
) -> None:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=own_address()), timeout=20) as client:
        response = client.get(probe.url + f"/api/v1/rooms/probe-{uuid.uuid4().hex[:12]}")
    judge.holds(
        response.status_code == 200 and header not in response.headers,
        f"probe gateway: upstream answers with {header}",
        "not forwarded",
        f"{response.status_code} {header}={response.headers.get(header)!r}",
    )


BYPASS_HEADERS = {
    "X-Forwarded-For": "203.0.113.{n}",
    "X-Real-IP": "203.0.113.{n}",
    "Forwarded": "for=203.0.113.{n}",
    "X-Client-IP": "203.0.113.{n}",
    "True-Client-IP": "203.0.113.{n}",
    "CF-Connecting-IP": "203.0.113.{n}",
    "X-Forwarded-For (loopback)": "127.0.0.{n}",
    "X-Forwarded-For (list)": "203.0.113.{n}, 127.0.0.1",
}
_addresses = iter(range(10, 250))
_address_lock = threading.Lock()


def own_address() -> str:
    """A loopback source address of its own: a rate-limit bucket no other case touches."""
    with _address_lock:
        return f"127.0.3.{next(_addresses)}"


def exhaust(client: httpx.Client, url: str, headers: dict[str, str]) -> httpx.Response:
    """Call until limited (at most twice the limit); the last answer."""
    response = client.get(url, headers=headers)
    for _ in range(2 * PROBE_RATE_LIMIT):
        if response.status_code == 429:
            break
        response = client.get(url, headers=headers)
    return response


@category("rate limit")
@pytest.mark.parametrize("header", BYPASS_HEADERS, ids=str)
def test_a_limited_client_stays_limited_whatever_it_claims(header: str, probe: Probe, judge: Judge) -> None:
    auth: dict[str, str] = {}
    transport = httpx.HTTPTransport(local_address=own_address())
    with httpx.Client(transport=transport, timeout=20) as client:
        url = probe.url + "/api/v1/rooms"
        limited = exhaust(client, url, auth)
        if limited.status_code != 429:
            judge.holds(
                False,
                f"probe gateway ({PROBE_RATE_LIMIT}/minute): {2 * PROBE_RATE_LIMIT + 1} calls",
                "429",
                str(limited.status_code),
            )
            return
        name = header.split(" (")[0]
        answers = [
            client.get(url, headers={**auth, name: BYPASS_HEADERS[header].format(n=n)}).status_code
            for n in range(1, 4)
        ]
        ok = all(code == 429 for code in answers)
        judge.holds(
            ok,
            f"probe gateway: limited, then {name}: {BYPASS_HEADERS[header]}",
            "429 every time",
            repr(answers),
        )


@category("rate limit")
def test_a_limited_answer_says_when_to_come_back(probe: Probe, judge: Judge) -> None:
    transport = httpx.HTTPTransport(local_address=own_address())
    with httpx.Client(transport=transport, timeout=20) as client:
        limited = exhaust(client, probe.url + "/api/v1/rooms", {})
    retry_after = limited.headers.get("retry-after", "")
    ok = limited.status_code == 429 and retry_after.isdigit()
    judge.holds(
        ok,
        "probe gateway: over the limit",
        "429 with Retry-After",
        f"{limited.status_code} retry-after={retry_after!r}",
    )


@category("rate limit")
def test_a_limited_member_stays_limited_from_another_address(
    probe: Probe, people: People, http: httpx.Client, judge: Judge
) -> None:
    # Per user: a member's calls count together, whatever address they come from.
    token = people.bob.auth
    with httpx.Client(transport=httpx.HTTPTransport(local_address=own_address()), timeout=20) as first:
        limited = exhaust(first, probe.url + "/api/v1/rooms", token)
    with httpx.Client(transport=httpx.HTTPTransport(local_address=own_address()), timeout=20) as second:
        again = second.get(probe.url + "/api/v1/rooms", headers={**token, "X-Forwarded-For": "203.0.113.9"})
    ok = limited.status_code == 429 and again.status_code == 429
    judge.holds(
        ok,
        "probe gateway: Bob limited, then from another address",
        "429 both",
        f"{limited.status_code}, {again.status_code}",
    )
