from common.migrations import run_alembic_env
from notification_service.adapters.orm import metadata
from notification_service.settings import NotificationSettings

run_alembic_env(metadata, default_url=NotificationSettings().database_url)
