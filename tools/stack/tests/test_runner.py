"""The stack runner: process groups, pid files, `stack down`, port checks, and the real stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from stack.cli import _parser, main
from stack.errors import PortInUseError, StackError
from stack.kafka import default_run_dir, ensure_kafka_libs
from stack.ports import check_ports_free, free_port_block, port_in_use, probe
from stack.procs import ProcessHandle, pid_alive, read_pid
from stack.runner import Stack, _seed_report
from stack.services import MANAGEMENT_OFFSET, SERVICE_NAMES, all_topics, service_env, spec
from stack.shutdown import STACK_PID_FILE, cleanup_leftovers, down, read_state

PY = sys.executable
START_TIMEOUT_S = 300  # a cold JVM and six services on a loaded 2-core machine; green is usually ~20 s


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer exists at all (checked with ``os.kill(pid, 0)``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _script(body: str, *marker: str) -> list[str]:
    """A Python child running ``body``; extra args only tag its command line (pid-file markers)."""
    return [PY, "-c", body, *marker]


# A child that starts a grandchild in its own process group, then waits; the grandchild's pid
# goes to a file so the test can prove the whole group is stopped.
FAMILY = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(120)
"""

STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write("ready")
time.sleep(120)
"""


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts by hand; killed and reaped afterwards, whatever happened."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _spawn(procs: list[subprocess.Popen[bytes]], cmd: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, start_new_session=True)
    procs.append(proc)
    return proc


def _free_base_port(count: int = len(SERVICE_NAMES)) -> int:
    """A base port with ``count`` consecutive free ports after it."""
    return free_port_block(count, mirrors=(MANAGEMENT_OFFSET,))


# --------------------------------------------------------------------------- catalogue


def test_catalogue_ports_and_env_follow_the_base_port(tmp_path: Path) -> None:
    room = spec("room")
    env = service_env(
        room, base_port=18000, run_dir=tmp_path, bootstrap_servers="127.0.0.1:19092", smtp_port=11025
    )

    assert room.port(18000) == 18003
    assert env["ROOM_PORT"] == "18003"
    assert env["ROOM_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert env["RUN_DIR"] == str(tmp_path)
    assert env["ROOM_MEMBER_URL"] == "http://127.0.0.1:18002"
    assert env["ROOM_GATEWAY_URL"] == "http://127.0.0.1:18000"
    assert "ROOM_ROOM_URL" not in env
    notification = service_env(
        spec("notification"), base_port=8000, run_dir=tmp_path, bootstrap_servers="x:1", smtp_port=2525
    )
    assert notification["NOTIFICATION_SMTP_PORT"] == "2525"
    assert notification["NOTIFICATION_SMTP_HOST"] == "127.0.0.1"


def test_every_service_verifies_user_tokens_with_the_keys_of_this_stack_s_auth(tmp_path: Path) -> None:
    for name in SERVICE_NAMES:
        env = service_env(
            spec(name), base_port=18000, run_dir=tmp_path, bootstrap_servers="x:1", smtp_port=11025
        )
        assert env[f"{name.upper()}_JWKS_URL"] == "http://127.0.0.1:18001/.well-known/jwks.json", name


def test_the_services_with_demo_data_are_auth_room_and_inventory() -> None:
    assert [name for name in SERVICE_NAMES if spec(name).seeds] == ["auth", "room", "inventory"]


def test_the_seed_report_keeps_what_the_seed_said_and_drops_migration_chatter() -> None:
    def log(level: str, logger: str, message: str) -> str:
        return json.dumps({"level": level, "service": "room", "logger": logger, "message": message})

    output = "\n".join(
        [
            "--- 2030-01-01 00:00:00 stack: python -m room_service seed",
            log("INFO", "alembic.runtime.migration", "Context impl SQLiteImpl."),
            log("INFO", "room_service.service_layer", "a domain INFO line"),
            log("INFO", "room_service.seed", "seeded rooms: r101"),
            log("WARNING", "room_service.adapters", "careful"),
            "auth seed: created admin admin@example.com",
            "{not json",
            "",
        ]
    )

    assert _seed_report(output) == [
        "room: seeded rooms: r101",
        "room: careful",
        "auth seed: created admin admin@example.com",
        "{not json",
    ]


def test_topics_come_from_the_common_catalogue() -> None:
    from common.messaging.topics import ALL_TOPICS

    assert all_topics() == list(ALL_TOPICS)


def test_lab_commands_wait_long_enough_for_a_service_start_on_a_loaded_machine() -> None:
    # A restarted member took up to 190 s to serve at load average 30 (migrate, then serve).
    for action in ("start", "restart", "stop", "pause", "resume"):
        assert _parser().parse_args([action, "member"]).timeout >= 300


def test_unknown_service_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match="billing"):
        spec("billing")


# --------------------------------------------------------------------------- ports


def test_port_in_use_sees_a_listener_and_names_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert port_in_use(port)
        with pytest.raises(PortInUseError, match=rf"{port} \(room\)"):
            check_ports_free({"room": port, "gateway": free_port_block(1)})
    assert not port_in_use(port)


def test_start_fails_early_naming_the_taken_port_and_starts_nothing(tmp_path: Path) -> None:
    base = free_port_block(len(SERVICE_NAMES) + 3)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", base + 6))
        listener.listen()
        stack = Stack(
            tmp_path,
            base_port=base,
            kafka_port=base + 6,
            kafka_controller_port=base + 7,
            smtp_port=base + 8,
            say=None,
        )
        with pytest.raises(PortInUseError, match=rf"{base + 6} \(kafka\)"):
            stack.start(timeout=START_TIMEOUT_S)
        stack.close()

    assert not stack.spawned_any
    assert not list((tmp_path / "pids").glob("*.pid"))


# --------------------------------------------------------------------------- processes


def test_stop_ends_the_whole_process_group_and_removes_the_pid_file(tmp_path: Path) -> None:
    grandchild_file = tmp_path / "grandchild.pid"
    handle = ProcessHandle(
        "family",
        _script(FAMILY, str(grandchild_file)),
        log_path=tmp_path / "logs" / "family.log",
        pid_path=tmp_path / "pids" / "family.pid",
    )
    handle.start()
    pid = handle.pid
    assert pid is not None
    assert read_pid(tmp_path / "pids" / "family.pid") == pid
    _wait_for(lambda: grandchild_file.exists() and grandchild_file.read_text() != "", 60, "the grandchild")
    grandchild = int(grandchild_file.read_text())

    killed = handle.stop(timeout=5)

    assert killed is False  # SIGTERM was enough
    assert _gone(pid)
    _wait_for(lambda: not pid_alive(grandchild), 60, "the grandchild to be reaped")
    assert not (tmp_path / "pids" / "family.pid").exists()
    assert "stack: " in (tmp_path / "logs" / "family.log").read_text()


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    handle = ProcessHandle(
        "stubborn", _script(STUBBORN, str(ready)), log_path=tmp_path / "s.log", pid_path=tmp_path / "s.pid"
    )
    handle.start()
    pid = handle.pid
    assert pid is not None
    _wait_for(ready.exists, 60, "the handler to be installed")

    killed = handle.stop(timeout=0.5)

    assert killed is True  # SIGKILL after the grace: stop() never waits for a stubborn process
    assert _gone(pid)


# --------------------------------------------------------------------------- stack down


SLOW_RUNNER = """
import signal, sys, time
def bye(signum, frame):
    time.sleep(0.5)  # a runner stops its children before exiting: down must wait for it
    open(sys.argv[1], "w").write("stopped cleanly")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
