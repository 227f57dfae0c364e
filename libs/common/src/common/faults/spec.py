"""What a fault switch says: the spec an admin sends, and the switch the service stores.

A spec names *what* goes wrong (``kind``), *where* (``where`` + ``match``) and for how long
(``ttl_s``, required with a default, so a forgotten switch turns itself off). Specs are strict
(unknown fields, out-of-range numbers and kinds that make no sense at a seam are refused): a
bad switch is a 422, never a fault nobody asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

FaultKind = Literal["latency", "error", "hang", "drop", "crash_after_send", "pause"]
FaultSeam = Literal["inbound", "upstream", "relay", "consumer"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

ANY = "*"
DEFAULT_ERROR_STATUS = 503
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

# Which kinds each seam can inject: HTTP faults on HTTP seams, worker faults on workers.
KINDS_AT: dict[str, frozenset[str]] = {
    "inbound": frozenset({"latency", "error", "hang", "drop"}),
    "upstream": frozenset({"latency", "error", "hang", "drop"}),
    "relay": frozenset({"pause", "crash_after_send"}),
    "consumer": frozenset({"pause", "crash_after_send"}),
}


class FaultSpec(BaseModel):
    """One fault: the body of ``PUT /admin/faults/{name}``."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "kind": "latency",
                    "where": "inbound",
                    "match": "/internal",
                    "latency_ms": 3000,
                    "ttl_s": 120,
                }
            ]
        },
    )

    kind: FaultKind
    where: FaultSeam
    match: str = Field(
        min_length=1,
        max_length=200,
        description="inbound: a path prefix (/internal/holds); upstream: an upstream name (member); "
        "relay: *; consumer: a group name (notification.reservations) or *",
    )
    methods: list[HttpMethod] | None = Field(
        default=None, min_length=1, description="inbound/upstream only: the methods hit (default: all)"
    )
    latency_ms: int | None = Field(default=None, ge=0, le=120_000, description="latency only: the delay")
    status: int | None = Field(default=None, ge=400, le=599, description="error only (default 503)")
    probability: float = Field(default=1.0, ge=0, le=1, description="the share of matching calls hit")
    ttl_s: int = Field(default=300, ge=1, le=3600, description="the switch turns itself off after this")
    max_hits: int | None = Field(default=None, ge=1, description="...or after this many injections")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind not in KINDS_AT[self.where]:
            allowed = ", ".join(sorted(KINDS_AT[self.where]))
            raise ValueError(f"kind {self.kind!r} cannot be injected {self.where}: use one of {allowed}")
        if self.where == "inbound" and self.match != ANY and not self.match.startswith("/"):
            raise ValueError("an inbound match is a path prefix starting with '/' (or '*')")
        if self.where == "relay" and self.match != ANY:
            raise ValueError("a relay match is '*' (a service has one relay)")
        if self.methods is not None and self.where not in ("inbound", "upstream"):
            raise ValueError("methods apply to inbound and upstream faults only")
        if (self.latency_ms is None) != (self.kind != "latency"):
            raise ValueError("latency_ms is required for kind 'latency' and allowed for it only")
        if self.status is not None and self.kind != "error":
            raise ValueError("status applies to kind 'error' only")
        if self.kind == "pause" and (self.max_hits is not None or self.probability != 1):
            raise ValueError("a pause holds until it expires or is deleted: no max_hits or probability")
        return self

    @property
    def error_status(self) -> int:
        return self.status if self.status is not None else DEFAULT_ERROR_STATUS


class NamedFault(FaultSpec):
    """A spec with its name: one item of ``<PREFIX>_FAULTS`` (switches set at start)."""

    name: str = Field(pattern=NAME_PATTERN)


class FaultSwitch(FaultSpec):
    """A stored switch, as the admin API shows it."""

    model_config = ConfigDict(json_schema_extra=None)  # the spec's example is not a stored switch

    name: str
    set_at: datetime
    expires_at: datetime
    hits: int = Field(ge=0, description="faults injected so far")


class FaultList(BaseModel):
    """The body of ``GET /admin/faults``."""

    faults: list[FaultSwitch]
