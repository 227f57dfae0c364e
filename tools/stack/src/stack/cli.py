"""``stack up | down | status | logs | stop | start | restart | pause | resume``: run the whole
system locally (see ``make up``) and, for labs, stop or freeze one process of it."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from stack import compose_env, logview
from stack.console import echo
from stack.control import ACTIONS, ControlError, send
from stack.databases import ENGINES
from stack.errors import StackError, StackInterrupted
from stack.instances import parse_instances, split_name
from stack.kafka import KafkaSetupError, KafkaStartError, default_run_dir
from stack.ports import HOST, port_open, probe
from stack.procs import owns_pid, read_pid
from stack.runner import Stack
from stack.services import SERVICE_NAMES, spec
from stack.shutdown import STACK_PID_FILE, down, read_state, write_runner_pid


def _run_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg.resolve()
    env = os.environ.get("RUN_DIR")
    return Path(env).resolve() if env else default_run_dir()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- up

# What `python -m auth_service seed` creates in dev (services/auth/src/auth_service/seed.py).
DEMO_ADMIN = "admin@example.com"
DEFAULT_ADMIN_PASSWORD = "admin-password"
DEMO_LICENSE = "DEMO-0000-0000-0001"


def _try_line(gateway: str) -> str:
    # Sign-up is the first flow of the walkthrough; it needs nothing seeded.
    return (
        f"curl -s -X POST {gateway}/api/v1/auth/signup -H 'Content-Type: application/json' "
        """-d '{"email": "ada@example.com", "password": "correct-horse-battery", "display_name": "Ada"}'"""
    )


def _print_green(stack: Stack, took: float) -> None:
    gateway = stack.url("gateway") if "gateway" in stack.service_names else None
    echo()
    echo(f"All green in {took:.1f} s.")
    echo()
    echo(_table(("service", "url", "pid", "ready"), stack.summary_rows()))
    echo()
    if gateway is not None:
        echo(f"  Gateway:   {gateway}")
        echo(f"  API docs:  {gateway}/docs")
        echo(f"  Console:   {gateway}/console   (ops console: log in as the admin)")
    if stack.service_names:
        first, last = (stack.management_url(n) for n in (stack.service_names[0], stack.service_names[-1]))
        echo(f"  Manage:    {first}/metrics … {last.rsplit(':', 1)[1]}: /metrics, internal /docs (loopback)")
    echo(f"  Kafka:     {stack.bootstrap_servers}")
    if stack.databases.port is not None:
        echo(
            f"  Databases: {stack.databases.url('<service>')}   (one per service; psql -h {HOST} -p "
            f"{stack.databases.port} -U postgres <service>)"
        )
    echo(f"  Mailbox:   {_rel(stack.mailbox_path)}")
    echo(f"  Logs:      {_rel(stack.logs_dir)}/<name>.log   (make logs)")
    if stack.demo_data and "auth" in stack.service_names:
        password = "$AUTH_ADMIN_PASSWORD" if os.environ.get("AUTH_ADMIN_PASSWORD") else DEFAULT_ADMIN_PASSWORD
        echo(f"  Demo:      admin {DEMO_ADMIN} / {password} · license key {DEMO_LICENSE} (3 seats)")
    if gateway is not None:
        echo(f"  Try:       {_try_line(gateway)}")
        echo('             (the whole walkthrough: README.md, "Try it")')
    echo()
    echo("Watching the processes. Ctrl-C here, or `make down` in another terminal, stops everything.")


def cmd_up(args: argparse.Namespace) -> int:
    """Start everything, wait for green, then supervise until Ctrl-C / SIGTERM / ``stack down``."""
    run_dir = _run_dir(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    echo(f"stack: run folder {_rel(run_dir)}")
    try:
        pid_file = write_runner_pid(run_dir)
    except StackError as exc:
        echo(f"error: {exc}", err=True)
        return 1
    stack: Stack | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stack is None or stack.stopping:
            return  # already stopping in order; a second Ctrl-C must not cut that short
        if not stack.stop_requested:
            echo(f"\n{signal.Signals(signum).name} received: stopping the stack …")
        stack.request_stop()
        if stack.in_blocking_call:
            raise KeyboardInterrupt  # Kafka start-up or Maven cannot poll for the request

    # SIGHUP: the terminal was closed; stop in order rather than die and orphan the children.
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    _stop_when_orphaned()
    try:
        stack = Stack(
            run_dir,
            kafka_port=args.kafka_port,
            kafka_controller_port=args.kafka_controller_port,
            kafka_brokers=args.kafka_brokers,
            base_port=args.base_port,
            smtp_port=args.smtp_port,
            services=args.services or None,
            instances=args.instances,
            log_level=args.log_level,
            demo_data=not args.no_seed,
            db=args.db,
            postgres_port=args.postgres_port,
            zipkin_port=None if args.no_zipkin else args.zipkin_port,
        )
        try:
            took = stack.start(timeout=args.timeout)
        except (StackInterrupted, KeyboardInterrupt):
            echo("stopped before the stack was green")
            return 0
        except (StackError, KafkaSetupError, KafkaStartError, TimeoutError) as exc:
            echo(f"\nerror: {exc}", err=True)
            if isinstance(exc, KafkaStartError) and exc.timed_out:
                echo(_more_time_hint(args.timeout), err=True)
            if stack.spawned_any:
                echo(f"everything started was stopped again; logs are in {_rel(stack.logs_dir)}", err=True)
            return 1
        _print_green(stack, took)
        with contextlib.suppress(KeyboardInterrupt):  # a signal while Kafka restarts
            stack.watch(restart=not args.no_restart)
        return 0
    finally:
        if stack is not None:
            stack.close()
        if read_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _more_time_hint(timeout: float) -> str:
    more = max(int(timeout * 2), 180)
    return (
        f'Kafka may just need more time on a busy machine: `make up ARGS="--timeout {more}"` '
        f"(or `uv run stack up --timeout {more}`); its whole log: `make logs s=kafka`."
    )


def _stop_when_orphaned(every: float = 1.0) -> None:
    """SIGTERM this runner (an orderly stop) if its parent (``make``, ``uv``, a shell) dies.

    Its children die with it anyway (``stack.lifeline``); this makes a killed ``make up`` stop
    the stack in order instead of leaving the runner behind. A parent-watch rather than
    ``PR_SET_PDEATHSIG``: the parent's forking thread may end long before the parent does.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# --------------------------------------------------------------------------- control

