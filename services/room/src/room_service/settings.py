"""Room service settings: environment variables prefixed `ROOM_`."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class RoomSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROOM_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "room"

    port: int = 8003

    member_url: str = "http://127.0.0.1:8002"
    inventory_url: str = "http://127.0.0.1:8004"

    # Per-attempt timeouts of the synchronous checks (common.timeouts): below our own budget,
    # so our 503 (with Retry-After) reaches the gateway before it gives up on us; the request's
    # deadline bounds every attempt further, and a timed-out attempt is never repeated, so this
    # is also when the first 503 for a hung member arrives. Fitted to room -> member latency
    # under a burst of 50 parallel reservations on a 2-core machine: all within 0.75 s idle;
    # 1.0 s timed out under load (issue 7), so twice the slowest idle answer.
    member_timeout_s: float = Field(default=2.0, gt=0)
    # A hold is a write transaction on inventory's side and queues behind the others of a burst
    # (all within 1.0 s idle in the same measurement).
    inventory_timeout_s: float = Field(default=3.0, gt=0)
    # Budget of the compensating "release the hold" call, separate from the request's
    # (which may be what ran out).
    release_hold_timeout_s: float = Field(default=2.0, gt=0)
    # Calls in flight per upstream before failing fast (platform default 20): a burst of
    # reservations for one room (the e2e fires 40 at once) must reach inventory and get its
    # 409s, not our bulkhead's 503s. Each call is short and bounded by the timeouts above.
    bulkhead_max_concurrent: int = Field(default=64, ge=1)
    # Retry-After of the 409 for a member whose profile is not created yet (UserRegistered in flight).
    member_profile_retry_after_s: int = Field(default=2, ge=1)
