"""Clients of the services room asks synchronously: member (is this member active?) and
inventory (hold the nights). They turn HTTP answers into facts; the use case decides policy.

Calls go through the platform's ``ServiceClient`` (deadline, retries where safe, breaker,
bulkhead, service token). Its 503/504 problems are left to propagate: they already are the
right answer for our caller ("try again later", with ``Retry-After``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from common.context import Deadline, deadline_var
from common.errors import ProblemError
from common.http import ServiceClient
from room_service.domain.model import Reservation

log = logging.getLogger(__name__)


class UnexpectedUpstreamAnswer(ProblemError):
    """The other service answered something its API does not promise (a bug, not an outage)."""

    status, title, slug = 502, "Bad Gateway", "upstream-unexpected"


def _unexpected(upstream: str, response: httpx.Response) -> UnexpectedUpstreamAnswer:
    log.error(
        "unexpected answer from %s: %s %s",
        upstream,
        response.status_code,
        response.text[:200],
        extra={"upstream": upstream, "upstream_status": response.status_code},
    )
    return UnexpectedUpstreamAnswer(
        f"{upstream} gave an unexpected answer ({response.status_code}).", extra={"upstream": upstream}
    )


# -- member ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberStanding:
    member_id: str
    status: str
    active: bool


class _MemberOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    member_id: str
    status: str
    active: bool


class MemberDirectory:
    """``GET /internal/members/{id}`` on the member service."""

    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def standing(self, member_id: str) -> MemberStanding | None:
        """The member's standing, or None when member has no profile for them (yet)."""
        response = await self._client.get(f"/internal/members/{quote(member_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _unexpected("member", response)
        try:
            member = _MemberOut.model_validate_json(response.content)
        except ValidationError:
            raise _unexpected("member", response) from None
        return MemberStanding(member.member_id, member.status, member.active)


# -- inventory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """Nights inventory holds for a reservation until it is confirmed (or the hold expires)."""

    reservation_id: str
    room_id: str
    check_in: date
    check_out: date

    def covers(self, reservation: Reservation) -> bool:
        """Is this the hold ``reservation`` asked for (same room, same nights)?"""
        return (self.reservation_id, self.room_id, self.check_in, self.check_out) == (
            reservation.reservation_id,
            reservation.room_id,
            reservation.check_in,
            reservation.check_out,
        )


class HoldRefused(StrEnum):
    """Why inventory did not hold the nights."""

    NO_AVAILABILITY = "no_availability"  # some night is full, or the room is unknown to inventory
    OTHER_STAY = "other_stay"  # this reservation id already holds another room or other dates


class _HoldOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reservation_id: str
    room_id: str
    check_in: date
    check_out: date


class InventoryHolds:
    """``POST /internal/holds`` and ``DELETE /internal/holds/{reservation_id}`` on inventory."""

    def __init__(self, client: ServiceClient, *, release_timeout_s: float) -> None:
        self._client = client
        self._release_timeout_s = release_timeout_s

    async def hold(self, reservation: Reservation) -> Hold | HoldRefused:
        """Hold the reservation's nights, all or none.

        The reservation id is also the Idempotency-Key: inventory deduplicates on it, so the
        client may retry the POST after a timeout without holding twice.
        """
        response = await self._client.post(
            "/internal/holds",
            json={
                "reservation_id": reservation.reservation_id,
                "room_id": reservation.room_id,
                "check_in": reservation.check_in.isoformat(),
                "check_out": reservation.check_out.isoformat(),
            },
            idempotency_key=reservation.reservation_id,
        )
        match response.status_code:
            case 200 | 201:
                try:
                    hold = _HoldOut.model_validate_json(response.content)
                except ValidationError:
                    raise _unexpected("inventory", response) from None
                return Hold(hold.reservation_id, hold.room_id, hold.check_in, hold.check_out)
            case 409:
                return HoldRefused.NO_AVAILABILITY
            case 404:
                # Our catalog has the room but inventory has no calendar for it: nothing to book.
                log.warning("inventory does not know room %s", reservation.room_id)
                return HoldRefused.NO_AVAILABILITY
            case 422:
                # Our dates passed stricter rules than inventory's, so this is its other 422:
                # the id (hence the idempotency key) is already used for another stay.
                return HoldRefused.OTHER_STAY
            case _:
                raise _unexpected("inventory", response)

    async def release(self, reservation_id: str) -> bool:
        """Best effort: give the hold back; False when that failed (the hold then expires by TTL).

        Runs on its own time budget: the request's may be exactly what ran out.
        """
        token = deadline_var.set(Deadline.after(self._release_timeout_s))
        try:
            response = await self._client.delete(f"/internal/holds/{quote(reservation_id, safe='')}")
        except ProblemError as exc:
            log.warning("could not release hold %s (it will expire): %s", reservation_id, exc.detail)
            return False
        finally:
            deadline_var.reset(token)
        if response.status_code >= 300:
            log.warning(
                "could not release hold %s (it will expire): inventory answered %s",
                reservation_id,
                response.status_code,
            )
            return False
        log.info("released hold %s", reservation_id)
        return True
