"""Gateway service settings: environment variables prefixed `GATEWAY_`."""

from typing import ClassVar, Self

import limits
from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from common.http.discovery import split_urls
from common.settings import ServiceSettings

JWKS_PATH = "/.well-known/jwks.json"


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "gateway"

    port: int = 8000

    auth_url: str = "http://127.0.0.1:8001"
    member_url: str = "http://127.0.0.1:8002"
    room_url: str = "http://127.0.0.1:8003"
    inventory_url: str = "http://127.0.0.1:8004"
    notification_url: str = "http://127.0.0.1:8005"

    # Requests per user (verified token `sub`), else per client IP, in a moving window
    # (`limits` notation: "600/minute", "20/second"). Generous: one user may fire 40 concurrent
    # reservations in the e2e tests, and every anonymous caller on this machine shares one IP.
    rate_limit: str = "600/minute"
    # Each dashboard part gets this long; a part that can't answer in time is left out.
    dashboard_part_timeout_s: float = Field(default=1.5, gt=0)
    # Where the ops console links a request's trace: ``<url>/zipkin/traces/<trace id>``.
    # Empty: no links (no trace UI runs). See docs/console.md.
    trace_links_base: str = ""

    # Overrides of the platform defaults, for the edge. Timeouts cascade (common.timeouts):
    # our budget > one attempt to a service > that service's own budget, so the service's
    # 503/504 problem reaches us before we give up on it; a timed-out attempt is never re-sent.
    request_timeout_s: float = Field(default=25.0, gt=0)
    upstream_timeout_s: float = Field(default=10.0, gt=0)
    # Auth's slowest legitimate call is a sign-up: an Argon2id hash, which took 9.6 s on a
    # loaded 2-core machine (issue 7). One attempt must cover auth's whole budget (15 s).
    auth_timeout_s: float = Field(default=20.0, gt=0)
    # Every public request passes here, so the bulkhead per upstream is wider.
    bulkhead_max_concurrent: int = Field(default=100, ge=1)

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        limits.parse(value)  # ValueError names the bad notation
        return value

    @model_validator(mode="after")
    def _jwks_from_auth(self) -> Self:
        # Auth serves the keys: follow GATEWAY_AUTH_URL unless GATEWAY_JWKS_URL says otherwise.
        if "jwks_url" not in self.model_fields_set:  # one per auth instance (common.http.discovery)
            self.jwks_url = ",".join(url.rstrip("/") + JWKS_PATH for url in split_urls(self.auth_url))
        return self

    def upstream_urls(self) -> dict[str, str]:
        """Base URL of every service the gateway routes to, by name."""
        return {
            "auth": self.auth_url,
            "member": self.member_url,
            "room": self.room_url,
            "inventory": self.inventory_url,
            "notification": self.notification_url,
        }
