"""Room service settings: environment variables prefixed `ROOM_`."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class RoomSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROOM_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "room"

    port: int = 8003

    member_url: str = "http://127.0.0.1:8002"
    inventory_url: str = "http://127.0.0.1:8004"
