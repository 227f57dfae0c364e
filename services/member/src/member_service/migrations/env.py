from common.migrations import run_alembic_env
from member_service.adapters.orm import metadata
from member_service.settings import MemberSettings

run_alembic_env(metadata, default_url=MemberSettings().database_url)
