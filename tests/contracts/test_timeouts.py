"""The cascade of timeouts is ordered: client > gateway > service > dependency > DB (issue 7, fault 4).

One table, read from every service's settings (``common.timeouts``): the test fails when one
layer would give up later than the layer waiting for it, or when the table in
docs/patterns/resilient-http.md no longer shows what the settings say.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auth_service.settings import AuthSettings
from common.settings import ServiceSettings
from common.timeouts import chains, markdown_table
from gateway_service.settings import GatewaySettings
from inventory_service.settings import InventorySettings
from member_service.settings import MemberSettings
from notification_service.settings import NotificationSettings
from room_service.settings import RoomSettings

DOC = Path(__file__).parents[2] / "docs" / "patterns" / "resilient-http.md"
BEGIN, END = "<!-- timeouts:begin -->", "<!-- timeouts:end -->"


def defaults(**overrides: ServiceSettings) -> dict[str, ServiceSettings]:
    found: dict[str, ServiceSettings] = {
        cls.service_name: cls()
        for cls in (
            GatewaySettings,
            AuthSettings,
            MemberSettings,
            RoomSettings,
            InventorySettings,
            NotificationSettings,
        )
    }
    return {**found, **overrides}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The defaults are under test, not this machine's environment.
    for name in list(os.environ):
        if name.split("_", 1)[0] in {"GATEWAY", "AUTH", "MEMBER", "ROOM", "INVENTORY", "NOTIFICATION"}:
            monkeypatch.delenv(name)


def test_every_path_waits_longer_outside_than_inside() -> None:
    services = defaults()
    found = chains(services["gateway"], services)

    assert {c.path for c in found} >= {
        "gateway → auth",
        "gateway → room → member",
        "gateway → room → inventory",
    }
    assert [v for chain in found for v in chain.violations()] == []


def test_a_broken_order_is_named() -> None:
    services = defaults(room=RoomSettings(member_timeout_s=9.0))

    broken = [v for chain in chains(services["gateway"], services) for v in chain.violations()]

    assert broken == [
        "gateway → room → member: ROOM_REQUEST_TIMEOUT_S=8 s must exceed ROOM_MEMBER_TIMEOUT_S=9 s"
    ]


def test_the_gateways_attempt_to_auth_covers_a_slow_sign_up() -> None:
    # Auth logged 201 after 9.6 s under load while the user got the gateway's 503 (issue 7).
    services = defaults()
    assert services["gateway"].upstream_timeout("auth") > services["auth"].request_timeout_s > 9.6


def test_the_docs_table_shows_what_the_settings_say() -> None:
    services = defaults()
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text, f"{DOC} lost its timeouts table markers"
    assert END in text, f"{DOC} lost its timeouts table markers"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()

    expected = markdown_table(chains(services["gateway"], services))
    assert shown == expected, f"update the table in {DOC} to:\n{expected}"
