"""Member service settings: environment variables prefixed `MEMBER_`."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class MemberSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEMBER_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "member"

    port: int = 8002
    # Below room's per-attempt timeout (ROOM_MEMBER_TIMEOUT_S); room's calls only read (WAL
    # readers wait for nobody), so this binds the profile updates coming through the gateway.
    db_lock_timeout_s: float = Field(default=1.5, gt=0)
