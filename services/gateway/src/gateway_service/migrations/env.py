from common.migrations import run_alembic_env
from gateway_service.adapters.orm import metadata
from gateway_service.settings import GatewaySettings

run_alembic_env(metadata, default_url=GatewaySettings().database_url)