open(sys.argv[1], "w").write("running")
time.sleep(120)
"""


def test_down_signals_the_runner_and_waits_until_it_exited(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    state = tmp_path / "state"
    runner = _spawn(spawned, _script(SLOW_RUNNER, str(state), "stack", "up"))
    _wait_for(lambda: state.exists() and state.read_text() == "running", 60, "the fake runner")
    (tmp_path / STACK_PID_FILE).write_text(f"{runner.pid}\n")
    said: list[str] = []

    did = down(tmp_path, say=said.append, timeout=10)

    assert did is True
    assert state.read_text() == "stopped cleanly"
    assert not pid_alive(runner.pid)  # exited (a zombie until this test reaps it)
    assert not (tmp_path / STACK_PID_FILE).exists()
    assert any(f"runner pid {runner.pid}" in line for line in said)


def test_down_kills_leftover_process_groups_when_the_runner_is_gone(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    dead_runner = _spawn(spawned, [PY, "-c", "pass"])
    dead_runner.wait(timeout=10)
    (tmp_path / STACK_PID_FILE).write_text(f"{dead_runner.pid}\n")
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    room = _spawn(spawned, _script("import time; time.sleep(120)", "-m", "room_service", "serve"))
    smtp = _spawn(spawned, _script("import time; time.sleep(120)", "-m", "stack.smtp_sink"))
    (pids_dir / "room.pid").write_text(f"{room.pid}\n")
    (pids_dir / "smtp.pid").write_text(f"{smtp.pid}\n")
    said: list[str] = []

    did = down(tmp_path, say=said.append, timeout=10)

    assert did is True
    assert room.wait(timeout=10) == -signal.SIGTERM
    assert smtp.wait(timeout=10) == -signal.SIGTERM
    assert not list(pids_dir.glob("*.pid"))
    assert not (tmp_path / STACK_PID_FILE).exists()
    assert any("leftover" in line for line in said)


def test_a_reused_pid_is_never_signalled(tmp_path: Path, spawned: list[subprocess.Popen[bytes]]) -> None:
    # The pid file says "room", but the process behind that pid is something else now.
    stranger = _spawn(spawned, _script("import time; time.sleep(120)", "someone-else"))
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "room.pid").write_text(f"{stranger.pid}\n")

    assert cleanup_leftovers(tmp_path) == []
    assert stranger.poll() is None
    assert not (tmp_path / "pids" / "room.pid").exists()


def test_a_process_younger_than_its_pid_file_is_never_signalled(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    # Right command line, but born after the pid file was written: the pid was reused.
    (tmp_path / "pids").mkdir()
    pid_file = tmp_path / "pids" / "room.pid"
    lookalike = _spawn(spawned, _script("import time; time.sleep(120)", "-m", "room_service", "serve"))
    pid_file.write_text(f"{lookalike.pid}\n")
    an_hour_ago = time.time() - 3600
    os.utime(pid_file, (an_hour_ago, an_hour_ago))

    assert cleanup_leftovers(tmp_path) == []
    assert lookalike.poll() is None


def test_down_with_nothing_running_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--run-dir", str(tmp_path), "down"])

    assert code == 0
    assert "nothing is running" in capsys.readouterr().out


def test_up_refuses_while_another_runner_is_alive(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    runner = _spawn(spawned, _script("import time; time.sleep(120)", "stack", "up"))
    (tmp_path / STACK_PID_FILE).write_text(f"{runner.pid}\n")

    code = main(["--run-dir", str(tmp_path), "up"])

    assert code == 1
    assert f"already running from {tmp_path} (runner pid {runner.pid})" in capsys.readouterr().err
    assert read_pid(tmp_path / STACK_PID_FILE) == runner.pid  # the live runner's file is kept
    assert runner.poll() is None


def test_status_with_nothing_running_reports_not_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--run-dir", str(tmp_path), "status", "--base-port", str(_free_base_port())])

    out = capsys.readouterr().out
    assert code == 1
    assert "not running" in out
    assert "0/6 services ready" in out


def test_up_takes_the_database_engine_and_postgres_sits_beside_kafka(tmp_path: Path) -> None:
    args = _parser().parse_args(["up", "--db", "postgres", "--kafka-port", "19092"])
    assert (args.db, args.postgres_port) == ("postgres", None)
    assert _parser().parse_args(["up"]).db == "sqlite"  # the default stays SQLite
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--db", "mysql"])

    stack = Stack(tmp_path, kafka_port=19092, db="postgres", say=None)
    try:
        assert stack.databases.port == 19094  # after Kafka's port and its controller's
        assert stack.ports()["postgres"] == 19094
        for name in SERVICE_NAMES:
            assert stack.service_env(name)[f"{name.upper()}_DATABASE_URL"] == (
                f"postgresql+psycopg://postgres@127.0.0.1:19094/{name}"
            )
    finally:
        stack.close()
    three_brokers = Stack(tmp_path, kafka_port=19092, kafka_brokers=3, db="postgres", say=None)
    three_brokers.close()
    assert three_brokers.databases.port == 19098  # after the nodes' 19092..19097
    on_sqlite = Stack(tmp_path, say=None)
    on_sqlite.close()
    assert "ROOM_DATABASE_URL" not in on_sqlite.service_env("room")  # the service's default file


def test_status_lists_the_postgres_server_of_a_postgres_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port_block(1)
    (tmp_path / "stack.json").write_text(json.dumps({"db": "postgres", "postgres_port": port}))

    main(["--run-dir", str(tmp_path), "status", "--base-port", str(_free_base_port())])

    assert re.search(
        rf"postgres +postgresql://127\.0\.0\.1:{port} +- +not listening", capsys.readouterr().out
    )


def test_logs_prints_the_tail_of_each_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "room.log").write_text("".join(f"line {i}\n" for i in range(100)))

    code = main(["--run-dir", str(tmp_path), "logs", "--no-follow", "-n", "3", "room"])

    assert code == 0
    assert capsys.readouterr().out.splitlines() == ["room | line 97", "room | line 98", "room | line 99"]


# --------------------------------------------------------------------------- with Kafka


def _stack(run_dir: Path, **kwargs: object) -> Stack:
    """A stack on its own ports: services at base..base+5, then Kafka, its controller, SMTP,
    PostgreSQL; second instances at base+10..base+15."""
    base = free_port_block(16, mirrors=(MANAGEMENT_OFFSET,))
    return Stack(
        run_dir,
        base_port=base,
        kafka_port=base + 6,
        kafka_controller_port=base + 7,
        smtp_port=base + 8,
        postgres_port=base + 9,
        kafka_libs_dir=ensure_kafka_libs(default_run_dir()),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_kafka_and_smtp_sink_are_supervised_and_stopped(tmp_path: Path) -> None:
    stack = _stack(tmp_path, services=[])
    stack.start(timeout=START_TIMEOUT_S)
    try:
        kafka_pid, smtp_pid = stack.pid("kafka"), stack.pid("smtp")
        assert kafka_pid is not None
        assert smtp_pid is not None
        assert read_pid(tmp_path / "pids" / "kafka.pid") == kafka_pid
        assert read_pid(tmp_path / "pids" / "smtp.pid") == smtp_pid

        # A crashed SMTP sink is restarted by the watcher.
        watcher = threading.Thread(target=stack.watch, kwargs={"interval": 0.1})
        watcher.start()
        os.killpg(smtp_pid, signal.SIGKILL)
        _wait_for(lambda: stack.pid("smtp") not in (None, smtp_pid), 60, "the SMTP sink to restart")
        new_smtp = stack.pid("smtp")
        assert new_smtp is not None
        _wait_for(lambda: port_in_use(stack.smtp_port), 60, "the new SMTP sink to listen")

        # A restarted broker is tracked: its pid file names the new one, and stop ends it; the
        # watcher leaves it alone while it restarts.
        stack.restart_service("kafka", timeout=START_TIMEOUT_S)
        restarted = stack.pid("kafka")
        assert restarted not in (None, kafka_pid)
        assert read_pid(tmp_path / "pids" / "kafka.pid") == restarted

        stack.request_stop()
        watcher.join(timeout=60)
        assert not watcher.is_alive()
    finally:
        stack.close()

    assert _gone(kafka_pid)
    assert restarted is not None
    assert not pid_alive(restarted)
    assert _gone(new_smtp)
    assert not list((tmp_path / "pids").glob("*.pid"))
    assert not port_in_use(stack.kafka_port)


@pytest.mark.kafka
@pytest.mark.timeout(900)
def test_full_stack_goes_green_restarts_one_service_and_leaves_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    stack = _stack(tmp_path, say=said.append)
    took = stack.start(timeout=START_TIMEOUT_S)
    try:
        assert took > 0
        for name in SERVICE_NAMES:
            response = httpx.get(f"{stack.url(name)}/health/ready", timeout=5)
            assert response.status_code == 200, (name, response.text)
        pids = {name: stack.pid(name) for name in (*SERVICE_NAMES, "kafka", "smtp")}
        assert all(pids.values()), pids

        old_room = pids["room"]
        assert old_room is not None
        stack.stop_service("room")
        assert _gone(old_room)
        assert not probe(stack.url("room")).ready
        assert not (tmp_path / "pids" / "room.pid").exists()

        stack.start_service(
            "room", wait_ready=True, timeout=START_TIMEOUT_S, env_overrides={"ROOM_LOG_LEVEL": "DEBUG"}
        )
        assert probe(stack.url("room")).ready
        new_room = stack.pid("room")
        assert new_room not in (None, old_room)
        assert b"ROOM_LOG_LEVEL=DEBUG\0" in Path(f"/proc/{new_room}/environ").read_bytes()
        pids["room"] = new_room
    finally:
        stack.close()

    for name, pid in pids.items():
        assert pid is not None
        assert _gone(pid), f"{name} (pid {pid}) is still running"
    assert not list((tmp_path / "pids").glob("*.pid"))
    for port in stack.ports().values():
        assert not port_in_use(port), port
    assert any("ready 6/6" in line for line in said)
    # Seeded before serving, and said so (the e2e tests check the data itself).
    assert any("auth seed: created admin admin@example.com" in line for line in said), said
    assert any("room: seeded rooms: r101, r102, r103, r104, r105" in line for line in said), said
    assert any("inventory: demo data in place" in line for line in said), said


@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_a_failing_seed_stops_the_start_naming_the_seed_and_its_error(tmp_path: Path) -> None:
    stack = _stack(tmp_path, services=["auth"], env_overrides={"AUTH_ADMIN_PASSWORD": "short"})

    with pytest.raises(StackError, match=r"python -m auth_service seed` failed") as failed:
        stack.start(timeout=START_TIMEOUT_S)

    assert "AUTH_ADMIN_PASSWORD must have at least 8 characters" in str(failed.value)
    assert not list((tmp_path / "pids").glob("*.pid"))
    for port in stack.ports().values():
        assert not port_in_use(port), port


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_a_postgres_stack_gives_each_service_its_own_database_and_goes_green() -> None:
    # PostgreSQL runs as the 'postgres' user, which must reach the data folder: not pytest's 0700 tmp.
    run_dir = Path(tempfile.mkdtemp(prefix="stack-pg-test-"))
    run_dir.chmod(0o755)
    said: list[str] = []
    stack = _stack(run_dir, db="postgres", instances={"room": 2}, say=said.append)
    try:
        stack.start(timeout=START_TIMEOUT_S)
        server = stack.databases.server
        assert server is not None
        postgres_pid = stack.databases.pid
        assert postgres_pid is not None
        assert read_pid(run_dir / "pids" / "postgres.pid") == postgres_pid
        assert read_state(run_dir)["postgres_port"] == server.port  # type: ignore[index]
        assert ("postgres", f"postgresql://127.0.0.1:{server.port}", str(postgres_pid), "running") in (
            stack.summary_rows()
        )
        for name in (*SERVICE_NAMES, "room-2"):
            # Green (start returned) with each service migrated into a database of its own; the
            # instances of one service share theirs (and each relays its outbox: SKIP LOCKED).
            assert probe(stack.url(name)).ready, name
            environ = Path(f"/proc/{stack.pid(name)}/environ").read_bytes()
            service = name.split("-")[0]
            assert f"{service.upper()}_DATABASE_URL={server.url(service)}\0".encode() in environ, name
            assert b"_OUTBOX_RELAY=false\0" not in environ, name
            with server.connect(service) as conn:
                tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables")}
            assert {"alembic_version", "outbox", "processed_events"} <= tables, (name, tables)
        with server.connect("room") as conn:
            assert conn.execute("SELECT count(*) FROM rooms").fetchone() == (5,)  # seeded there
        assert not list((run_dir / "data").glob("*.db"))  # no SQLite file was made
        assert any(f"PostgreSQL databases: {', '.join(SERVICE_NAMES)}" in line for line in said), said
        with server.connect() as conn:
            databases = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert databases - {"postgres", "template0", "template1"} == set(SERVICE_NAMES)
    finally:
        stack.close()
    try:
        assert not pid_alive(postgres_pid)
        assert not list((run_dir / "pids").glob("*.pid"))
        assert not port_in_use(server.port)
        assert (run_dir / "postgres" / "data" / "PG_VERSION").exists()  # kept for the next run
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
