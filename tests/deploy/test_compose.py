"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

Two kinds of checks. Against the code: every service's environment is exactly what its settings
class reads (nothing unknown, nothing host-bound left to its default), ports, peer URLs and
health paths are the stack runner's table, keys land where ``common.auth.keys`` looks, images are
pinned. And with the real Docker Compose v2 (built once by tools/go-tools/install.sh):
``config -q`` accepts the file, rejects an unknown key, and the resolved environment of every
service passes its settings' own prod validation. Without that binary those tests fail, saying
how to build it (``make test`` builds it first).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.auth.keys import ensure_service_keypair
from stack import compose_env
from stack.services import JWKS_PATH

from .catalogue import BY_NAME, DEPLOYED, READY_PATH, REPO, DeployedService, unpinned_reason

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
GO_TOOLS = REPO / "tools" / "go-tools" / "install.sh"
HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"
POSTGRES_INIT = REPO / "deploy" / "compose" / "postgres-init.sh"
CONFIG_TIMEOUT_S = 120  # one `config` takes well under a second idle; the machine may be loaded

# Variables a container may carry that no settings class reads. None today: the image sets
# SERVICE, SERVICE_PORT, EVENT_CONTRACTS_DIR and RUN_DIR itself.
UNPREFIXED_ALLOWED: frozenset[str] = frozenset()


# --------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as YAML (anchors and merge keys applied; ``${...}`` left as text)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def _service(compose: Mapping[str, Any], name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def _environment(definition: Mapping[str, Any]) -> dict[str, str]:
    env = definition.get("environment") or {}
    assert isinstance(env, dict), "write environment as a mapping (NAME: value)"
    return {str(k): str(v) for k, v in env.items()}


def _containers_of(deployed: DeployedService) -> list[str]:
    """The compose services that run this service's code: it and its migration job."""
    return [deployed.name, f"{deployed.name}-migrate"]


# ------------------------------------------------------------------------- against the code


def test_top_level_shape(compose: dict[str, Any]) -> None:
    assert compose.get("name") == "reservations"
    assert "version" not in compose, "the Compose spec has no version key (obsolete)"
    names = set(compose["services"])
    expected = {s.name for s in DEPLOYED} | {f"{s.name}-migrate" for s in DEPLOYED}
    expected |= {"postgres", "kafka", "mailpit", "zipkin"}
    assert names == expected


def test_environment_is_exactly_what_the_settings_read(
    compose: dict[str, Any], deployed: DeployedService
) -> None:
    others = tuple(s.env_prefix for s in DEPLOYED if s is not deployed)
    for container in _containers_of(deployed):
        env = _environment(_service(compose, container))
        names = set(env)
        unknown = {n for n in names if n.startswith(deployed.env_prefix)} - deployed.env_names
        assert not unknown, (
            f"{container}: {sorted(unknown)} are no setting of {deployed.settings_class.__name__}"
        )
        foreign = {n for n in names if n.startswith(others)}
        assert not foreign, f"{container}: another service's variables {sorted(foreign)}"
        stray = names - deployed.env_names - {n for n in names if n.startswith(others)} - UNPREFIXED_ALLOWED
        assert not stray, f"{container}: {sorted(stray)} are read by nobody"
        missing = deployed.required_env_names - names
        assert not missing, (
            f"{container}: {sorted(missing)} keep a default that only works on one host "
            "(loopback, a placeholder secret, a run-folder path)"
        )


def test_migration_job_and_service_share_one_environment(
    compose: dict[str, Any], deployed: DeployedService
) -> None:
    service, job = (_environment(_service(compose, c)) for c in _containers_of(deployed))
    assert service == job, "the job must migrate the database the service uses, with the same settings"


