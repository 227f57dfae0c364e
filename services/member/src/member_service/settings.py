"""Member service settings: environment variables prefixed `MEMBER_`."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class MemberSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEMBER_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "member"

    port: int = 8002
