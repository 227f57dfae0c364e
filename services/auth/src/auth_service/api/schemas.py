"""Request and response bodies of the auth API (see docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from auth_service.domain.emails import MAX_EMAIL_LENGTH, normalize_email


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class SignupRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct-horse", "display_name": "Ada"}]
        }
    )

    email: Annotated[str, Field(max_length=MAX_EMAIL_LENGTH + 50)]
    password: Annotated[str, Field(min_length=8, max_length=128)]
    display_name: Annotated[Text, Field(min_length=1, max_length=100)]

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

    product: Annotated[Text, Field(min_length=1, max_length=100)]
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

    license_key: Annotated[Text, Field(min_length=1, max_length=64)]
    machine_id: Annotated[Text, Field(min_length=1, max_length=128)]


class ActivationResponse(BaseModel):
    activation_id: str
    license_id: str
    product: str
    machine_id: str
    activated_at: datetime
    seats_used: int
    seats_total: int


class ActivationList(BaseModel):
    items: list[ActivationResponse]