def test_ports_urls_and_hosts_match_the_runners_table(
    compose: dict[str, Any], deployed: DeployedService
) -> None:
    env = _environment(_service(compose, deployed.name))
    p = deployed.env_prefix
    assert env[f"{p}PORT"] == str(deployed.port)
    assert env[f"{p}MANAGEMENT_PORT"] == str(deployed.management_port)
    assert env[f"{p}HOST"] == "0.0.0.0"
    assert env[f"{p}MANAGEMENT_HOST"] == "0.0.0.0"
    assert env[f"{p}KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env[f"{p}ENV"] == "prod"
    assert env[f"{p}JWKS_URL"] == f"http://auth:{BY_NAME['auth'].port}{JWKS_PATH}"
    for name, value in env.items():
        peer = name.removeprefix(p).removesuffix("_URL").lower()
        if name.endswith("_URL") and peer in BY_NAME:
            # The service name as host, looked up for every replica's address (common.http.discovery).
            assert value == f"dns+http://{peer}:{BY_NAME[peer].port}", name
    hosts = json.loads(env[f"{p}ALLOWED_HOSTS"])
    # Its own name (what peers send), and 127.0.0.1 (what the HEALTHCHECK sends).
    assert deployed.name in hosts
    assert "127.0.0.1" in hosts
    assert "*" not in hosts
    for container in _containers_of(deployed):
        build = _service(compose, container)["build"]
        assert build["context"] == "."
        assert build["args"] == {"SERVICE": deployed.name, "PORT": str(deployed.port)}


def test_only_the_gateway_and_the_uis_are_published(compose: dict[str, Any]) -> None:
    published = {name: d.get("ports", []) for name, d in compose["services"].items() if d.get("ports")}
    assert set(published) == {"gateway", "mailpit", "zipkin"}
    targets = {name: [str(p).rsplit(":", 1)[1] for p in ports] for name, ports in published.items()}
    assert targets["gateway"] == [str(BY_NAME["gateway"].port), str(BY_NAME["gateway"].management_port)]
    for ports in published.values():
        assert all(str(p).startswith("127.0.0.1:") for p in ports), "publish on loopback only"


def test_migrations_run_once_before_each_service(compose: dict[str, Any], deployed: DeployedService) -> None:
    assert deployed.has_migrations
    job = _service(compose, f"{deployed.name}-migrate")
    assert job["command"] == ["seed" if deployed.seeds else "migrate"], "seed migrates first, then seeds"
    assert job["restart"] == "no"
    assert job["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    needs = _service(compose, deployed.name)["depends_on"]
    assert needs[f"{deployed.name}-migrate"] == {"condition": "service_completed_successfully"}
    assert needs["kafka"] == {"condition": "service_healthy"}


def test_every_awaited_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    built_with_healthcheck = "HEALTHCHECK" in DOCKERFILE.read_text()
    for name, definition in compose["services"].items():
        for dependency, how in (definition.get("depends_on") or {}).items():
            if how["condition"] != "service_healthy":
                continue
            target = _service(compose, dependency)
            has = "healthcheck" in target or ("build" in target and built_with_healthcheck)
            assert has, f"{name} waits for {dependency} to be healthy, which has no healthcheck"


def test_replicas_show_balancing(compose: dict[str, Any]) -> None:
    room = _service(compose, "room")
    assert room.get("deploy", {}).get("replicas", 1) >= 2
    assert "container_name" not in room, "replicas need a generated name"
    assert "ports" not in room, "replicas can't share a published port"


def test_a_database_per_service(compose: dict[str, Any], deployed: DeployedService) -> None:
    postgres = _environment(_service(compose, "postgres"))
    assert postgres["SERVICE_DATABASES"].split() == [s.name for s in DEPLOYED if s.has_migrations]
    upper = deployed.name.upper()
    assert postgres[f"DB_PASSWORD_{upper}"].startswith(f"${{DB_PASSWORD_{upper}:?")
    url = _environment(_service(compose, deployed.name))[f"{deployed.env_prefix}DATABASE_URL"]
    pattern = rf"postgresql\+psycopg://{deployed.name}:\$\{{DB_PASSWORD_{upper}:\?[^}}]*\}}@postgres:5432/{deployed.name}"
    assert re.fullmatch(pattern, url), url
    mounts = _service(compose, "postgres")["volumes"]
    assert (
        "./deploy/compose/postgres-init.sh:/docker-entrypoint-initdb.d/10-service-databases.sh:ro" in mounts
    )
    assert POSTGRES_INIT.stat().st_mode & 0o111, "the init script must be executable"


def test_the_service_drivers_are_locked_for_each_image(deployed: DeployedService) -> None:
    """The URL names psycopg: ``uv sync --package <service>`` must install it."""
    lock = _lock_packages()
    closure = _runtime_closure(lock, deployed.distribution)
    assert "psycopg" in closure
    # The slim image has no libpq: the driver must bring its own (psycopg[binary]).
    assert "psycopg-binary" in closure


def test_keys_land_where_the_services_look(compose: dict[str, Any], deployed: DeployedService) -> None:
    service = _service(compose, deployed.name)
    env = _environment(service)
    keys_dir = env[f"{deployed.env_prefix}SERVICE_KEYS_DIR"]
    secrets = {s["target"]: s for s in service["secrets"]}
    own = secrets[f"{keys_dir}/{deployed.name}.key"]
    assert own["source"] == f"{deployed.name}-key"
    assert (own["uid"], own["gid"], own["mode"]) == ("10001", "10001", "0400"), "the service's user only"
    configs = {c["target"]: c["source"] for c in service["configs"]}
    for peer in DEPLOYED:
        assert configs[f"{keys_dir}/{peer.name}.pub"] == f"{peer.name}-pub"
    if deployed.name == "auth":
        from auth_service.adapters.signing_keys import SIGNING_KEY_NAME

        user_dir = env["AUTH_USER_TOKEN_KEYS_DIR"]
        assert user_dir != keys_dir, "every .pub in the service keys folder is a service identity"
        assert secrets[f"{user_dir}/{SIGNING_KEY_NAME}.key"]["source"] == "user-token-key"
        assert configs[f"{user_dir}/{SIGNING_KEY_NAME}.pub"] == "user-token-pub"
    else:
        assert len(secrets) == 1, "a service holds no other private key"


def test_every_variable_comes_from_the_generated_env(compose: dict[str, Any]) -> None:
    """What compose interpolates or mounts is exactly what ``stack compose-env`` writes."""
    text = COMPOSE_FILE.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    optional = set(re.findall(r"\$\{([A-Z0-9_]+):-", text))
    sources = {v["environment"] for v in (*compose["secrets"].values(), *compose["configs"].values())}
    generated = set(compose_env.generate())
    assert required | sources == generated
    assert optional <= {
        "GATEWAY_PUBLISHED_PORT",
        "GATEWAY_METRICS_PUBLISHED_PORT",
        "MAILPIT_UI_PORT",
        "ZIPKIN_UI_PORT",
    }
    assert not optional & generated
    assert set(re.findall(r"\$\{?([A-Za-z0-9_]+)", text)) <= required | optional, (
        "every ${VAR} is one of these"
    )


def test_generated_keys_load_as_the_services_own(tmp_path: Path) -> None:
    """The PEM the generator writes is what ``common.auth.keys`` would have written itself."""
    values = compose_env.parse(compose_env.render(compose_env.generate(["room"])))
    (tmp_path / "room.key").write_text(values["SERVICE_KEY_ROOM"])
    (tmp_path / "room.pub").write_text(values["SERVICE_PUB_ROOM"])
    before = (tmp_path / "room.pub").stat().st_mtime_ns
    key = ensure_service_keypair(tmp_path, "room")
    assert (tmp_path / "room.pub").stat().st_mtime_ns == before, "the .pub matched: not rewritten"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["room.key", "room.pub"]
    assert key.public_key().public_bytes_raw()  # an Ed25519 key


def test_env_file_is_never_committed() -> None:
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".env"], cwd=REPO, capture_output=True, check=False
    )
    assert tracked.returncode != 0, ".env is tracked by git"


