"""A whole stack for a test session: free ports, seeded, every process gone afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from stack.kafka import default_run_dir, ensure_kafka_libs
from stack.ports import free_port_block
from stack.postgres import PostgresServer
from stack.procs import pid_alive
from stack.runner import Stack
from stack.services import INSTANCE_PORT_STEP, MANAGEMENT_OFFSET
from stack.zipkin import ensure_zipkin_jar


@contextmanager
def running_stack(
    run_dir: Path,
    env_overrides: Mapping[str, str],
    timeout: float,
    instances: Mapping[str, int] | None = None,
    *,
    db: str = "sqlite",
    zipkin: bool = False,
) -> Iterator[Stack]:
    """Start Kafka, the SMTP sink and the six services in ``run_dir``; stop them all on exit.

    Ports come from one free block below the ephemeral range (services base..base+5, then Kafka,
    its controller and the SMTP sink, then PostgreSQL at base+9; further instances 10 ports up
    each: ``stack.instances``), so the stack never clashes with ``make up``. ``db="postgres"``:
    the services' databases are on a throwaway PostgreSQL server of the stack's (in a temp folder
    the ``postgres`` user can reach, removed at stop). ``zipkin``: a Zipkin server on the block's
    last port that every service exports its spans to (``stack.zipkin``). Progress goes to
    ``run_dir/stack.log``. On
    exit it checks that no process of the stack is left.
    """
    most = max((instances or {}).values(), default=1)
    # The management ports (1,000 up) must be free too, every instance's included.
    size = max(10, 9 + INSTANCE_PORT_STEP * (most - 1)) + (1 if zipkin else 0)
    base = free_port_block(size, mirrors=(MANAGEMENT_OFFSET,))
    log_file = run_dir / "stack.log"

    def say(line: str) -> None:
        with log_file.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    stack = Stack(
        run_dir,
        base_port=base,
        kafka_port=base + 6,
        kafka_controller_port=base + 7,
        smtp_port=base + 8,
        env_overrides=env_overrides,
        instances=instances,
        kafka_libs_dir=ensure_kafka_libs(default_run_dir()),
        say=say,
        db=db,
        postgres=PostgresServer.ephemeral(base + 9) if db == "postgres" else None,
        zipkin_port=base + size - 1 if zipkin else None,
    )
    if stack.zipkin is not None:
        stack.zipkin.jar = ensure_zipkin_jar(default_run_dir())  # fetched once per checkout
    try:
        stack.start(timeout=timeout)
    except BaseException:
        stack.close()
        print(f"the test stack did not start; its log: {log_file}, process logs: {stack.logs_dir}")
        raise
    pids = [pid for name in [*stack.service_names, "kafka", "smtp"] if (pid := stack.pid(name))]
    if stack.databases.pid is not None:
        pids.append(stack.databases.pid)
    if stack.zipkin is not None and stack.zipkin.handle.pid is not None:
        pids.append(stack.zipkin.handle.pid)
    try:
        yield stack
    finally:
        stack.close()
        left = [pid for pid in pids if pid_alive(pid)]
        assert not left, f"processes of the test stack still running after stop: {left}"
