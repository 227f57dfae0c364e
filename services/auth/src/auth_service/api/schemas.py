"""Request and response bodies of the auth API (see docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from auth_service.domain.emails import MAX_EMAIL_LENGTH, normalize_email
from common.pagination import PageBody
from common.validation import SAFE_TEXT, DisplayName, Identifier


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Every string a user gives and others see is checked by common.validation: no control or
# bidi characters (a CRLF in a machine id would otherwise reach a mail header), bounded length.
ProductName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), SAFE_TEXT
]
# Keys are typed by hand: letters, digits and dashes (compared upper-case).
LicenseKey = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
]


class SignupRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct-horse", "display_name": "Ada"}]
        }
    )

    email: Annotated[str, Field(max_length=MAX_EMAIL_LENGTH + 50)]
    password: Annotated[str, Field(min_length=8, max_length=128)]
    display_name: DisplayName

    @field_validator("email")
    @classmethod
    def _normalized(cls, value: str) -> str:
        return normalize_email(value)  # InvalidEmail is a ValueError: a 422 naming the field


class UserResponse(BaseModel):
    user_id: str
    email: str
    display_name: str
    roles: list[str]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class RefreshRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"refresh_token": "the refresh_token of the last token answer"}]}
    )

    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class Jwks(BaseModel):
    keys: list[dict[str, Any]]


class LicenseRequest(Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"product": "reservations-pro", "seats": 3}]})

    product: ProductName
    seats: Annotated[int, Field(ge=1, le=1000)]


class LicenseResponse(BaseModel):
    license_id: str
    license_key: str
    product: str
    seats: int
    status: str


class ActivateRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"license_key": "7KQM-XR4T-9WHC-PD2N", "machine_id": "laptop-1"}]}
    )

    license_key: LicenseKey
    machine_id: Identifier


class ActivationResponse(BaseModel):
    activation_id: str
    license_id: str
    product: str
    machine_id: str
    activated_at: datetime
    seats_used: int
    seats_total: int


class ActivationList(PageBody):
    items: list[ActivationResponse]
