"""Contract fuzzing: schemathesis against every service's OpenAPI, in-process, authenticated.

For each service, schemathesis reads its committed spec (``contracts/openapi/<service>.yaml``,
which ``test_openapi_contracts.py`` proves is what the app serves), generates requests
for every operation, valid and invalid (``schemathesis.toml``: seeded, bounded), sends them to
the app through ASGI (no server, no port) and checks every answer:

- ``not_a_server_error``: never a 5xx that the spec does not document (a 503 "member is down"
  is documented; a 500 never is);
- ``status_code_conformance``: the status is one the operation documents;
- ``content_type_conformance``: the media type is the documented one (problem+json for errors);
- ``response_schema_conformance``: the body matches the documented schema;
- ``negative_data_rejection``: invalid data (per the spec) is refused with a 4xx.

Each service runs on a migrated SQLite database of its own with demo data where it helps, and
trusts a stand-in for auth (``TestUsers``): operations whose spec asks for ``UserBearer`` get one
of its tokens, ``ServiceToken`` operations a service token from their allowed caller. The lifespan (outbox
relay, Kafka consumers, workers) is not started: fuzzing exercises the HTTP contract, and what
the relay would publish just stays in the outbox table, which is thrown away with the database.
Kafka's address is a closed port (``/health/ready`` stays 200: Kafka is informational).

Calls to other services go to the real apps, served by uvicorn on local ports with their own
databases: room's member and inventory (so a valid reservation is really checked, held and
stored), and the gateway's five services (so fuzzing the gateway is fuzzing the public API end to
end, and invalid data reaches the service that judges it: the gateway forwards bodies unread).

``test_reservation_links_conform_to_the_contract`` follows the links of room's spec (create ->
get -> cancel) with schemathesis's state machine. The cases run per service are printed at the
end of the session. docs/contracts.md ("Contract fuzzing") says more.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp, Receive, Scope, Send

import auth_service
import inventory_service
import member_service
import notification_service
import room_service
from auth_service.app import create_app as create_auth
from auth_service.settings import AuthSettings
from common.db import Database
from common.openapi import SERVICE_TOKEN, USER_BEARER
from common.settings import ServiceSettings
from common.testing.apps import migrated
from common.testing.tokens import TestUsers, service_headers
from gateway_service.app import create_app as create_gateway
from gateway_service.settings import GatewaySettings
from inventory_service.app import create_app as create_inventory
from inventory_service.seed import seed as seed_inventory
from inventory_service.settings import InventorySettings
from member_service.app import create_app as create_member
from member_service.service_layer.members import register_member
from member_service.settings import MemberSettings
from notification_service.app import create_app as create_notification
from notification_service.service_layer.notifications import Notifier
from notification_service.settings import NotificationSettings
from room_service.app import create_app as create_room
from room_service.seed import seed as seed_rooms
from room_service.settings import RoomSettings

from .conftest import FuzzReport

SPECS_DIR = Path(__file__).resolve().parents[2] / "contracts" / "openapi"
CONFIG = schemathesis.Config.from_path(Path(__file__).with_name("schemathesis.toml"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
SERVICES = ("gateway", "auth", "member", "room", "inventory", "notification")
# Who may call each service's internal routes (the allow-lists in their api/internal modules).
INTERNAL_CALLER = {"auth": "member", "member": "room", "inventory": "room"}

# The request examples in the specs (a reservation, a hold, an availability query) are in January
# 2099, so they never fall in the past; inventory has rooms then, so the examples really book.
EXAMPLES_MONTH = date(2099, 1, 1)
USER_ID = str(uuid.uuid4())  # the member every user route acts as (an admin, so admin routes work too)


def _migrations(package: Any) -> Path:
    return Path(package.__file__).parent / "migrations"


class Plug:
    """The ASGI app schemathesis calls for one service: forwards to the app the fixture plugged in.

    The specs are read when the module is imported (one test per operation), the apps are built
    by the ``system`` fixture, with their databases, only when their tests run. The lifespan is
    refused ("no lifespan support"), so no relay, consumer or worker starts.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        assert self.app is not None, f"{self.service}: no app plugged in (the `system` fixture does it)"
        await self.app(scope, receive, send)


