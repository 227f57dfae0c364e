"""Shared by the deployment tests (docker compose, Kubernetes): the service table as fixtures.

The table itself is in ``catalogue.py`` (import it: ``from .catalogue import DEPLOYED``).
"""

from __future__ import annotations

import pytest

from .catalogue import DEPLOYED, DeployedService


@pytest.fixture(params=DEPLOYED, ids=lambda s: s.name)
def deployed(request: pytest.FixtureRequest) -> DeployedService:
    """Each service in turn (a test using it runs once per service)."""
    service: DeployedService = request.param
    return service
