"""Email normalization: one canonical form per address; junk is refused."""

from __future__ import annotations

import pytest

from auth_service.domain.emails import InvalidEmail, normalize_email


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("ANN+tag@mail.example.co.uk", "ann+tag@mail.example.co.uk"),
        ("o'brien@x-y.example.org", "o'brien@x-y.example.org"),
    ],
)
def test_addresses_are_trimmed_and_lower_cased(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@@example.com",
        "a@b@example.com",
        "ann lee@example.com",
        "ann..lee@example.com",
        ".ann@example.com",
        "ann@-example.com",
        "ann@example..com",
        "ann@example.c",
        "a" * 65 + "@example.com",
        "ann@" + "a" * 250 + ".com",
        "ann\n@example.com",
    ],
)
def test_junk_is_refused(raw: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(raw)


def test_an_invalid_email_is_a_value_error_so_validation_reports_it_as_422() -> None:
    assert issubclass(InvalidEmail, ValueError)
