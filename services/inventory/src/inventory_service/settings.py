"""Inventory service settings: environment variables prefixed `INVENTORY_`."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "inventory"

    port: int = 8004
    # A hold room never confirmed (no ReservationCreated) is released after this many seconds.
    hold_ttl_s: float = Field(default=300.0, gt=0)
    # How often the reaper looks for expired holds, and how many it expires per transaction batch.
    reaper_interval_s: float = Field(default=5.0, gt=0)
    reaper_batch_size: int = Field(default=100, ge=1)
