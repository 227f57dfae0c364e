"""Dev stack runner."""
