from auth_service.adapters.orm import metadata
from auth_service.settings import AuthSettings
from common.migrations import run_alembic_env

run_alembic_env(metadata, default_url=AuthSettings().database_url)
