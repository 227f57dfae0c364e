"""The shared deployment table itself: it reads the code, so check it reads it right."""

from __future__ import annotations

import pytest

from .catalogue import BY_NAME, DEPLOYED, READY_PATH, unpinned_reason


def test_the_table_is_the_runners() -> None:
    assert [s.name for s in DEPLOYED] == ["gateway", "auth", "member", "room", "inventory", "notification"]
    assert (BY_NAME["room"].port, BY_NAME["room"].management_port) == (8003, 9003)
    assert BY_NAME["room"].distribution == "room-service"
    assert READY_PATH == "/health/ready"


def test_settings_classes_and_their_variables() -> None:
    room = BY_NAME["room"]
    assert room.settings_class.__name__ == "RoomSettings"
    assert {"ROOM_PORT", "ROOM_MEMBER_URL", "ROOM_HOLD_TTL_S"} & room.env_names == {
        "ROOM_PORT",
        "ROOM_MEMBER_URL",
    }
    # Host-bound defaults are required, tuning knobs are not.
    assert {
        "ROOM_MEMBER_URL",
        "ROOM_HOST",
        "ROOM_CURSOR_SECRET",
        "ROOM_SERVICE_KEYS_DIR",
    } <= room.required_env_names
    assert "ROOM_MEMBER_TIMEOUT_S" not in room.required_env_names
    assert {"AUTH_ADMIN_PASSWORD", "AUTH_USER_TOKEN_KEYS_DIR"} <= BY_NAME["auth"].required_env_names
    assert "NOTIFICATION_SMTP_HOST" in BY_NAME["notification"].required_env_names
    assert "NOTIFICATION_SMTP_PASSWORD" not in BY_NAME["notification"].required_env_names  # empty by default


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("apache/kafka:4.1.1", True),
        ("axllent/mailpit:v1.30.5", True),
        ("python:3.12.14-slim-trixie", True),
        ("postgres:18.6", True),
        ("ghcr.io/astral-sh/uv:0.13.9", True),
        ("localhost:5000/x@sha256:" + "a" * 64, True),
        ("postgres", False),
        ("postgres:latest", False),
        ("postgres:18", False),
        ("ghcr.io/astral-sh/uv:debian-slim", False),
        ("localhost:5000/x", False),
    ],
)
def test_pinned_images(image: str, pinned: bool) -> None:
    assert (unpinned_reason(image) is None) is pinned, unpinned_reason(image)
