"""RFC 9457 problem details: one exception family and one response shape for every error path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://reservations.example/problems/"


class ProblemError(Exception):
    """An error that becomes an ``application/problem+json`` response.

    Raise it (or a subclass) anywhere in a request; the app factory's handlers render it.
    ``extra`` members are added to the body; ``headers`` (e.g. ``Retry-After``) to the response.
    """

    status: int = 500
    title: str = "Internal Server Error"
    slug: str = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        if slug is not None:
            self.slug = slug
        self.detail = detail or self.title
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})
        super().__init__(self.detail)

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug

    def to_body(self, *, instance: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        """The problem document; ``request_id`` lets a user quote one line to an operator."""
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        if request_id is not None:
            body["request_id"] = request_id
        body.update(self.extra)
        return body


def _retry_after(seconds: float | None) -> dict[str, str]:
    return {} if seconds is None else {"Retry-After": str(max(1, round(seconds)))}


class BadRequest(ProblemError):
    status, title, slug = 400, "Bad Request", "bad-request"


class Unauthorized(ProblemError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str | None = None, *, scheme: str = "Bearer", **kw: Any) -> None:
        headers = {"WWW-Authenticate": scheme, **kw.pop("headers", {})}
        super().__init__(detail, headers=headers, **kw)


class Forbidden(ProblemError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ProblemError):
    status, title, slug = 404, "Not Found", "not-found"


class Conflict(ProblemError):
    status, title, slug = 409, "Conflict", "conflict"

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None, **kw: Any) -> None:
        headers = {**_retry_after(retry_after), **kw.pop("headers", {})}
        super().__init__(detail, headers=headers, **kw)


class PayloadTooLarge(ProblemError):
    status, title, slug = 413, "Payload Too Large", "payload-too-large"


class UnprocessableContent(ProblemError):
    status, title, slug = 422, "Unprocessable Content", "validation"


class RateLimited(ProblemError):
    status, title, slug = 429, "Too Many Requests", "rate-limited"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1, **kw: Any) -> None:
        super().__init__(detail, headers=_retry_after(retry_after), **kw)


class UpstreamUnavailable(ProblemError):
    """A dependency is down, its breaker is open, or its bulkhead is full: try again later."""

    status, title, slug = 503, "Service Unavailable", "upstream-unavailable"

    def __init__(
        self,
        detail: str | None = None,
        *,
        upstream: str | None = None,
        retry_after: float = 1,
        **kw: Any,
    ) -> None:
        extra = {**({"upstream": upstream} if upstream else {}), **kw.pop("extra", {})}
        super().__init__(detail, headers=_retry_after(retry_after), extra=extra, **kw)


class DeadlineExceeded(ProblemError):
    """The request's time budget ran out (here or upstream)."""

    status, title, slug = 504, "Gateway Timeout", "deadline-exceeded"

    def __init__(
        self,
        detail: str | None = None,
        *,
        upstream: str | None = None,
        retry_after: float = 1,
        **kw: Any,
    ) -> None:
        extra = {**({"upstream": upstream} if upstream else {}), **kw.pop("extra", {})}
        super().__init__(detail, headers=_retry_after(retry_after), extra=extra, **kw)
