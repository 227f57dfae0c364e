"""The room service's tables: its own metadata, its own database."""

from sqlalchemy.orm import DeclarativeBase

from common.messaging import messaging_tables


class Base(DeclarativeBase):
    pass


metadata = Base.metadata
messaging = messaging_tables(metadata)
