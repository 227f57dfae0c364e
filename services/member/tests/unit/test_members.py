"""Member rules: versions move only on real changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from member_service.domain import history
from member_service.domain.members import Member

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_new_member_is_active_standard_version_one() -> None:
    member = Member.register("m1", "ann@example.com", "  Ann  ", T0)
    assert (member.status, member.tier, member.version, member.display_name) == (
        "active",
        "standard",
        1,
        "Ann",
    )
    assert member.active
    assert Member.register("m2", "bo@example.com", None, T0).display_name == "bo"
    assert Member.register("m3", "cy@example.com", "   ", T0).display_name == "cy"


def test_each_real_change_bumps_the_version_once() -> None:
    member = Member.register("m1", "ann@example.com", "Ann", T0)
    later = T0 + timedelta(minutes=1)
    assert member.rename("Ann B", later)
    assert (member.version, member.updated_at) == (2, later)
    assert not member.rename("Ann B", later + timedelta(minutes=1))
    assert (member.version, member.updated_at) == (2, later)
    assert member.suspend(later)
    assert (member.version, member.status, member.active) == (3, "suspended", False)
    assert not member.suspend(later)
    assert member.version == 3


def test_history_entries_from_events() -> None:
    entry = history.from_reservation_created(
        "e1",
        {
            "reservation_id": "r-1",
            "member_id": "m1",
            "room_id": "r101",
            "check_in": date(2030, 2, 1),
            "check_out": date(2030, 2, 3),
            "nights": 2,
            "created_at": T0,
        },
    )
    assert (entry.member_id, entry.kind, entry.ref_id, entry.at) == ("m1", "reservation_created", "r-1", T0)
    assert entry.details == {
        "room_id": "r101",
        "check_in": "2030-02-01",
        "check_out": "2030-02-03",
        "nights": 2,
    }
    license_entry = history.from_license_activated(
        "e2",
        {
            "activation_id": "a-1",
            "license_id": "l-1",
            "user_id": "m1",
            "machine_id": "pc",
            "product": "studio",
            "activated_at": T0,
        },
    )
    assert (license_entry.member_id, license_entry.kind, license_entry.ref_id) == (
        "m1",
        "license_activated",
        "a-1",
    )
