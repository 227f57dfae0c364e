"""Request and response bodies of the inventory API (docs/api.md)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class NightOut(BaseModel):
    date: dt.date
    capacity: int
    held: int
    booked: int
    available: int


class AvailabilityOut(BaseModel):
    room_id: str
    nights: list[NightOut]


class HoldIn(BaseModel):
    """Room asks for one unit of ``room_id`` on every night from ``check_in`` to ``check_out`` (exclusive)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reservation_id": "0b7a6c1e-4f5d-5a8e-9c3b-2d1e0f9a8b7c",
                    "room_id": "r101",
                    "check_in": "2099-01-10",
                    "check_out": "2099-01-12",
                }
            ]
        },
    )

    reservation_id: str = Field(min_length=1, max_length=64)
    room_id: str = Field(min_length=1, max_length=50)
    check_in: dt.date
    check_out: dt.date


class HoldOut(BaseModel):
    reservation_id: str
    room_id: str
    check_in: dt.date
    check_out: dt.date
    status: str = Field(description="held | confirmed | released | expired | oversold")
    expires_at: dt.datetime
