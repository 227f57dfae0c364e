"""The e2e tests that touch storage, run against the PostgreSQL stack of this directory.

Importing a test module's names collects its tests (and its module fixtures) here as well, where
``conftest.py`` gives them the PostgreSQL stack. ``test_gateway`` stays SQLite-only: the
gateway's rate limit, docs, metrics and Host checks store nothing.
"""

from tests.e2e.test_access import *  # noqa: F403
from tests.e2e.test_bad_input import *  # noqa: F403
from tests.e2e.test_faults import *  # noqa: F403
from tests.e2e.test_licenses import *  # noqa: F403
from tests.e2e.test_members import *  # noqa: F403
from tests.e2e.test_notifications import *  # noqa: F403
from tests.e2e.test_pagination import *  # noqa: F403
from tests.e2e.test_reservations import *  # noqa: F403
from tests.e2e.test_seed import *  # noqa: F403
from tests.e2e.test_signup import *  # noqa: F403
