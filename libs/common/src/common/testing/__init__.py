"""Test helpers shared by the services' test suites (imported only from tests)."""