def test_generator_never_prints_a_secret(tmp_path: Path) -> None:
    out = tmp_path / "x.env"
    cmd = [sys.executable, "-m", "stack", "compose-env", "--output", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    assert "wrote" in first.stdout
    assert "kept" in second.stdout
    printed = first.stdout + first.stderr + second.stdout + second.stderr
    values = compose_env.parse(out.read_text())
    for name, value in values.items():
        for part in value.splitlines():
            assert part.startswith("-----") or part not in printed, f"{name} was printed"
    assert out.stat().st_mode & 0o077 == 0, "the .env is readable by its owner only"


# ------------------------------------------------------------------------------- the image


def test_dockerfile_is_multi_stage_without_dev_tools() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE)
    assert len(froms) >= 3
    assert {"build", "runtime"} <= {alias for _, alias in froms}
    syncs = re.findall(r"uv sync [^\n]*", text)
    assert syncs
    assert all("--frozen" in s and "--no-dev" in s and '--package "${SERVICE}-service"' in s for s in syncs)
    assert re.search(r"^USER app$", text, re.MULTILINE), "runs as the non-root user"
    assert re.search(r"useradd --system --uid 10001", text)
    assert 'CMD ["python", "/app/healthcheck.py"]' in text
    assert "COPY deploy/docker/healthcheck.py /app/healthcheck.py" in text
    assert "curl" not in text.split("HEALTHCHECK", 1)[1]


