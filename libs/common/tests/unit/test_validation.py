"""User-visible strings: what is refused (controls, bidi overrides, lengths), what is kept."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from common.validation import DisplayName, Identifier, unsafe_character


class Profile(BaseModel):
    display_name: DisplayName


class Activation(BaseModel):
    machine_id: Identifier


def refusal(model: type[BaseModel], **fields: str) -> str:
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    (error,) = caught.value.errors()
    return str(error["msg"])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Ada\x00", "control character (U+0000)"),
        ("Ada\r\nBcc: x@evil.example", "control character (U+000D)"),
        ("Ada\nLovelace", "control character (U+000A)"),
        ("Ada\tL", "control character (U+0009)"),
        ("Ada\x1b[31m", "control character (U+001B)"),
        ("Ada\x7f", "control character (U+007F)"),
        ("Ada\u0085L", "control character (U+0085)"),
        ("Ada\u2028L", "line separator (U+2028)"),
        ("Ada\u2029L", "paragraph separator (U+2029)"),
        *(
            (f"Ada{chr(c)}nimda.exe", f"bidirectional control character (U+{c:04X})")
            for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
        ),
    ],
)
def test_control_and_bidi_characters_are_refused(text: str, reason: str) -> None:
    assert reason in refusal(Profile, display_name=text)
    assert reason in refusal(Activation, machine_id=f"m{text}")


def test_a_lone_surrogate_is_refused() -> None:
    assert unsafe_character("Ada\ud800") == "a lone surrogate (U+D800)"
    refusal(Profile, display_name="Ada\ud800")


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("  Ada Lovelace  ", "Ada Lovelace"),
        ("Zoë Ødegård", "Zoë Ødegård"),
        ("Zoe\u0308", "Zo\u00eb"),  # NFC: one stored form for what looks the same
        ("山田 太郎", "山田 太郎"),
        ("عائشة", "عائشة"),  # right-to-left text itself is fine; overriding the order is not
        ("x" * 100, "x" * 100),
    ],
)
def test_names_in_any_script_are_kept_trimmed_and_normalized(text: str, stored: str) -> None:
    assert Profile(display_name=text).display_name == stored


@pytest.mark.parametrize("text", ["", "   ", "x" * 101])
def test_display_names_have_bounded_length(text: str) -> None:
    assert "String should have" in refusal(Profile, display_name=text)


@pytest.mark.parametrize("machine_id", ["laptop-1", "pc 7", "host.example:1", "u@h_2"])
def test_identifiers_accept_plain_ascii(machine_id: str) -> None:
    assert Activation(machine_id=machine_id).machine_id == machine_id


@pytest.mark.parametrize("machine_id", ["-x", "é", "a/b", "<script>", "m" * 129, ""])
def test_identifiers_refuse_anything_else(machine_id: str) -> None:
    refusal(Activation, machine_id=machine_id)
