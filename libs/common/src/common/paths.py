"""Where the repository and its git-ignored run folder are (data, keys, logs, Kafka)."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this library runs from (the folder holding ``contracts/``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "contracts").is_dir() and (parent / "libs").is_dir():
            return parent
    return Path.cwd()


def run_dir() -> Path:
    """``$RUN_DIR`` or ``<repo>/.run``: everything created at run time lives here, git-ignored."""
    return Path(os.environ.get("RUN_DIR") or repo_root() / ".run")
