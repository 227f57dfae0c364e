from common.migrations import run_alembic_env
from room_service.adapters.orm import metadata
from room_service.settings import RoomSettings

run_alembic_env(metadata, default_url=RoomSettings().database_url)
