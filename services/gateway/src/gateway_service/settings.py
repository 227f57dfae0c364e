"""Gateway service settings: environment variables prefixed `GATEWAY_`."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "gateway"

    port: int = 8000

    auth_url: str = "http://127.0.0.1:8001"
    member_url: str = "http://127.0.0.1:8002"
    room_url: str = "http://127.0.0.1:8003"
    inventory_url: str = "http://127.0.0.1:8004"
    notification_url: str = "http://127.0.0.1:8005"
