"""Licenses: issue one (admin), activate a seat on a machine, list a user's activations."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from auth_service.adapters import repositories as repo
from auth_service.adapters.orm import Activation, License
from auth_service.domain.errors import AccountSuspended, UnknownLicense
from auth_service.domain.licenses import (
    ActivationDecision,
    LicenseStatus,
    decide_activation,
    generate_license_key,
    normalize_license_key,
)
from auth_service.domain.users import AccountStatus
from common.clock import Clock, utc_now
from common.db import Database
from common.errors import Unauthorized
from common.messaging import Outbox
from common.pagination import Page, PageRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedLicense:
    license_id: str
    license_key: str
    product: str
    seats: int
    status: str


@dataclass(frozen=True)
class ActivationView:
    activation_id: str
    license_id: str
    product: str
    machine_id: str
    activated_at: datetime
    seats_used: int
    seats_total: int

    @classmethod
    def of(cls, activation: Activation, license_: License, seats_used: int) -> ActivationView:
        return cls(
            activation_id=activation.activation_id,
            license_id=license_.license_id,
            product=license_.product,
            machine_id=activation.machine_id,
            activated_at=activation.activated_at,
            seats_used=seats_used,
            seats_total=license_.seats,
        )


class Licensing:
    """The license use cases, each one unit of work."""

    def __init__(self, db: Database, outbox: Outbox, clock: Clock = utc_now) -> None:
        self._db = db
        self._outbox = outbox
        self._clock = clock

    def issue(
        self, product: str, seats: int, *, created_by: str | None, license_key: str | None = None
    ) -> IssuedLicense:
        """A new active license; ``license_key`` fixes the key (demo data), else it is random."""
        license_ = License(
            license_id=str(uuid.uuid4()),
            license_key=normalize_license_key(license_key) if license_key else generate_license_key(),
            product=product,
            seats=seats,
            status=LicenseStatus.ACTIVE.value,
            created_at=self._clock(),
            created_by=created_by,
        )
        with self._db.transaction() as session:
            session.add(license_)
        # The id only: the key is a secret, it stays out of logs.
        log.info("license issued", extra={"license_id": license_.license_id, "seats": seats})
        return IssuedLicense(
            license_.license_id, license_.license_key, license_.product, license_.seats, license_.status
        )

    def exists(self, license_key: str) -> bool:
        with self._db.read() as session:
            return repo.license_exists(session, normalize_license_key(license_key))

    def activate(self, user_id: str, license_key: str, machine_id: str) -> ActivationView:
        """Bind a seat of the license to ``machine_id``.

        The seat belongs to the machine: activating a machine that holds one again (whoever
        asks) answers with its existing activation, takes no seat and publishes nothing.

        Count and insert happen in one write transaction holding the license, so concurrent
        activations can never take more seats than the license has.
        """
        with self._db.transaction() as session:
            user = repo.user_by_id(session, user_id)
            if user is None:
                # A valid token for a user that no longer exists: refuse it, don't fail on the FK.
                raise Unauthorized("the token's user does not exist")
            if user.status == AccountStatus.SUSPENDED:
                # The access token may still be valid (it lives until it expires): ask the status.
                raise AccountSuspended()
            license_ = repo.license_by_key_for_update(session, normalize_license_key(license_key))
            if license_ is None:
                raise UnknownLicense()
            existing = repo.activation_for_machine(session, license_.license_id, machine_id)
            used = repo.seats_used(session, license_.license_id)
            decision = decide_activation(
                status=LicenseStatus(license_.status),
                seats=license_.seats,
                seats_used=used,
                machine_has_seat=existing is not None,
            )
            if decision is ActivationDecision.EXISTING:
                assert existing is not None
                return ActivationView.of(existing, license_, used)
            activation = Activation(
                activation_id=str(uuid.uuid4()),
                license_id=license_.license_id,
                user_id=user_id,
                machine_id=machine_id,
                activated_at=self._clock(),
            )
            session.add(activation)
            session.flush()
            self._outbox.add(
                session,
                "LicenseActivated",
                key=license_.license_id,
                payload={
                    "activation_id": activation.activation_id,
                    "license_id": license_.license_id,
                    "user_id": user_id,
                    "machine_id": machine_id,
                    "product": license_.product,
                    "activated_at": activation.activated_at,
                },
            )
        log.info(
            "license activated",
            extra={"license_id": license_.license_id, "activation_id": activation.activation_id},
        )
        return ActivationView.of(activation, license_, used + 1)

    def activations_of(self, user_id: str, page: PageRequest) -> Page[ActivationView]:
        """One page of the user's activations, oldest first."""
        with self._db.read() as session:
            found = repo.activations_of_user(session, user_id, page)
        return Page([ActivationView.of(*row) for row in found.items], found.last)