def test_dockerfile_images_are_pinned() -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, re.MULTILINE))
    assert set(args) == {"PYTHON_IMAGE", "UV_IMAGE"}
    assert args["UV_IMAGE"].startswith("ghcr.io/astral-sh/uv:")
    for image in args.values():
        assert unpinned_reason(image) is None, f"{image}: {unpinned_reason(image)}"
    for image, _ in re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE):
        assert image.startswith("${") or unpinned_reason(image) is None, image


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, definition in compose["services"].items():
        if "build" in definition:
            assert "image" not in definition, f"{name}: built here; the Dockerfile pins its bases"
            continue
        image = definition["image"]
        assert unpinned_reason(image) is None, f"{name}: {image}: {unpinned_reason(image)}"


def test_build_context_keeps_out_secrets_and_keeps_what_the_image_copies() -> None:
    ignored = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for must in (".env", ".run", ".git", "**/.venv", "**/tests"):
        assert must in ignored
    copied = re.findall(r"^COPY (?!--from)(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    mounted = re.findall(r"type=bind,source=([^,]+)", DOCKERFILE.read_text())
    for path in {*copied, *mounted}:
        concrete = path.replace("${SERVICE}", "room")
        assert (REPO / concrete).exists(), path
        assert not any(concrete == i or concrete.startswith(i.rstrip("/") + "/") for i in ignored), path


def test_healthcheck_probes_the_ready_path(tmp_path: Path) -> None:
    """The image's probe against a real HTTP server: 200 → healthy, 503 or nothing → unhealthy."""
    assert f'READY_PATH = "{READY_PATH}"' in HEALTHCHECK.read_text()
    for spec in DEPLOYED:
        assert READY_PATH in (REPO / "contracts" / "openapi" / f"{spec.name}.yaml").read_text()
    status = {"code": 200}
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"{self.path} {self.headers['Host']}")
            self.send_response(status["code"] if self.path == READY_PATH else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def probe(**env: str) -> int:
        clean = {k: v for k, v in os.environ.items() if not k.endswith("_PORT")}
        run = subprocess.run(
            [sys.executable, str(HEALTHCHECK)], env={**clean, **env}, capture_output=True, timeout=60
        )
        return run.returncode

    try:
        assert probe(SERVICE="room", ROOM_PORT=str(port), SERVICE_PORT="1") == 0
        assert probe(SERVICE="room", SERVICE_PORT=str(port)) == 0  # the image's default port
        status["code"] = 503
        assert probe(SERVICE="room", ROOM_PORT=str(port)) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert probe(SERVICE="room", ROOM_PORT=str(port)) == 1  # nothing listens
    assert seen[0] == f"{READY_PATH} 127.0.0.1:{port}"


# ------------------------------------------------------------- with the real Compose v2 CLI


@pytest.fixture(scope="module")
def compose_bin() -> str:
    path = (
        os.environ.get("COMPOSE_BIN")
        or subprocess.run(
            ["bash", str(GO_TOOLS), "compose", "--path"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    if os.access(path, os.X_OK):
        return path
    pytest.fail(f"no Docker Compose CLI at {path}: `make compose-cli` builds it (minutes, once)")


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / ".env"
    assert compose_env.write_env(path)
    return path


def _compose(
    binary: str, *args: str, env_file: Path | None, compose_file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    # A clean environment: nothing of the caller's (e.g. a POSTGRES_PASSWORD) may satisfy the file.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(REPO))}
    cmd = [binary, "-f", str(compose_file), "--project-directory", str(REPO)]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=CONFIG_TIMEOUT_S)


def test_compose_config_accepts_the_file(compose_bin: str, env_file: Path) -> None:
    run = _compose(compose_bin, "config", "-q", env_file=env_file)
    assert run.returncode == 0, run.stderr
    assert not run.stdout, "-q prints nothing (and never a secret)"


def test_the_docker_cli_runs_it_as_its_compose_plugin(
    compose_bin: str, env_file: Path, tmp_path: Path
) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("no docker CLI on PATH (Debian: apt-get install docker.io or docker-cli)")
    plugins = tmp_path / "cli-plugins"
    plugins.mkdir()
    (plugins / "docker-compose").symlink_to(compose_bin)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path)}
    cmd = [docker, "compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "-q"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CONFIG_TIMEOUT_S)
    assert run.returncode == 0, run.stderr


def test_compose_config_rejects_drift(compose_bin: str, env_file: Path, tmp_path: Path) -> None:
    """The validator is real: an unknown key, a bad type, a missing .env each fail."""
    text = COMPOSE_FILE.read_text()
    broken = {
        "unknown key": text.replace(
            "  room:\n    <<: *service\n", "  room:\n    <<: *service\n    replica: 2\n", 1
        ),
        "bad type": text.replace("replicas: 2", "replicas: two", 1),
        "unknown condition": text.replace("service_completed_successfully", "service_done", 1),
    }
    for what, variant in broken.items():
        assert variant != text, what
        path = tmp_path / "docker-compose.yml"
        path.write_text(variant)
        run = _compose(compose_bin, "config", "-q", env_file=env_file, compose_file=path)
        assert run.returncode != 0, f"{what} accepted"
    empty = tmp_path / "empty.env"
    empty.write_text("")
    run = _compose(compose_bin, "config", "-q", env_file=empty)
    assert run.returncode != 0
    assert "run uv run stack compose-env first" in run.stderr


@pytest.fixture(scope="module")
def resolved(compose_bin: str, env_file: Path) -> dict[str, Any]:
    """The model compose would run: anchors merged, every variable interpolated."""
    run = _compose(compose_bin, "config", "--format", "json", env_file=env_file)
    assert run.returncode == 0, run.stderr
    model: dict[str, Any] = json.loads(run.stdout)
    return model


def test_resolved_environment_passes_the_prod_settings(
    resolved: dict[str, Any], deployed: DeployedService, env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each container's environment builds its settings with env=prod: no placeholder secret,
    no ``*`` host, and every value of the right type."""
    values = compose_env.parse(env_file.read_text())
    for name in [n for n in os.environ if n.startswith(deployed.env_prefix)]:
        monkeypatch.delenv(name)
    env = resolved["services"][deployed.name]["environment"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = deployed.settings_class()
    assert settings.env == "prod"
    assert settings.port == deployed.port
    assert settings.management_port == deployed.management_port
    assert settings.service_shared_secret.get_secret_value() == values["SERVICE_SHARED_SECRET"]
    assert settings.cursor_secret.get_secret_value() == values[f"CURSOR_SECRET_{deployed.name.upper()}"]
    assert settings.database_url.endswith(
        f"{values[f'DB_PASSWORD_{deployed.name.upper()}']}@postgres:5432/{deployed.name}"
    )


def test_resolved_keys_and_replicas(resolved: dict[str, Any]) -> None:
    room = resolved["services"]["room"]
    assert room["deploy"]["replicas"] == 2
    key = next(s for s in room["secrets"] if s["source"] == "room-key")
    assert (key["uid"], key["gid"], key["mode"]) == ("10001", "10001", "0400")  # octal, as written
    assert resolved["secrets"]["room-key"]["environment"] == "SERVICE_KEY_ROOM"


def test_pem_values_survive_composes_dotenv_parser(compose_bin: str, env_file: Path) -> None:
    """Compose reads the PEM lines of the .env back byte for byte (its parser, not ours)."""
    run = _compose(compose_bin, "config", "--environment", env_file=env_file)
    assert run.returncode == 0, run.stderr
    values = compose_env.parse(env_file.read_text())
    pems = [n for n in values if n.startswith(compose_env.PEM_PREFIXES)]
    assert len(pems) == 2 * len(DEPLOYED) + 2
    for name in pems:
        assert f"{name}={values[name]}" in run.stdout, f"{name} changed on the way"


def _lock_packages() -> dict[str, dict[str, Any]]:
    import tomllib

    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return {p["name"]: p for p in lock["package"]}


def _runtime_closure(packages: Mapping[str, Mapping[str, Any]], root: str) -> set[str]:
    """Every package ``uv sync --no-dev --package root`` installs (with the extras asked for)."""
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while todo:
        name, extras = todo.pop()
        if name not in packages:
            continue
        first = name not in seen
        seen.add(name)
        package = packages[name]
        deps = list(package.get("dependencies", [])) if first else []
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        todo.extend((dep["name"], tuple(dep.get("extra", ()))) for dep in deps)
    return seen
