"""Event handlers: auth consumes member's MemberUpdated to learn about suspensions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from auth_service.service_layer.member_status import apply_member_update
from common.clock import Clock, utc_now
from common.messaging import Envelope, Handler


def member_handlers(clock: Clock = utc_now) -> Mapping[str, Handler]:
    def member_updated(session: Session, _envelope: Envelope, event: dict[str, Any]) -> None:
        apply_member_update(session, event, clock())

    return {"MemberUpdated": member_updated}
