"""Auth service settings: environment variables prefixed `AUTH_`."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "auth"

    port: int = 8001

    member_url: str = "http://127.0.0.1:8002"
