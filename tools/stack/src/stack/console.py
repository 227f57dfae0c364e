"""How the runner speaks: one line at a time, and never so that a closed stdout stops it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

__all__ = ["Say", "echo"]

Say = Callable[[str], None]
"""Receives one human-readable line (``echo``, a test's log file, a list)."""


def echo(line: str = "", *, err: bool = False) -> None:
    """Print one line; a closed stdout (``make up | tee`` after Ctrl-C) must never stop a shutdown."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(line, file=stream, flush=True)
    except (OSError, ValueError):
        # Point the fd at /dev/null so later prints and the exit-time flush succeed silently.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
