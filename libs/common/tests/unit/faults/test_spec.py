"""The fault spec: strict, consistent, with a TTL that always ends a switch."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from common.faults import FaultSpec, NamedFault


def _spec(**fields: Any) -> FaultSpec:
    return FaultSpec.model_validate(fields)


def test_defaults_a_switch_turns_itself_off_and_hits_every_call() -> None:
    spec = _spec(kind="error", where="inbound", match="/internal/holds")
    assert (spec.ttl_s, spec.probability, spec.max_hits, spec.methods) == (300, 1.0, None, None)
    assert spec.error_status == 503


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "latency", "where": "inbound", "match": "/a", "latency_ms": 10, "colour": "red"},  # extra
        {"kind": "latency", "where": "inbound", "match": "/a", "latency_ms": 120_001},
        {"kind": "latency", "where": "inbound", "match": "/a", "latency_ms": -1},
        {"kind": "latency", "where": "inbound", "match": "/a"},  # latency without latency_ms
        {"kind": "error", "where": "inbound", "match": "/a", "latency_ms": 5},  # latency_ms elsewhere
        {"kind": "error", "where": "inbound", "match": "/a", "status": 399},
        {"kind": "error", "where": "inbound", "match": "/a", "status": 600},
        {"kind": "hang", "where": "inbound", "match": "/a", "status": 500},  # status without error
        {"kind": "error", "where": "inbound", "match": "/a", "probability": 1.5},
        {"kind": "error", "where": "inbound", "match": "/a", "ttl_s": 0},
        {"kind": "error", "where": "inbound", "match": "/a", "ttl_s": 3601},
        {"kind": "error", "where": "inbound", "match": "/a", "ttl_s": None},
        {"kind": "error", "where": "inbound", "match": "/a", "max_hits": 0},
        {"kind": "error", "where": "inbound", "match": "/a", "ttl_s": "60"},  # strict: no strings
        {"kind": "error", "where": "inbound", "match": "internal"},  # not a path
        {"kind": "error", "where": "inbound", "match": ""},
        {"kind": "error", "where": "inbound", "match": "/a", "methods": ["FETCH"]},
        {"kind": "error", "where": "inbound", "match": "/a", "methods": []},
        {"kind": "pause", "where": "inbound", "match": "/a"},  # a worker fault on an HTTP seam
        {"kind": "drop", "where": "relay", "match": "*"},  # an HTTP fault on a worker
        {"kind": "pause", "where": "relay", "match": "room"},  # a relay is '*'
        {"kind": "pause", "where": "consumer", "match": "*", "methods": ["GET"]},
        {"kind": "pause", "where": "consumer", "match": "*", "max_hits": 1},
        {"kind": "sleep", "where": "inbound", "match": "/a"},
        {"where": "inbound", "match": "/a"},
    ],
)
def test_bad_specs_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _spec(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "latency", "where": "upstream", "match": "member", "latency_ms": 1500, "methods": ["GET"]},
        {"kind": "error", "where": "inbound", "match": "*", "status": 500, "probability": 0.5, "max_hits": 3},
        {"kind": "hang", "where": "inbound", "match": "/internal/holds", "methods": ["POST"], "ttl_s": 1},
        {"kind": "drop", "where": "upstream", "match": "inventory"},
        {"kind": "crash_after_send", "where": "relay", "match": "*", "max_hits": 1},
        {"kind": "pause", "where": "consumer", "match": "notification.mail", "ttl_s": 3600},
    ],
)
def test_good_specs_are_taken(fields: dict[str, Any]) -> None:
    assert _spec(**fields).kind == fields["kind"]


def test_a_named_fault_from_the_environment_needs_a_usable_name() -> None:
    base = {"kind": "pause", "where": "relay", "match": "*"}
    assert NamedFault.model_validate({**base, "name": "hold-relay"}).name == "hold-relay"
    for bad in ("", "has space", "../x", "x" * 65):
        with pytest.raises(ValidationError):
            NamedFault.model_validate({**base, "name": bad})
