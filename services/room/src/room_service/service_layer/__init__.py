"""Use cases: orchestrate domain logic, repositories and clients inside a unit of work."""
