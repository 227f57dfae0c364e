"""The one check every test suite uses: a response is an RFC 9457 problem of ours."""

from __future__ import annotations

import json
from typing import Any

import httpx

from common.errors import PROBLEM_JSON, PROBLEM_TYPE_BASE


def assert_problem(
    response: httpx.Response, status: int | tuple[int, ...], detail: str | None = None
) -> dict[str, Any]:
    """``response`` is a problem (``application/problem+json``) with one of the ``status``es, a
    type of ours, a title, and (if given) ``detail`` in its detail; returns its body."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, f"{response.status_code}: {response.text[:500]}"
    assert response.headers.get("content-type", "").startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = json.loads(response.text)
    assert body["status"] == response.status_code, body
    assert str(body.get("type", "")).startswith(PROBLEM_TYPE_BASE), body
    assert body.get("title"), body
    if detail is not None:
        assert detail in body["detail"], body
    return body
