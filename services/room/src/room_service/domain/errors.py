"""The room service's domain errors: each one is also the problem response the API gives."""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import Conflict, Forbidden, NotFound, UnprocessableContent


@dataclass(frozen=True)
class FieldError:
    """One broken rule, named by the request field it concerns."""

    field: str
    message: str
    code: str


class InvalidStay(UnprocessableContent):
    """The requested dates break a booking rule (422, with every broken rule listed)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(
            errors[0].message,
            # Same shape as the platform's schema-validation errors, so clients parse one format.
            extra={"errors": [{"loc": ["body", e.field], "msg": e.message, "type": e.code} for e in errors]},
        )
        self.errors = errors


class RoomNotFound(NotFound):
    def __init__(self, room_id: str) -> None:
        super().__init__(f"Room {room_id!r} does not exist.")


class ReservationNotFound(NotFound):
    # Also what another member's reservation looks like: its existence is not disclosed.
    def __init__(self, reservation_id: str) -> None:
        super().__init__(f"Reservation {reservation_id!r} not found.")


class MemberNotYetKnown(Conflict):
    """Sign-up is asynchronous: the member profile may lag the account by a moment."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "The member profile is not created yet; try again shortly.",
            retry_after=retry_after,
            slug="member-not-ready",
        )


class MemberNotActive(Forbidden):
    def __init__(self, status: str) -> None:
        super().__init__(f"The member is not active (status: {status}); reservations are not allowed.")


class NoAvailability(Conflict):
    def __init__(self, room_id: str) -> None:
        super().__init__(
            f"Room {room_id!r} is not available for every night of the requested stay.",
            slug="no-availability",
        )
