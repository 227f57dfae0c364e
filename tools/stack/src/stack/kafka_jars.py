"""The Apache Kafka broker jars: found in ``$KAFKA_HOME/libs`` or fetched once via Maven and cached.

The version is the one pinned in ``tools/kafka/pom.xml``; the cache is ``<run_dir>/kafka/libs``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stack.procs import run

__all__ = [
    "KafkaSetupError",
    "Progress",
    "default_run_dir",
    "ensure_kafka_libs",
    "java_executable",
    "maven_copy",
    "repo_root",
    "say",
]

log = logging.getLogger("stack.kafka")

Progress = Callable[[str], None]
"""Receives one human-readable progress line (e.g. the runner prints it)."""

_BROKER_JAR_GLOB = "kafka_2.13-*.jar"
_INSTALL_HINT = (
    "Install Java 17+ and Maven (e.g. `apt-get install openjdk-17-jre-headless maven`, "
    "`brew install openjdk@17 maven`), or set KAFKA_HOME to an unpacked Apache Kafka 4.x "
    "distribution."
)


class KafkaSetupError(RuntimeError):
    """Kafka cannot be obtained or prepared (no Java/Maven, failed download, bad data dir)."""


def repo_root() -> Path:
    """The monorepo root: the nearest folder holding ``tools/kafka/pom.xml``."""
    marker = Path("tools") / "kafka" / "pom.xml"
    here = Path(__file__).resolve()
    for start in (here.parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / marker).is_file():
                return folder
    raise KafkaSetupError(f"cannot find the repository root (no {marker} above {here})")


def default_run_dir() -> Path:
    """The git-ignored run folder of the repository (``<repo>/.run``)."""
    return repo_root() / ".run"


def say(progress: Progress | None, message: str) -> None:
    """Hand ``message`` to ``progress``, or log it when there is none."""
    if progress is not None:
        progress(message)
    else:
        log.info(message)


def java_executable() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH; ``KafkaSetupError`` saying how to get one."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise KafkaSetupError(f"`java` was not found on PATH. {_INSTALL_HINT}")
    return found


def _pom_kafka_version(pom: Path) -> str | None:
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text("utf-8"))
    return match.group(1) if match else None


def _has_broker_jar(libs: Path, version: str | None) -> bool:
    if version is not None:
        return (libs / f"kafka_2.13-{version}.jar").is_file()
    return libs.is_dir() and any(libs.glob(_BROKER_JAR_GLOB))


def ensure_kafka_libs(run_dir: Path, progress: Progress | None = None) -> Path:
    """Return a folder of Apache Kafka broker jars, obtaining them once if needed.

    Order: ``$KAFKA_HOME/libs`` if ``KAFKA_HOME`` is set; else the cache
    ``<run_dir>/kafka/libs`` if it holds the broker jar of the version pinned in
    ``tools/kafka/pom.xml``; else Maven copies the jars into a temporary folder that is then
    renamed into place, so an interrupted download never leaves a half-filled cache.
    """
    kafka_home = os.environ.get("KAFKA_HOME")
    if kafka_home:
        libs = Path(kafka_home).expanduser() / "libs"
        if not _has_broker_jar(libs, None):
            raise KafkaSetupError(
                f"KAFKA_HOME={kafka_home} has no {_BROKER_JAR_GLOB} in libs/; point it at an "
                "unpacked Apache Kafka 4.x distribution or unset it to download via Maven."
            )
        return libs

    pom = repo_root() / "tools" / "kafka" / "pom.xml"
    version = _pom_kafka_version(pom)
    target = Path(run_dir) / "kafka" / "libs"
    if _has_broker_jar(target, version):
        return target

    say(progress, f"obtaining Apache Kafka {version or ''} jars via Maven… (first run only)")
    started = time.monotonic()
    goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
    with maven_copy(pom, goal, target.parent, timeout=1800, error=KafkaSetupError) as (code, output, staging):
        if code != 0 or not _has_broker_jar(staging, version):
            last = "\n".join(output.splitlines()[-30:])
            raise KafkaSetupError(f"Maven could not obtain the Kafka jars (exit {code}):\n{last}")
        _swap_into_place(staging, target, version)
    say(progress, f"Kafka jars ready in {target} ({time.monotonic() - started:.1f} s)")
    return target


@contextmanager
def maven_copy(
    pom: Path, goal: list[str], parent: Path, *, timeout: float, error: type[Exception]
) -> Iterator[tuple[int, str, Path]]:
    """Run Maven's ``goal`` on ``pom`` into a fresh staging folder under ``parent``: yields
    ``(exit code, output, staging)`` for the caller to check and move into place, then removes
    what is left of the folder, so an interrupted download never leaves a half-filled cache.
    ``error`` (with the install hint) when Maven or Java is missing or Maven runs too long."""
    mvn = shutil.which("mvn")
    java_executable()  # Maven needs Java too; fail with the same clear hint
    if mvn is None:
        raise error(f"`mvn` (Apache Maven) was not found on PATH. {_INSTALL_HINT}")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".maven-", dir=parent))
    try:
        try:
            code, output = run(
                [mvn, "-q", "-B", "-f", str(pom), *goal, f"-DoutputDirectory={staging}"], timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise error(
                f"Maven did not finish {' '.join(goal[:1])} for {pom} in {timeout / 60:.0f} min"
            ) from exc
        yield code, output, staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the caller renamed it


def _swap_into_place(staging: Path, target: Path, version: str | None) -> None:
    old: Path | None = None
    if target.exists():
        if _has_broker_jar(target, version):
            return  # a concurrent run (another test worker, `make up`) finished first
        old = target.with_name(f".libs-old-{uuid.uuid4().hex}")
        target.rename(old)  # stale version or a folder left by hand
    try:
        staging.rename(target)
    except OSError:
        if not _has_broker_jar(target, version):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
