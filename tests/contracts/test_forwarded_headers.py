"""Every header a service answers with reaches the client through the gateway (issue 8, item 2).

For every routed operation (``gateway_service.domain.routes.ROUTES``) the same request goes to
the owning service directly and through the gateway, twice in turn, so a second answer is a
replay where the route is idempotent (room's ``Idempotent-Replayed``) and a login has an account
to log into. The real services run on uvicorn, the gateway in-process in front of them. A header
in the direct answer that the gateway's answer lacks is named; so is one whose value changed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway_service.app import create_app as create_gateway
from gateway_service.domain.routes import IDEMPOTENCY_KEY_HEADER, ROUTES, Route
from gateway_service.settings import GatewaySettings

from .test_openapi_fuzz import USER_ID, System

# Set per hop, not part of the answer: the gateway sends its own.
PER_HOP = {
    "date",
    "server",
    "content-length",
    "x-request-id",
    "connection",
    "transfer-encoding",
    "keep-alive",
}
# Values that may differ between two answers of the same kind (seconds left, per-response ids).
VOLATILE = {"retry-after", "location"}
PATH_VALUES = {"room_id": "r101", "member_id": USER_ID, "notification_id": str(uuid.uuid4())}


@pytest.fixture(scope="module")
def edge(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[System, dict[str, str], httpx.AsyncClient]]:
    system = System(tmp_path_factory.mktemp("headers"))
    try:
        urls = {
            name: system.serve(getattr(system, name)(f"h-{name}"))
            for name in ("auth", "member", "room", "inventory", "notification")
        }
        settings = system.settings(
            GatewaySettings,
            "h-gateway",
            rate_limit="100000/minute",
            **{f"{n}_url": u for n, u in urls.items()},
        )
        gateway = system.trusted(create_gateway(settings))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gateway")
        yield system, urls, client
    finally:
        system.close()


class Session:
    """What one run of the routes learnt: the last refresh token and reservation, for the next calls."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {"refresh_token": "...", "reservation_id": str(uuid.uuid4())}

    def learn(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                for key in ("refresh_token", "reservation_id"):
                    if isinstance(body.get(key), str):
                        self.values[key] = body[key]

    def request(self, system: System, route: Route, idempotency_key: str) -> dict[str, Any]:
        path = re.sub(r"{(\w+)}", lambda m: PATH_VALUES.get(m[1]) or self.values[m[1]], route.path)
        headers = {} if route.public else system.users.headers(USER_ID, admin=True)
        if IDEMPOTENCY_KEY_HEADER in route.headers:
            headers[IDEMPOTENCY_KEY_HEADER] = idempotency_key
        kwargs: dict[str, Any] = {"headers": headers}
        if route.query:
            kwargs["params"] = {"room_id": "r101", "from": "2099-01-10", "to": "2099-01-12"}
        if route.json_example is not None:
            body = dict(route.json_example)
            if "refresh_token" in body:
                body["refresh_token"] = self.values["refresh_token"]
            if "check_in" in body:
                body |= {"check_in": "2099-01-10", "check_out": "2099-01-12"}
            kwargs["json"] = body
        elif route.form_fields:
            kwargs["data"] = {"username": "ada@example.com", "password": "correct-horse"}
        return {"method": route.method, "url": path, **kwargs}


def _compare(direct: httpx.Response, routed: httpx.Response) -> list[str]:
    problems = []
    for name, value in direct.headers.items():
        if name in PER_HOP:
            continue
        if name not in routed.headers:
            problems.append(f"dropped {name}: {value}")
        elif name not in VOLATILE and routed.headers[name] != value:
            problems.append(f"changed {name}: {value!r} -> {routed.headers[name]!r}")
    return problems


async def test_every_routed_operation_passes_the_services_headers_on(
    edge: tuple[System, dict[str, str], httpx.AsyncClient],
) -> None:
    system, urls, gateway = edge
    session = Session()
    failures: dict[str, list[str]] = {}
    seen: set[str] = set()
    async with httpx.AsyncClient(timeout=30) as direct_client:
        for route in ROUTES:
            key = f"headers-{uuid.uuid4()}"
            for _ in range(2):  # the second round replays, and logs into the account the first made
                request = session.request(system, route, key)
                direct = await direct_client.request(
                    **(request | {"url": urls[route.upstream] + request["url"]})
                )
                session.learn(direct)
                routed = await gateway.request(**session.request(system, route, key))
                session.learn(routed)
                if direct.status_code != routed.status_code:
                    continue  # the first call changed what the second sees (a signup, then a 409)
                seen |= set(direct.headers)
                problems = _compare(direct, routed)
                if problems:
                    failures.setdefault(f"{route.method} {route.path}", []).extend(problems)

    assert not failures, "\n".join(f"{op}: {'; '.join(p)}" for op, p in failures.items())
    # The answers that matter were really exercised, so their headers were compared.
    assert {"cache-control", "pragma", "idempotent-replayed"} <= seen
