"""Inventory service settings: environment variables prefixed `INVENTORY_`."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "inventory"

    port: int = 8004
    # Below room's per-attempt timeout of a hold (ROOM_INVENTORY_TIMEOUT_S): a hold queued behind
    # other writers is our 503 problem (nothing held) before room gives up on an unknown outcome.
    db_lock_timeout_s: float = Field(default=2.5, gt=0)
    # A hold room never confirmed (no ReservationCreated) is released after this many seconds.
    hold_ttl_s: float = Field(default=300.0, gt=0)
    # How often the reaper looks for expired holds, and how many it expires per transaction batch.
    reaper_interval_s: float = Field(default=5.0, gt=0)
    reaper_batch_size: int = Field(default=100, ge=1)
