"""Zipkin, the stack's trace backend: its exec jar fetched once via Maven, run with in-memory storage.

The version is pinned in ``tools/zipkin/pom.xml``; the jar is cached in ``<run_dir>/zipkin``.
Services export spans to ``spans_endpoint`` (their ``<SVC>_ZIPKIN_ENDPOINT``); people open ``url``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from stack.errors import StackError
from stack.kafka_jars import Progress, java_executable, maven_copy, repo_root, say
from stack.ports import HOST
from stack.procs import ProcessHandle

__all__ = ["ZipkinServer", "ensure_zipkin_jar"]

_HINT = "Install Java 17+ and Maven (e.g. `apt-get install openjdk-17-jre-headless maven`)."


def _pom() -> Path:
    return repo_root() / "tools" / "zipkin" / "pom.xml"


def _version(pom: Path) -> str:
    match = re.search(r"<zipkin\.version>\s*([^<\s]+)\s*</zipkin\.version>", pom.read_text("utf-8"))
    if match is None:
        raise StackError(f"no <zipkin.version> in {pom}")
    return match.group(1)


def ensure_zipkin_jar(run_dir: Path, progress: Progress | None = None) -> Path:
    """The Zipkin server jar of the pinned version, copied by Maven on the first call."""
    pom = _pom()
    version = _version(pom)
    jar = Path(run_dir) / "zipkin" / f"zipkin-server-{version}-exec.jar"
    if jar.is_file():
        return jar
    say(progress, f"obtaining the Zipkin server {version} via Maven… (first run only)")
    started = time.monotonic()
    # dependency:copy, not copy-dependencies: the exec jar's bundled modules are not on Central.
    goal = ["dependency:copy", f"-Dartifact=io.zipkin:zipkin-server:{version}:jar:exec"]
    with maven_copy(pom, goal, jar.parent, timeout=900, error=StackError) as (code, output, staging):
        fetched = staging / jar.name
        if code != 0 or not fetched.is_file():
            last = "\n".join(output.splitlines()[-20:])
            raise StackError(f"Maven could not obtain the Zipkin server (exit {code}):\n{last}\n{_HINT}")
        fetched.replace(jar)  # atomic: a half-copied jar is never in the cache
    say(progress, f"Zipkin server ready in {jar} ({time.monotonic() - started:.1f} s)")
    return jar


class ZipkinServer:
    """One Zipkin server process (UI and API on ``port``), supervised like the SMTP sink."""

    def __init__(self, port: int, *, logs_dir: Path, pids_dir: Path, env: Mapping[str, str]) -> None:
        self.port = port
        self.jar: Path | None = None
        """The server jar, when the caller has it already (tests: the repository's cached copy)."""
        self.handle = ProcessHandle(
            "zipkin",
            [],  # the command names the jar, known once fetched (``start``)
            log_path=logs_dir / "zipkin.log",
            pid_path=pids_dir / "zipkin.pid",
            # In-memory storage (traces go with the process); a small heap: it is a dev tool.
            env={**env, "STORAGE_TYPE": "mem", "QUERY_PORT": str(port), "JAVA_OPTS": ""},
        )

    @property
    def url(self) -> str:
        """The UI (and API) address."""
        return f"http://{HOST}:{self.port}/zipkin/"

    @property
    def spans_endpoint(self) -> str:
        """Where services send spans (Zipkin's v2 JSON intake)."""
        return f"http://{HOST}:{self.port}/api/v2/spans"

    @property
    def running(self) -> bool:
        return self.handle.running

    def start(self, jar: Path) -> None:
        # C1 only: it starts in a third of the time, and a dev trace store needs no peak speed.
        jvm = ["-Xms32m", "-Xmx256m", "-XX:TieredStopAtLevel=1"]
        self.handle.command = [java_executable(), *jvm, "-jar", str(jar)]
        self.handle.start()

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://{HOST}:{self.port}/health", timeout=1.0).is_success
        except httpx.HTTPError:
            return False

    def wait_ready(self, deadline: float) -> None:
        """Return once ``/health`` answers 2xx; ``StackError`` if it exits or ``deadline`` passes."""
        while not self.ready():
            if not self.handle.running:
                raise StackError(
                    f"Zipkin exited with code {self.handle.returncode}; "
                    f"last lines of {self.handle.log_path}:\n{self.handle.tail()}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"Zipkin did not answer on port {self.port} in time:\n{self.handle.tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float) -> None:
        self.handle.stop(timeout)
