"""What a deployment (docker compose, Kubernetes) must agree on, read from the code itself.

The service table comes from the stack runner's catalogue (``stack.services``): names, ports,
management ports, health paths. The settings each service reads come from its pydantic-settings
class (``services/<name>/src/<name>_service/settings.py`` on top of ``common.settings``), so a
deployment file that sets a variable no service reads, or misses one a container must set,
fails the tests that use this module (tests/deploy/test_compose.py, test_kubernetes.py).
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from common.settings import ServiceSettings
from stack.services import DEFAULT_BASE_PORT, LIVE_PATH, READY_PATH, SERVICES, ServiceSpec

REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "BY_NAME",
    "DEPLOYED",
    "LIVE_PATH",
    "READY_PATH",
    "REPO",
    "DeployedService",
    "image_is_pinned",
    "unpinned_reason",
]


@dataclass(frozen=True)
class DeployedService:
    """One service as a deployment sees it: where it listens and what it reads from the env."""

    spec: ServiceSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def package(self) -> str:
        """The import name, ``room_service``: ``python -m room_service serve``."""
        return self.spec.package

    @property
    def distribution(self) -> str:
        """The workspace member's project name, ``room-service`` (``uv sync --package``)."""
        return f"{self.spec.name}-service"

    @property
    def env_prefix(self) -> str:
        return self.spec.env_prefix

    @property
    def port(self) -> int:
        """The main port in the runner's default table (8000 + offset)."""
        return self.spec.port(DEFAULT_BASE_PORT)

    @property
    def management_port(self) -> int:
        """Where ``/metrics`` is served (main port + 1000)."""
        return self.spec.management_port(DEFAULT_BASE_PORT)

    @property
    def seeds(self) -> bool:
        """Has demo data (``python -m <package> seed``, which migrates first)."""
        return self.spec.seeds

    @property
    def has_migrations(self) -> bool:
        return (REPO / "services" / self.name / "src" / self.package / "migrations").is_dir()

    @cached_property
    def settings_class(self) -> type[ServiceSettings]:
        """The service's settings class, found in ``<package>.settings``."""
        module = importlib.import_module(f"{self.package}.settings")
        found = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, ServiceSettings)
            and obj is not ServiceSettings
            and obj.__module__ == module.__name__
        ]
        assert len(found) == 1, f"{module.__name__} should define one ServiceSettings class: {found}"
        return found[0]

    def env_name(self, field: str) -> str:
        """``port`` -> ``ROOM_PORT``: how pydantic-settings names the variable of a field."""
        return f"{self.env_prefix}{field.upper()}"

    @cached_property
    def env_names(self) -> frozenset[str]:
        """Every environment variable the service reads (one per settings field)."""
        prefix = self.settings_class.model_config.get("env_prefix")
        assert prefix == self.env_prefix, (
            f"{self.settings_class.__name__} reads {prefix!r}, not {self.env_prefix!r}"
        )
        return frozenset(self.env_name(f) for f in self.settings_class.model_fields)

    @cached_property
    def required_env_names(self) -> frozenset[str]:
        """The variables a container deployment must set: their defaults only work on one host.

        Derived from the defaults, not listed, so a new setting of that kind (a peer URL, a
        secret, a key folder) is required without anyone editing this module:
        - loopback hosts and URLs (``127.0.0.1``/``localhost``): peers, Kafka, SMTP, JWKS, and the
          listen addresses (a container must listen on ``0.0.0.0``);
        - secrets with a non-empty default (placeholders, the demo admin password);
        - paths (key folders, under the dev run folder by default);
        - the database URL (SQLite under the run folder by default), ``env`` (``prod`` there),
          ``allowed_hosts`` (``*`` by default, refused in prod), and both ports (the table's).
        """
        fields = self.settings_class.model_fields
        always = {"env", "port", "management_port", "database_url", "allowed_hosts"}
        required = {name for name in fields if name in always}
        for name, field in fields.items():
            if _host_bound(field.get_default(call_default_factory=True)):
                required.add(name)
        return frozenset(self.env_name(n) for n in required)

    def field_of(self, env_name: str) -> str:
        """``ROOM_PORT`` -> ``port``."""
        return env_name.removeprefix(self.env_prefix).lower()


def _host_bound(default: Any) -> bool:
    """True for a default that only makes sense on the developer's host."""
    if isinstance(default, SecretStr):
        return bool(default.get_secret_value())
    if isinstance(default, Path):
        return True
    if isinstance(default, str):
        return bool(re.search(r"\b(127\.0\.0\.1|localhost)\b", default))
    return False


DEPLOYED: tuple[DeployedService, ...] = tuple(DeployedService(s) for s in SERVICES)
BY_NAME: dict[str, DeployedService] = {s.name: s for s in DEPLOYED}

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# A tag that names a release: 1.2, 1.2.3, v1.30.5, 3.12.14-slim-trixie, 18.6-alpine.
_VERSION_TAG = re.compile(r"^v?\d+(\.\d+)+([-.][A-Za-z0-9.]+)*$")


def unpinned_reason(image: str) -> str | None:
    """Why ``image`` is not pinned (no tag, ``latest``, a moving tag), or ``None`` if it is."""
    if _DIGEST.search(image):
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "no tag (means latest)"
    tag = last.rsplit(":", 1)[1]
    if tag == "latest":
        return "the latest tag moves"
    if not _VERSION_TAG.match(tag):
        return f"tag {tag!r} is not a version (major.minor at least) or a digest"
    return None


def image_is_pinned(image: str) -> bool:
    return unpinned_reason(image) is None