# How long `stack start|restart` waits for a process to serve. A service migrates, then starts:
# two Python start-ups, which took 100-190 s on a loaded 2-core machine (load average 25-35);
# the old 120 s reported "not ready" for a member that was ready a minute later.
CONTROL_TIMEOUT_S = 300.0


def cmd_control(args: argparse.Namespace) -> int:
    """Ask the running stack's runner to stop, start, restart, pause or resume one process."""
    run_dir = _run_dir(args.run_dir)
    pid_file = run_dir / STACK_PID_FILE
    runner = read_pid(pid_file)
    if runner is None or not owns_pid(runner, "stack", pid_file):
        echo(f"error: no stack is running from {_rel(run_dir)} (start it with `make up`)", err=True)
        return 1
    try:
        message = send(
            run_dir,
            args.command,
            args.name,
            timeout=args.timeout,
            runner_alive=lambda: owns_pid(runner, "stack", pid_file),
        )
    except ControlError as exc:
        echo(f"error: {exc}", err=True)
        return 1
    echo(message)
    return 0


# --------------------------------------------------------------------------- down / status


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the stack of this run folder, from any terminal; also cleans up after a killed runner."""
    down(_run_dir(args.run_dir), timeout=args.timeout)
    return 0


def _live_pid(run_dir: Path, name: str) -> str:
    path = run_dir / "pids" / f"{name}.pid"
    pid = read_pid(path)
    return str(pid) if pid is not None and owns_pid(pid, name, path) else "-"


def _held(state: dict[str, object], name: str, detail: str) -> str:
    """``detail``, or what `stack pause|stop` made of the process (the runner's state file)."""
    processes = state.get("processes")
    entry = processes.get(name) if isinstance(processes, dict) else None
    held = entry.get("state") if isinstance(entry, dict) else None
    if held == "paused":
        return f"paused (`stack resume {name}`)"
    if held == "stopped" and not detail.startswith(("ready", "listening")):
        return f"stopped (`stack start {name}`)"
    return detail


def cmd_status(args: argparse.Namespace) -> int:
    """Print each service's readiness (from its health endpoint); exit 0 only when all are ready."""
    run_dir = _run_dir(args.run_dir)
    state = read_state(run_dir) or {}
    base_port = int(state.get("base_port", args.base_port))
    kafka_port = int(state.get("kafka_port", args.kafka_port))
    smtp_port = int(state.get("smtp_port", args.smtp_port))
    names = list(state.get("services", {})) or list(SERVICE_NAMES)  # room, room-2, ...
    instance = {n: split_name(n) for n in names}
    urls = {n: f"http://{HOST}:{spec(s).port(base_port, i)}" for n, (s, i) in instance.items()}

    runner = read_pid(run_dir / STACK_PID_FILE)
    if runner is not None and owns_pid(runner, "stack", run_dir / STACK_PID_FILE):
        echo(f"stack runner: pid {runner} (run folder {_rel(run_dir)})")
    else:
        echo(f"stack runner: not running (run folder {_rel(run_dir)})")
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = dict(zip(names, pool.map(lambda n: probe(urls[n]), names), strict=True))
    rows = [(n, urls[n], _live_pid(run_dir, n), _held(state, n, results[n].detail)) for n in names]
    brokers = state.get("kafka_brokers")
    broker_ports = (
        {str(n): int(p) for n, p in brokers.items()} if isinstance(brokers, dict) else {"kafka": kafka_port}
    )
    for name, port in broker_ports.items():
        listening = "listening" if port_open(port) else "not listening"
        rows.append((name, f"{HOST}:{port}", _live_pid(run_dir, name), _held(state, name, listening)))
    rows.append(
        (
            "smtp sink",
            f"smtp://{HOST}:{smtp_port}",
            _live_pid(run_dir, "smtp"),
            _held(state, "smtp", "listening" if port_open(smtp_port) else "not listening"),
        )
    )
    if state.get("db") == "postgres" and isinstance(pg_port := state.get("postgres_port"), int):
        rows.append(
            (
                "postgres",
                f"postgresql://{HOST}:{pg_port}",
                _live_pid(run_dir, "postgres"),
                "listening" if port_open(pg_port) else "not listening",
            )
        )
    echo(_table(("service", "url", "pid", "ready"), rows))
    management = ", ".join(f"{n} :{spec(s).management_port(base_port, i)}" for n, (s, i) in instance.items())
    echo(f"management ports (/metrics, internal /docs): {management}")
    ready = sum(r.ready for r in results.values())
    echo(f"\n{ready}/{len(names)} services ready")
    return 0 if ready == len(names) else 1


# --------------------------------------------------------------------------- logs


def cmd_logs(args: argparse.Namespace) -> int:
    """Print the last lines of the logs, then follow them (like ``tail -F``), one line per event;
    ``--trace ID``: one request's lines across every log, in time order."""
    logs_dir = _run_dir(args.run_dir) / "logs"
    if args.names:
        paths = [logs_dir / f"{name}.log" for name in args.names]
    else:
        paths = sorted(logs_dir.glob("*.log"))
    if not paths:
        echo(f"no logs yet in {_rel(logs_dir)} (start the stack with `make up`)")
        return 0
    render = logview.Renderer(
        width=max(len(p.stem) for p in paths), colour=logview.wants_colour(sys.stdout), raw=args.json
    )
    try:
        if args.trace:
            return 0 if logview.show_trace(paths, args.trace, render, sys.stdout) else 1
        logview.show(paths, render, args.lines, args.follow, sys.stdout)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `stack logs | head`: the reader is gone, so are we
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


# --------------------------------------------------------------------------- entry point


def cmd_compose_env(args: argparse.Namespace) -> int:
    """Write the compose ``.env`` unless one exists; name what it holds, never a value."""
    path: Path = args.output
    if not compose_env.write_env(path, force=args.force):
        echo(f"{path} exists: kept (its passwords are in the database volume); --force replaces it")
        return 0
    echo(f"wrote {path} (mode 0600, git-ignored): service key pairs, user-token key pair,")
    echo("  database passwords, SERVICE_SHARED_SECRET, CURSOR_SECRET_<NAME>, ADMIN_PASSWORD")
    echo("next: docker compose up --build   (the admin's password: grep ADMIN_PASSWORD .env)")
    return 0


def _instances_arg(value: str) -> dict[str, int]:
    try:
        return parse_instances(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=None, help="default: $RUN_DIR or <repo>/.run")
    sub = parser.add_subparsers(dest="command", required=True)

    def ports(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--base-port", type=int, default=8000, help="gateway port; others follow (default 8000)"
        )
        p.add_argument("--kafka-port", type=int, default=9092)
        p.add_argument("--smtp-port", type=int, default=1025)

    up = sub.add_parser("up", help="start Kafka, the SMTP sink and the services; Ctrl-C stops all")
    ports(up)
    up.add_argument("--kafka-controller-port", type=int, default=None, help="default: Kafka port + 1")
    up.add_argument("--zipkin-port", type=int, default=9411, help="the trace UI (Zipkin) port (default 9411)")
    up.add_argument("--no-zipkin", action="store_true", help="run without the trace backend (no export)")
    up.add_argument(
        "--kafka-brokers",
        type=int,
        default=1,
        choices=range(1, 10),
        metavar="N",
        help="Kafka brokers (default 1); 3 makes a KRaft cluster, topics with 3 replicas and "
        "min.insync.replicas=2; broker n on Kafka port + 2(n-1), controller on the next port",
    )
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to get green (default 90)")
    up.add_argument("--no-restart", action="store_true", help="report crashed processes, don't restart")
    up.add_argument("--log-level", default="INFO")
    up.add_argument("--no-seed", action="store_true", help="skip the demo data (admin, license, rooms)")
    up.add_argument("--services", nargs="+", choices=SERVICE_NAMES, help="run only these services")
    up.add_argument(
        "--instances",
        type=_instances_arg,
        default={},
        metavar="SERVICE=N,...",
        help="run N instances of a service, e.g. room=2,notification=2 (default 1 each; "
        "room-2 is the second, 10 ports above room)",
    )
    up.add_argument(
        "--db",
        choices=ENGINES,
        default="sqlite",
        help="sqlite (default: a file per service) or postgres (a local server, a database per service)",
    )
    up.add_argument(
        "--postgres-port",
        type=int,
        default=None,
        help="PostgreSQL's port with --db postgres (default: the port after Kafka's: 9094 for one broker)",
    )
    up.set_defaults(func=cmd_up)

    dn = sub.add_parser("down", help="stop the running stack (from any terminal)")
    dn.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the runner")
    dn.set_defaults(func=cmd_down)

    st = sub.add_parser("status", help="readiness of every service")
    ports(st)
    st.set_defaults(func=cmd_status)

    lg = sub.add_parser("logs", help="show and follow the logs")
    lg.add_argument("names", nargs="*", help="e.g. room kafka smtp (default: all)")
    lg.add_argument("-n", "--lines", type=int, default=20)
    lg.add_argument("--no-follow", dest="follow", action="store_false")
    lg.add_argument("--json", action="store_true", help="the lines as written (JSON), not for people")
    lg.add_argument(
        "--trace", metavar="ID", help="one request's lines (its trace id or request id) across every log"
    )
    lg.set_defaults(func=cmd_logs)

    env = sub.add_parser(
        "compose-env", help="generate the .env of docker-compose.yml: keys and secrets (printed never)"
    )
    env.add_argument("--output", type=Path, default=Path(".env"), help="default: ./.env")
    env.add_argument("--force", action="store_true", help="replace an existing file (new keys, passwords)")
    env.set_defaults(func=cmd_compose_env)

    what = {
        "stop": "stop one process; it stays down (no automatic restart) until `stack start`",
        "start": "start a process stopped by `stack stop` (or one that gave up); waits until it serves",
        "restart": "stop, then start one process",
        "pause": "freeze one process (SIGSTOP): it keeps its port but answers nothing",
        "resume": "continue a paused process (SIGCONT)",
    }
    for action in ACTIONS:
        ctl = sub.add_parser(action, help=what[action])
        ctl.add_argument(
            "name",
            help="a service (gateway, auth, member, room, inventory, notification), "
            "an instance of one (room-2), kafka (kafka-1, kafka-2 … with --kafka-brokers 3) or smtp",
        )
        ctl.add_argument(
            "--timeout",
            type=float,
            default=CONTROL_TIMEOUT_S,
            help=f"seconds to wait for it (default {CONTROL_TIMEOUT_S:.0f})",
        )
        ctl.set_defaults(func=cmd_control)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stack`` command."""
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
