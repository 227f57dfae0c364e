"""The service catalogue: which services the stack runs, on which ports, with which environment.

Every service is a package ``<name>_service`` run as ``python -m <name>_service migrate|serve``
and configured from environment variables prefixed ``<NAME>_`` (see ``common.settings``).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stack.ports import HOST

# Management ports (/metrics, internal docs) sit this far above the main ones: 8003 -> 9003.
MANAGEMENT_OFFSET = 1000
# The Host headers services answer in the stack (anything else: 400), see docs/security.md.
ALLOWED_HOSTS = '["127.0.0.1", "localhost"]'
# Every service serves these on its main port (common.app_factory); deployments probe them too
# (docker-compose.yml, deploy/k8s): ready gates traffic, live only says the process answers.
READY_PATH = "/health/ready"
LIVE_PATH = "/health/live"
# The port of the first service (gateway) when nothing else is asked for: 8000 + offset.
DEFAULT_BASE_PORT = 8000
# Instance n of a service listens (n - 1) x this above the first (stack.instances): room-2 8013.
INSTANCE_PORT_STEP = 10


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the system: its name, its port offset from the stack's base port, and
    whether it has demo data (``python -m <package> seed``)."""

    name: str
    offset: int
    seeds: bool = False

    @property
    def package(self) -> str:
        """The import name, e.g. ``room_service``."""
        return f"{self.name}_service"

    @property
    def env_prefix(self) -> str:
        """The settings prefix, e.g. ``ROOM_``."""
        return f"{self.name.upper()}_"

    def port(self, base_port: int, instance: int = 1) -> int:
        """The port this service's ``instance`` (1: the first) listens on for ``base_port``."""
        return base_port + self.offset + INSTANCE_PORT_STEP * (instance - 1)

    def management_port(self, base_port: int, instance: int = 1) -> int:
        """Where its ``/metrics`` (and an internal service's docs) are served."""
        return self.port(base_port, instance) + MANAGEMENT_OFFSET

    def urls(self, base_port: int, instances: int = 1) -> str:
        """The base URLs of its first ``instances`` instances, comma-separated (a peer setting)."""
        return ",".join(f"http://{HOST}:{self.port(base_port, n)}" for n in range(1, instances + 1))

    def command(self, python: str, action: str) -> list[str]:
        """``[python, -m, <package>, <action>]`` for ``migrate``, ``seed`` or ``serve``."""
        return [python, "-m", self.package, action]

    def is_installed(self) -> bool:
        """True when ``python -m <package>`` can run (package and ``__main__`` importable)."""
        try:
            return importlib.util.find_spec(f"{self.package}.__main__") is not None
        except ModuleNotFoundError:
            return False


# Order is the order of the status table and of the default ports (8000 + offset).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("gateway", 0),
    ServiceSpec("auth", 1, seeds=True),  # the admin and the demo license
    ServiceSpec("member", 2),
    ServiceSpec("room", 3, seeds=True),  # the five rooms
    ServiceSpec("inventory", 4, seeds=True),  # 60 nights of availability for them
    ServiceSpec("notification", 5),
)
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)
BY_NAME: Mapping[str, ServiceSpec] = {s.name: s for s in SERVICES}
JWKS_PATH = "/.well-known/jwks.json"  # where auth serves the keys of user access tokens

# Used only while ``common.messaging.topics`` (the single source of truth) is not importable.
FALLBACK_TOPICS: tuple[str, ...] = ("auth.licenses", "auth.users", "member.members", "room.reservations")


def spec(name: str) -> ServiceSpec:
    """The catalogue entry for ``name``; ``KeyError`` names the known services."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}") from None


def all_topics() -> list[str]:
    """Every event topic the system uses (without ``.dlq`` twins)."""
    try:
        module = importlib.import_module("common.messaging.topics")
    except ImportError:
        return list(FALLBACK_TOPICS)
    topics = getattr(module, "ALL_TOPICS", None)
    if not topics:
        return list(FALLBACK_TOPICS)
    return [str(t) for t in topics]


def service_env(
    service: ServiceSpec,
    *,
    base_port: int,
    run_dir: Path,
    bootstrap_servers: str,
    smtp_port: int,
    log_level: str = "INFO",
    services: Sequence[ServiceSpec] = SERVICES,
    instance: int = 1,
    instances: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """The environment variables the stack sets for one service (on top of the caller's env).

    Peer URLs are set for every other service, used or not, so a service can start calling a
    new peer without the runner changing; so is the JWKS URL (every service verifies user
    tokens with auth's keys), and the SMTP server for notification. ``instance`` is which
    instance of ``service`` this is (its ports); ``instances`` how many each service runs: a
    peer URL lists them all, comma-separated (``common.http.discovery``). Everything else that
    services share lives under ``RUN_DIR`` (service keys, data). The database URL is left to
    the service's default (a SQLite file under ``$RUN_DIR/data``) unless the caller's
    environment overrides it.
    """
    p = service.env_prefix
    env = {
        "RUN_DIR": str(run_dir),
        f"{p}HOST": HOST,
        f"{p}PORT": str(service.port(base_port, instance)),
        f"{p}MANAGEMENT_HOST": HOST,
        f"{p}MANAGEMENT_PORT": str(service.management_port(base_port, instance)),
        f"{p}ALLOWED_HOSTS": ALLOWED_HOSTS,
        f"{p}KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        f"{p}LOG_LEVEL": log_level,
        # Logs go to a file: unbuffered so `stack logs` and crash tails show the last lines.
        "PYTHONUNBUFFERED": "1",
    }
    counts = instances or {}
    for peer in services:
        if peer.name != service.name:
            env[f"{p}{peer.name.upper()}_URL"] = peer.urls(base_port, counts.get(peer.name, 1))
    auth = BY_NAME["auth"]  # where the keys are, even when this stack runs without auth
    env[f"{p}JWKS_URL"] = ",".join(
        f"{url}{JWKS_PATH}" for url in auth.urls(base_port, counts.get("auth", 1)).split(",")
    )
    if service.name == "notification":
        env[f"{p}SMTP_HOST"] = HOST
        env[f"{p}SMTP_PORT"] = str(smtp_port)
    return env
