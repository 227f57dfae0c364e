"""The errors the stack runner raises; each message says what to look at or do."""

from __future__ import annotations

__all__ = ["PortInUseError", "StackError", "StackInterrupted"]


class StackError(RuntimeError):
    """The stack could not start or a step failed; the message says what to look at."""


class PortInUseError(StackError):
    """A port the stack needs is already bound by another process."""


class StackInterrupted(StackError):
    """``request_stop()`` (Ctrl-C, SIGTERM, ``stack down``) arrived while starting."""
