from common.migrations import run_alembic_env
from inventory_service.adapters.orm import metadata
from inventory_service.settings import InventorySettings

run_alembic_env(metadata, default_url=InventorySettings().database_url)
