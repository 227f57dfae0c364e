"""Domain model and rules: pure Python, no I/O."""
