"""The dashboard use case: ask four services at once, each with a short budget, keep what came."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from common.context import Deadline, current_deadline, deadline_var
from common.errors import DeadlineExceeded, UpstreamUnavailable
from common.http import ServiceClient
from gateway_service.domain.dashboard import PARTS, Missing, Part, assemble, read_part

log = logging.getLogger(__name__)


@contextmanager
def _budget(seconds: float) -> Iterator[None]:
    """Shorten this task's deadline to ``seconds`` (never lengthen the request's own)."""
    deadline = Deadline.after(seconds)
    current = current_deadline()
    if current is not None and current.at < deadline.at:
        deadline = current
    token = deadline_var.set(deadline)
    try:
        yield
    finally:
        deadline_var.reset(token)


async def _fetch(part: Part, client: ServiceClient, authorization: str, budget: float) -> Any:
    # The short deadline travels with the call (X-Deadline-Ms), so the service knows its budget
    # too, and ServiceClient stops waiting when it is spent (504 → this part is missing).
    with _budget(budget):
        try:
            response = await client.get(
                part.path,
                params=part.query or None,
                headers={"Authorization": authorization, "Accept": "application/json"},
            )
        except (UpstreamUnavailable, DeadlineExceeded) as problem:
            value: Any = Missing(problem.detail)
        else:
            try:
                body = response.json() if response.status_code in (200, 404) else None
            except ValueError:
                body = None
            value = read_part(part, response.status_code, body)
    if isinstance(value, Missing):
        log.warning("dashboard part %s missing: %s", part.name, value.reason, extra={"part": part.name})
    return value


async def build_dashboard(
    clients: Mapping[str, ServiceClient], authorization: str, part_timeout: float
) -> dict[str, Any]:
    """The user's dashboard; parts that failed are ``None`` and listed in ``missing``."""
    values = await asyncio.gather(
        *(_fetch(part, clients[part.upstream], authorization, part_timeout) for part in PARTS)
    )
    return assemble({part.name: value for part, value in zip(PARTS, values, strict=True)})
