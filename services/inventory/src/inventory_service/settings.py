"""Inventory service settings: environment variables prefixed `INVENTORY_`."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "inventory"

    port: int = 8004
