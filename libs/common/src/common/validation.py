"""Strings a user gives and others see: one set of rules, as annotated pydantic types.

A name or an id typed by a user ends up in a mail header, a log line, an HTML page or another
service's database. What must never get there:

- control characters (NUL, CR, LF, TAB, ESC, ... : Unicode category Cc) and the line and
  paragraph separators U+2028/U+2029: they split a header or a log line in two (a CRLF in a
  mail subject is header injection);
- the bidirectional marks, overrides and isolates (U+200E, U+200F, U+061C, U+202A..U+202E and
  U+2066..U+2069): they make text
  display in another order than it is stored ("Trojan Source", spoofed names and file types);
- lone surrogates (a JSON ``"\\ud800"`` decodes to one): they cannot be encoded as UTF-8, so
  they would fail later, far from the request.

Text is trimmed and its length checked, then its characters, then it is NFC-normalized (one
stored form for what looks the same; NFC does not lengthen text in practice). A refusal is a
``ValueError``, so FastAPI answers 422 with a problem naming the field. Use ``DisplayName`` or
``Identifier``, or ``Annotated[str, StringConstraints(strip_whitespace=True, max_length=...),
SAFE_TEXT]`` for other fields.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

BIDI_CONTROLS = frozenset(
    chr(c) for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
_FORBIDDEN_CATEGORIES = {"Cc": "a control character", "Zl": "a line separator", "Zp": "a paragraph separator"}


def unsafe_character(text: str) -> str | None:
    """A description of the first character ``text`` must not contain, or ``None`` if all are fine."""
    for char in text:
        if char in BIDI_CONTROLS:
            return f"a bidirectional control character (U+{ord(char):04X})"
        category = unicodedata.category(char)
        if category in _FORBIDDEN_CATEGORIES:
            return f"{_FORBIDDEN_CATEGORIES[category]} (U+{ord(char):04X})"
        if category == "Cs":
            return f"a lone surrogate (U+{ord(char):04X})"
    return None


def _safe(value: str) -> str:
    problem = unsafe_character(value)
    if problem is not None:
        raise ValueError(f"must not contain {problem}")
    return unicodedata.normalize("NFC", value)


def _matching(pattern: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(f"must match {pattern}")
        return value

    return AfterValidator(check)


# The character check, to put after a StringConstraints (trimming and length first, so a
# refusal for length reads "String should have at most 100 characters").
SAFE_TEXT = AfterValidator(_safe)

# A person's name as others see it: any script, 1 to 100 characters.
DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SAFE_TEXT
]
# An identifier a client makes up (a machine, a device): 1 to 128 ASCII letters, digits,
# inner spaces and . _ : @ -, starting with a letter or digit.
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    SAFE_TEXT,
    _matching(r"[A-Za-z0-9][A-Za-z0-9 ._:@-]*"),
]
