"""Reading each dashboard part, and what makes the dashboard degraded."""

from __future__ import annotations

from gateway_service.domain.dashboard import PARTS, Missing, assemble, read_part

PROFILE, RESERVATIONS, LICENSES, NOTIFICATIONS = PARTS


def test_lists_are_their_items_and_the_profile_is_the_object():
    assert read_part(RESERVATIONS, 200, {"items": [{"id": 1}]}) == [{"id": 1}]
    assert read_part(PROFILE, 200, {"member_id": "m"}) == {"member_id": "m"}


def test_no_profile_yet_is_none_but_other_404s_are_missing():
    assert read_part(PROFILE, 404, {"status": 404}) is None
    assert isinstance(read_part(LICENSES, 404, None), Missing)


def test_errors_and_unexpected_shapes_are_missing():
    assert isinstance(read_part(RESERVATIONS, 403, None), Missing)
    assert isinstance(read_part(RESERVATIONS, 200, {"items": "nope"}), Missing)
    assert isinstance(read_part(RESERVATIONS, 200, None), Missing)
    assert isinstance(read_part(PROFILE, 200, ["not", "an", "object"]), Missing)


def test_assemble_names_missing_parts_in_order_and_nulls_them():
    document = assemble(
        {
            "profile": None,
            "reservations": Missing("room answered 503"),
            "licenses": [],
            "notifications": Missing("timeout"),
        }
    )

    assert document == {
        "profile": None,
        "reservations": None,
        "licenses": [],
        "notifications": None,
        "degraded": True,
        "missing": ["reservations", "notifications"],
    }


def test_assemble_without_failures_is_not_degraded():
    document = assemble({"profile": {}, "reservations": [], "licenses": [], "notifications": []})

    assert document["degraded"] is False
    assert document["missing"] == []
