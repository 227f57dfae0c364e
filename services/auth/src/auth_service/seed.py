"""Demo data (`python -m auth_service seed`): an admin and a demo license. Idempotent."""

from __future__ import annotations

from auth_service.adapters.orm import messaging
from auth_service.bootstrap import build_password_hasher
from auth_service.domain.users import Role
from auth_service.service_layer.accounts import Accounts
from auth_service.service_layer.licensing import Licensing
from auth_service.settings import DEFAULT_ADMIN_PASSWORD, AuthSettings
from common.db import Database
from common.messaging import AvroCodec, Outbox

ADMIN_DISPLAY_NAME = "Admin"
DEMO_LICENSE_KEY = "DEMO-0000-0000-0001"  # fixed, so the README's curl lines work
DEMO_PRODUCT = "Reservations Pro"
DEMO_SEATS = 3
MIN_PASSWORD_LENGTH = 8  # as for anyone signing up


def seed(settings: AuthSettings) -> None:
    """Create what is missing; the outbox rows wait for the running service's relay."""
    password = settings.admin_password.get_secret_value()
    if settings.env == "prod" and password == DEFAULT_ADMIN_PASSWORD:
        raise SystemExit("refusing to seed the default admin password in prod: set AUTH_ADMIN_PASSWORD")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(f"AUTH_ADMIN_PASSWORD must have at least {MIN_PASSWORD_LENGTH} characters")
    db = Database(settings.database_url)
    try:
        outbox = Outbox(messaging, AvroCodec.from_contracts(), producer_name=settings.service_name)
        accounts = Accounts(db, outbox, build_password_hasher(settings))
        admin = accounts.find_by_email(settings.admin_email)
        if admin is None:
            # Signed up like anyone (UserRegistered included), so member and notification know the admin.
            admin = accounts.signup(settings.admin_email, password, ADMIN_DISPLAY_NAME, role=Role.ADMIN)
            print(f"auth seed: created admin {admin.email} (user_id {admin.user_id})")
        else:
            print(f"auth seed: admin {admin.email} already exists (roles: {', '.join(admin.roles)})")

        licensing = Licensing(db, outbox)
        if licensing.exists(DEMO_LICENSE_KEY):
            print(f"auth seed: demo license {DEMO_LICENSE_KEY} already exists")
        else:
            issued = licensing.issue(
                DEMO_PRODUCT, DEMO_SEATS, created_by=admin.user_id, license_key=DEMO_LICENSE_KEY
            )
            print(
                f"auth seed: created demo license {issued.license_key}"
                f" ({issued.product}, {issued.seats} seats)"
            )
    finally:
        db.dispose()
