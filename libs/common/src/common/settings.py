"""Typed service settings from the environment: one prefix per service (``ROOM_PORT``, ...).

Every value a service uses is a field here, so ``env | grep ROOM_`` shows the whole config.
Placeholder secrets are accepted in ``dev`` and ``test`` only: a real deployment must set them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.faults.spec import NamedFault
from common.http.discovery import Discovery
from common.paths import run_dir

PLACEHOLDER_SECRET = "dev-only-change-me"  # a known placeholder: refused when env=prod


class ServiceSettings(BaseSettings):
    """Settings every service shares; a service subclasses it and sets its prefix and port."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "service"

    env: Literal["dev", "test", "prod"] = "dev"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # The management port (/metrics, and the docs of internal services): for operators and
    # Prometheus only, so loopback by default. 0: the main port + 1000. See docs/security.md.
    management_host: str = "127.0.0.1"
    management_port: int = Field(default=0, ge=0, le=65535)
    # Host header names answered (a name, "*.suffix", or "*" for any); others get a 400 problem.
    # "*" is refused when env=prod: a deployment names its hosts. The dev stack sets loopback.
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])
    # Peers (IPs, or "*") whose X-Forwarded-For / X-Forwarded-Proto are believed: a proxy in
    # front of this service. Empty: nobody's; the TCP peer is the client.
    forwarded_allow_ips: list[str] = Field(default_factory=list)
    database_url: str = ""
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    log_level: str = "INFO"
    log_json: bool = True
    # Zipkin's span intake (http://host:9411/api/v2/spans): spans are batched and sent there.
    # Empty: traces stay in the process (ids in logs and headers only), nothing is exported.
    zipkin_endpoint: str = ""

    service_auth_mode: Literal["jwt", "shared-secret"] = "jwt"
    service_keys_dir: Path = Field(default_factory=lambda: run_dir() / "keys")
    service_shared_secret: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    service_token_ttl_s: int = Field(default=30, ge=5, le=60)
    # Keys the HMAC of list cursors (common.pagination); instances of a service share it.
    cursor_secret: SecretStr = SecretStr(PLACEHOLDER_SECRET)

    # User access tokens are issued by auth and verified locally by everyone from its JWKS.
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    user_token_issuer: str = "auth"
    user_token_audience: str = "reservations"

    # -- time: the cascade of timeouts (client > gateway > service > dependency > DB) -------------
    # One table of every service's values: docs/patterns/resilient-http.md#timeouts, checked
    # against these settings by tests/contracts/test_timeouts.py (it fails if the order breaks).
    # Cap on any incoming request's time budget; callers may only shorten it (X-Deadline-Ms,
    # X-Deadline-At). Below the gateway's per-attempt timeout, so our own 503/504 reaches it first.
    request_timeout_s: float = Field(default=8.0, gt=0)
    # Per-attempt timeout for calls to other services (further bounded by the deadline).
    upstream_timeout_s: float = Field(default=2.0, gt=0)
    # Attempts in total; only fast failures (connect errors, broken connections, 502/503/504/429)
    # are retried, never a timeout.
    upstream_max_attempts: int = Field(default=3, ge=1, le=10)
    # Longest wait for a database lock inside a request (SQLite busy_timeout, PostgreSQL
    # lock_timeout/statement_timeout), further bounded by the request's remaining budget. Below
    # every caller's per-attempt timeout, so a locked database is our 503, not their timeout.
    db_lock_timeout_s: float = Field(default=2.0, gt=0)
    # The same for background work (relay, consumers, reapers): nobody waits on it, so it may
    # queue behind a long writer instead of failing and retrying.
    db_background_lock_timeout_s: float = Field(default=15.0, gt=0)

    # Circuit breaker (resilience4j's model): opens when at least ``breaker_minimum_calls`` calls
    # in the last ``breaker_window_s`` seconds failed at ``breaker_failure_rate`` or more.
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_minimum_calls: int = Field(default=10, ge=1)
    breaker_window_s: float = Field(default=10.0, gt=0)
    breaker_reset_timeout_s: float = Field(default=10.0, gt=0)
    # Calls in flight per upstream before failing fast; above what a healthy upstream ever needs.
    bulkhead_max_concurrent: int = Field(default=64, ge=1)
    # Several instances of an upstream: its `<name>_url` lists them, comma-separated, or names
    # them with `dns+http://name:port` (every address is an instance). Each attempt goes to the
    # instance with the fewest calls in flight (or the next in turn); an instance that fails
    # `outlier_consecutive_failures` attempts in a row is ejected for `outlier_ejection_s` x
    # its ejections in a row (at most `outlier_max_ejection_s`), then one readiness probe
    # decides. See docs/patterns/load-balancing.md.
    load_balancing: Literal["least-outstanding", "round-robin"] = "least-outstanding"
    outlier_consecutive_failures: int = Field(default=3, ge=1)
    outlier_ejection_s: float = Field(default=5.0, gt=0)
    outlier_max_ejection_s: float = Field(default=60.0, gt=0)
    discovery_refresh_s: float = Field(default=5.0, gt=0)  # how often dns+ names are looked up
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    # Run the outbox relay in this process. On SQLite one relay per service (the stack turns it
    # off in every instance but the first); on PostgreSQL every instance may run one.
    outbox_relay: bool = True
    consumer_max_attempts: int = Field(default=5, ge=1)

    # Fault switches set at start (off by default), a JSON list: ROOM_FAULTS='[{"name": "slow",
    # "kind": "latency", "where": "inbound", "match": "/api", "latency_ms": 800}]'. See common.faults.
    faults: list[NamedFault] = Field(default_factory=list)

    @model_validator(mode="after")
    def _defaults_and_secrets(self) -> Self:
        if not self.database_url:
            self.database_url = f"sqlite:///{run_dir() / 'data' / f'{self.service_name}.db'}"
        if self.management_port == 0:
            self.management_port = self.port + 1000 if self.port <= 64535 else self.port - 1000
        if self.management_port == self.port:
            raise ValueError("management_port must differ from port: they are two listeners")
        secret = self.service_shared_secret.get_secret_value()
        if self.env == "prod" and (secret == PLACEHOLDER_SECRET or len(secret) < 16):
            raise ValueError(
                "service_shared_secret is a placeholder or too short; set a real secret for env=prod"
            )
        cursor_secret = self.cursor_secret.get_secret_value()
        if self.env == "prod" and (cursor_secret == PLACEHOLDER_SECRET or len(cursor_secret) < 16):
            raise ValueError("cursor_secret is a placeholder or too short; set a real secret for env=prod")
        if self.env == "prod" and "*" in self.allowed_hosts:
            raise ValueError("allowed_hosts is '*'; name the Host headers this service answers for env=prod")
        if self.outlier_max_ejection_s < self.outlier_ejection_s:
            raise ValueError("outlier_max_ejection_s must be at least outlier_ejection_s")
        for name, value in self.upstream_urls().items():
            try:
                Discovery(value)
            except ValueError as exc:
                raise ValueError(f"{name}_url: {exc}") from None
        return self

    def upstream_urls(self) -> dict[str, str]:
        """Base URLs of every service this one calls, by name: its ``<name>_url`` fields.

        A value may list several instances (``common.http.discovery``)."""
        own = ("database_url", "jwks_url")
        return {
            field.removesuffix("_url"): getattr(self, field)
            for field in type(self).model_fields
            if field.endswith("_url") and field not in own
        }

    def upstream_timeout(self, upstream: str) -> float:
        """Per-attempt timeout of calls to ``upstream``: ``<name>_timeout_s`` if set, else the default."""
        value = getattr(self, f"{upstream}_timeout_s", self.upstream_timeout_s)
        return float(value)

    def sqlite_path(self) -> Path | None:
        """The database file when the URL is SQLite (so it can be created), else None."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url[len(prefix) :])
        return None
