"""Email addresses: one canonical form, so "Ann@Example.com" and "ann@example.com" are one account."""

from __future__ import annotations

import re

MAX_EMAIL_LENGTH = 254  # RFC 5321: the longest address a mail server has to accept
MAX_LOCAL_PART_LENGTH = 64

# A dot-atom local part (RFC 5322, no quoted strings) and a DNS host name with a TLD.
# Deliberately plain: a reference service validates the shape; only a mail proves the address.
_LOCAL_PART = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


class InvalidEmail(ValueError):
    """The text is not an email address we accept."""


def normalize_email(raw: str) -> str:
    """The canonical (trimmed, lower-case) form of ``raw``; ``InvalidEmail`` if it isn't an address."""
    email = raw.strip().lower()
    local, at, domain = email.rpartition("@")
    if not (
        at
        and len(email) <= MAX_EMAIL_LENGTH
        and len(local) <= MAX_LOCAL_PART_LENGTH
        and _LOCAL_PART.fullmatch(local)
        and _DOMAIN.fullmatch(domain)
    ):
        raise InvalidEmail("not a valid email address")
    return email