class Served:
    """An app served by uvicorn on a local port, in a thread (lifespan off), for another to call."""

    def __init__(self, app: FastAPI) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, lifespan="off", log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def wait_started(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the app at {self.url} did not start")
            self._thread.join(0.01)  # wait a little, on the thread that is starting it

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@dataclass
class System:
    """Everything the fuzzed services share: a folder, service keys, the users' token issuer."""

    root: Path
    users: TestUsers = field(default_factory=TestUsers)
    closed: socket.socket = field(default_factory=socket.socket)  # bound, never listening
    served: list[Served] = field(default_factory=list)
    plugs: list[Plug] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.closed.bind(("127.0.0.1", 0))

    @property
    def closed_url(self) -> str:
        return f"127.0.0.1:{self.closed.getsockname()[1]}"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def settings(self, cls: type[ServiceSettings], name: str, **extra: Any) -> Any:
        """Test settings: own SQLite file, shared keys, Kafka and JWKS on a closed port, no retries."""
        return cls(
            env="test",
            database_url=f"sqlite:///{self.root / name}.db",
            service_keys_dir=self.keys_dir,
            kafka_bootstrap_servers=self.closed_url,
            jwks_url=f"http://{self.closed_url}/.well-known/jwks.json",
            upstream_max_attempts=1,
            **extra,
        )

    def trusted(self, app: FastAPI) -> FastAPI:
        self.users.trust(app)
        return app

    # -- one app per service, ready to be fuzzed -------------------------------------------------

    def auth(self, name: str = "auth") -> FastAPI:
        settings = self.settings(
            AuthSettings,
            name,
            user_token_keys_dir=self.root / "user-token-keys",
            password_hash_time_cost=1,
            password_hash_memory_kib=1024,
            member_url=f"http://{self.closed_url}",
        )
        return self.trusted(create_auth(migrated(settings, _migrations(auth_service))))

    def member(self, name: str = "member") -> FastAPI:
        settings = migrated(self.settings(MemberSettings, name), _migrations(member_service))
        db = Database(settings.database_url)
        with db.transaction() as session:
            register_member(session, USER_ID, "ada@example.com", "Ada", datetime.now(UTC))
        db.dispose()
        return self.trusted(create_member(settings))

    def inventory(self, name: str = "inventory") -> FastAPI:
        settings = migrated(self.settings(InventorySettings, name), _migrations(inventory_service))
        seed_inventory(settings)  # the demo rooms, from today
        seed_inventory(settings, today=EXAMPLES_MONTH)  # and when the specs' examples stay
        return self.trusted(create_inventory(settings))

    def notification(self, name: str = "notification") -> FastAPI:
        settings = migrated(self.settings(NotificationSettings, name), _migrations(notification_service))
        db = Database(settings.database_url)
        with db.transaction() as session:
            Notifier().user_registered(
                session,
                str(uuid.uuid4()),
                {"user_id": USER_ID, "email": "ada@example.com", "display_name": "Ada"},
            )
        db.dispose()
        return self.trusted(create_notification(settings))

    def room(self, name: str = "room") -> FastAPI:
        # Room's dependencies are the real member and inventory apps (own databases), over HTTP.
        member = self.serve(self.member(f"{name}-member"))
        inventory = self.serve(self.inventory(f"{name}-inventory"))
        settings = migrated(
            self.settings(RoomSettings, name, member_url=member, inventory_url=inventory),
            _migrations(room_service),
        )
        seed_rooms(settings)
        return self.trusted(create_room(settings))

    def gateway(self) -> FastAPI:
        # Behind the gateway, the real services (own databases), over HTTP: the public API end to end.
        upstreams = {
            f"{name}_url": self.serve(getattr(self, name)(f"gateway-{name}"))
            for name in ("auth", "member", "room", "inventory", "notification")
        }
        settings = self.settings(GatewaySettings, "gateway", rate_limit="100000/minute", **upstreams)
        return self.trusted(create_gateway(settings))

    def plug_in(self, plug: Plug) -> None:
        """Build the service's app (once) and put it behind its plug."""
        if plug.app is None:
            build: Callable[[], FastAPI] = getattr(self, plug.service)
            plug.app = build()
            self.plugs.append(plug)

    def credentials(self, service: str, case: schemathesis.Case) -> dict[str, str]:
        """A user token (an admin's) for UserBearer routes, a service token for ServiceToken ones;
        none when the headers are the negative part of a case: a missing or broken Authorization
        may be the very violation, which a credential added here would undo (and the case, then
        valid but for an ignored query parameter, would be "accepted")."""
        meta = case.meta
        headers = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
        if headers is not None and headers.mode.is_negative:
            return {}
        schemes = {
            name for requirement in case.operation.definition.raw.get("security", []) for name in requirement
        }
        if SERVICE_TOKEN in schemes:
            return service_headers(self.keys_dir, INTERNAL_CALLER[service], service)
        if USER_BEARER in schemes:
            return self.users.headers(USER_ID, admin=True)
        return {}

    def serve(self, app: FastAPI) -> str:
        served = Served(app)
        self.served.append(served)
        served.wait_started()
        return served.url

    def close(self) -> None:
        for plug in self.plugs:
            plug.app = None
        for served in self.served:
            served.stop()
        self.closed.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = System(tmp_path_factory.mktemp("fuzz"))
    try:
        yield system
    finally:
        system.close()


def _load(service: str) -> Any:
    schema = schemathesis.openapi.from_path(SPECS_DIR / f"{service}.yaml", config=CONFIG)
    # Fault switches are left out: a generated valid switch (a hang on "/") would fault the very
    # apps under test. Their 401/403/404/422 answers: common/tests and gateway's test_admin_faults.
    schema = schema.exclude(path_regex=r"^(/api/v1)?/admin/faults")
    schema.app = Plug(service)
    return schema


SCHEMAS = {service: _load(service) for service in SERVICES}


@schemathesis.pytest.parametrize(**SCHEMAS)
def test_every_answer_conforms_to_the_contract(
    case: schemathesis.Case, system: System, fuzz_report: FuzzReport
) -> None:
    plug: Plug = case.operation.app
    system.plug_in(plug)
    response = case.call_and_validate(headers=system.credentials(plug.service, case), checks=CHECKS)
    fuzz_report.record(plug.service, case.operation.label, response.status_code)


# -- stateful: a reservation's life, following the links of its spec (create -> get -> cancel) --------

CREATE = "POST /api/v1/reservations"


class ReservationLives(SCHEMAS["room"].as_state_machine()):  # type: ignore[misc]
    """Sequences of calls chained by the spec's links: what ``POST /api/v1/reservations`` answers
    (its ``reservation_id``) is what the next ``GET`` or ``DELETE`` asks for.

    Generated reservation bodies would almost never name a room and free nights, so a valid
    (positive) create is given a stay that is free; everything else is generated.
    """

    system: System
    report: FuzzReport
    stays = iter(range(10_000))

    def before_call(self, case: schemathesis.Case) -> None:
        meta = case.meta
        positive = meta is None or not meta.generation.mode.is_negative
        if case.operation.label == CREATE and positive and isinstance(case.body, dict):
            case.body = {**case.body, **bookable_stay(next(self.stays))}

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"headers": self.system.credentials("room", case)}

    def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
        super().after_call(response, case)
        self.report.record("room (links)", case.operation.label, response.status_code)

    def validate_response(  # type: ignore[override]
        self, response: schemathesis.Response, case: schemathesis.Case, **kwargs: Any
    ) -> None:
        case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)


def bookable_stay(n: int) -> dict[str, str]:
    """The n-th stay of two nights that inventory has a room for (January-February 2099, 5 rooms)."""
    room, slot = divmod(n % 150, 30)
    check_in = EXAMPLES_MONTH + timedelta(days=2 * slot)
    return {
        "room_id": f"r10{room + 1}",
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=2)).isoformat(),
    }


def test_reservation_links_conform_to_the_contract(system: System, fuzz_report: FuzzReport) -> None:
    system.plug_in(SCHEMAS["room"].app)
    ReservationLives.system, ReservationLives.report = system, fuzz_report
    ReservationLives.run(
        settings=hypothesis.settings(
            max_examples=8,
            stateful_step_count=6,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    followed = fuzz_report.answers_to("room (links)")
    assert followed[CREATE].get(201), "no reservation was made: the links were never followed"
    assert followed["GET /api/v1/reservations/{reservation_id}"].get(200), followed
    assert followed["DELETE /api/v1/reservations/{reservation_id}"].get(200), followed
