"""Metrics of the inventory service's own (beyond the platform's)."""

from prometheus_client import Counter

OVERSOLD = Counter(
    "inventory_oversold_total",
    "Reservations stored by room whose nights inventory could not book (hold expired, room full)",
)
HOLDS_EXPIRED = Counter("inventory_holds_expired_total", "Unconfirmed holds released by the reaper")
