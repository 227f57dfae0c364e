"""Response models read straight off domain objects, so no service copies fields by hand."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict


class ViewModel(BaseModel):
    """A response body built from a domain object's attributes of the same names."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, obj: object) -> Self:
        return cls.model_validate(obj)
