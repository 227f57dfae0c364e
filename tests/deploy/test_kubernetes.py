"""deploy/k8s, checked offline: rendered by the real kustomize, validated by kubernetes-validate
(strict: unknown fields are errors), and compared with the code: the stack's service table
(ports, health paths, who seeds), the settings classes (every variable a service reads), the
key layout common.auth reads, and the pod security every container must have.

kustomize is built once from the Go module proxy (tools/go-tools/install.sh, which
`make test` runs first, cached); the dev overlay's secrets are generated into a copy of the
tree, never into the checkout. What needs a cluster is listed in deploy/k8s/README.md.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import SecretStr

from auth_service.adapters.signing_keys import load_signing_key
from common.auth import build_service_auth
from common.settings import ServiceSettings
from common.timeouts import chains

from .catalogue import BY_NAME, DEPLOYED, LIVE_PATH, READY_PATH, DeployedService, unpinned_reason

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
GO_TOOLS = ROOT / "tools" / "go-tools" / "install.sh"
SECRETS_TOOL = ROOT / "tools" / "k8s" / "dev_secrets.py"
# The newest schemas kubernetes-validate ships, and the oldest release the files are for
# (1.30: the preStop sleep action is on by default there).
NEWEST, OLDEST = "1.37.0", "1.30.0"
SERVICE_KEYS_VOLUME = "service-keys"
USER_TOKEN_KEYS_VOLUME = "user-token-keys"
# Services with several instances behind an HPA (state in the database and Kafka only); auth
# and notification keep a fixed count (auth's login throttle counts per process).
AUTOSCALED = {"gateway", "member", "room", "inventory"}
# Containers allowed a writable root filesystem, and why.
WRITABLE_ROOT = {"kafka": "the image's start script writes the broker's properties into /opt/kafka/config"}

# Building kustomize from source can take minutes on a loaded 2-core machine (make test builds
# it before pytest runs; this covers a first `pytest tests/deploy` on a fresh machine).
pytestmark = pytest.mark.timeout(1800)


def _load_secrets_tool() -> ModuleType:
    spec = util.spec_from_file_location("dev_secrets", SECRETS_TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = util.module_from_spec(spec)
    sys.modules["dev_secrets"] = module
    spec.loader.exec_module(module)
    return module


dev_secrets = _load_secrets_tool()


def secret_names(service: DeployedService) -> set[str]:
    """Variables holding secrets: ``SecretStr`` fields, and the database URL (its password)."""
    fields = service.settings_class.model_fields
    secret = {f for f, info in fields.items() if info.annotation is SecretStr}
    return {service.env_name(f) for f in secret | {"database_url"}}


def upstreams(service: DeployedService) -> set[str]:
    """The peers it calls: its ``<peer>_url`` fields."""
    urls = {f.removesuffix("_url") for f in service.settings_class.model_fields if f.endswith("_url")}
    return urls - {"database", "jwks"}


@contextmanager
def environment_of(service: DeployedService, env: Mapping[str, str]) -> Iterator[None]:
    """``env`` as the process environment, the service's own variables hidden otherwise."""
    hidden = {k: v for k, v in os.environ.items() if k.startswith(service.env_prefix)}
    for key in hidden:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(hidden)


def load_settings(service: DeployedService, env: Mapping[str, str]) -> ServiceSettings:
    """The settings the service would read in its pod (validators included)."""
    with environment_of(service, env):
        return service.settings_class()


@dataclass(frozen=True)
class Rendered:
    """The documents of one ``kustomize build``, by kind and name."""

    docs: list[dict[str, Any]]
    text: str

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} in the rendered manifests"
        return found[0]

    def by_prefix(self, kind: str, prefix: str) -> dict[str, Any]:
        """A generated object (``room-config-<hash>``) by the name it was generated under."""
        found = [d for d in self.all(kind) if d["metadata"]["name"].rsplit("-", 1)[0] == prefix]
        assert len(found) == 1, f"{kind}/{prefix}-<hash>: {len(found)} in the rendered manifests"
        return found[0]

    def data(self, kind: str, name: str) -> dict[str, str]:
        """A ConfigMap's or Secret's data, decoded."""
        obj = self.get(kind, name)
        if kind == "Secret":
            return {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        return dict(obj.get("data", {}))


@pytest.fixture(scope="session")
def kustomize() -> Path:
    """The kustomize binary (built and cached by the installer; instant when cached)."""
    done = subprocess.run(["bash", str(GO_TOOLS), "kustomize"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"building kustomize failed:\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s with freshly generated dev secrets (the checkout's own are left out)."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets"))
    dev_secrets.generate(copy / "overlays" / "dev" / "secrets")
    return copy


def build(kustomize: Path, folder: Path) -> Rendered:
    done = subprocess.run([str(kustomize), "build", str(folder)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"kustomize build {folder.name} failed:\n{done.stderr}"
    return Rendered([d for d in yaml.safe_load_all(done.stdout) if d], done.stdout)


@pytest.fixture(scope="session")
def dev(kustomize: Path, tree: Path) -> Rendered:
    return build(kustomize, tree / "overlays" / "dev")


@pytest.fixture(scope="session")
def base(kustomize: Path, tree: Path) -> Rendered:
    return build(kustomize, tree / "base")


def pod_templates(rendered: Rendered) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(kind/name, pod spec)`` of every workload."""
    for kind in ("Deployment", "StatefulSet", "Job"):
        for obj in rendered.all(kind):
            yield f"{kind}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{obj['metadata']['name']}: one container expected"
    return dict(containers[0])


def environment(rendered: Rendered, obj: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``(from ConfigMaps and plain env, from Secrets)``: every variable the container gets."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    c = container(obj)
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            plain.update(rendered.data("ConfigMap", source["configMapRef"]["name"]))
        else:
            secret.update(rendered.data("Secret", source["secretRef"]["name"]))
    for var in c.get("env", []):
        assert "value" in var, f"{var['name']}: only plain values and envFrom are used"
        plain[var["name"]] = var["value"]
    overlap = plain.keys() & secret.keys()
    assert not overlap, f"set twice: {sorted(overlap)}"
    return plain, secret


def volume_mount(obj: dict[str, Any], volume: str) -> str:
    mounts = {m["name"]: m["mountPath"] for m in container(obj).get("volumeMounts", [])}
    return str(mounts[volume])


# -- the files are valid Kubernetes ---------------------------------------------------------------


def test_rendered_overlay_validates_strictly(dev: Rendered, tmp_path: Path) -> None:
    """kubernetes-validate --strict over the rendered dev overlay, as a person would run it:
    the newest schemas it ships, unknown fields rejected."""
    rendered = tmp_path / "dev.yaml"
    rendered.write_text(dev.text)
    cli = Path(sys.executable).with_name("kubernetes-validate")
    done = subprocess.run(
        [str(cli), "--strict", "--quiet", str(rendered)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(dev.docs) > 40  # a whole system, not an empty file


@pytest.mark.parametrize(("which", "version"), [("base", NEWEST), ("dev", OLDEST)])
def test_base_and_oldest_release_validate_strictly(
    dev: Rendered, base: Rendered, which: str, version: str
) -> None:
    """The base alone (what another overlay builds on), and the overlay on the oldest release
    the files are for."""
    failures = []
    for doc in (base if which == "base" else dev).docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert failures == []


# -- every service, as the stack's table says ----------------------------------------------------


def test_every_service_has_its_objects(dev: Rendered) -> None:
    names = {row.name for row in DEPLOYED}
    ours = {d["metadata"]["name"] for d in dev.all("Deployment")} - {"mailpit"}
    assert ours == names
    assert {d["metadata"]["name"] for d in dev.all("Job")} == {f"{n}-migrate" for n in names}
    assert {d["metadata"]["name"] for d in dev.all("PodDisruptionBudget")} == names
    assert {d["metadata"]["name"] for d in dev.all("HorizontalPodAutoscaler")} == AUTOSCALED
    assert {d["metadata"]["name"] for d in dev.all("Service")} == names | {"kafka", "postgres", "mailpit"}
    assert {d["metadata"]["namespace"] for d in dev.docs if d["kind"] != "Namespace"} == {"roomlicense-dev"}


def test_ports_and_probes_match_the_stack_table(dev: Rendered) -> None:
    for row in DEPLOYED:
        deployment = dev.get("Deployment", row.name)
        c = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": row.port, "management": row.management_port}, row.name
        assert row.settings_class.model_fields["port"].default == row.port, row.name
        plain, _ = environment(dev, deployment)
        assert plain[row.env_name("port")] == str(row.port)
        assert plain[row.env_name("management_port")] == str(row.management_port)
        assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(
            row.management_port
        )
        allowed = yaml.safe_load(plain[row.env_name("allowed_hosts")])
        for probe, path in (
            ("readinessProbe", READY_PATH),
            ("livenessProbe", LIVE_PATH),
            ("startupProbe", LIVE_PATH),
        ):
            get = c[probe]["httpGet"]
            assert (get["path"], get["port"]) == (path, "http"), f"{row.name} {probe}"
            # The service answers only its allowed Host names: a probe naming the pod IP gets 400.
            host = {h["name"]: h["value"] for h in get["httpHeaders"]}["Host"]
            assert host in allowed, f"{row.name} {probe}: Host {host} not in {allowed}"
        service = dev.get("Service", row.name)
        assert service["spec"]["ports"] == [{"name": "http", "port": row.port, "targetPort": "http"}], (
            row.name
        )
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), row.name
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), row.name
        # Callers resolve the name to the pods (client-side balancing); the edge has a virtual IP.
        assert (service["spec"].get("clusterIP") == "None") == (row.name != "gateway"), row.name


def test_the_probed_paths_are_served() -> None:
    """The stack's health paths (what the probes above ask) are the app factory's routes."""
    factory = (ROOT / "libs" / "common" / "src" / "common" / "app_factory.py").read_text()
    assert f'"{READY_PATH}"' in factory
    assert f'"{LIVE_PATH}"' in factory


def test_one_migration_job_per_service_and_the_seeders_seed(dev: Rendered, base: Rendered) -> None:
    for row in DEPLOYED:
        job = container(base.get("Job", f"{row.name}-migrate"))
        assert job["command"] == ["python", "-m", row.package, "migrate"], row.name
        # The dev overlay seeds the demo data where the stack does (`make up`): migrate, then seed.
        dev_job = container(dev.get("Job", f"{row.name}-migrate"))
        action = "seed" if row.seeds else "migrate"
        assert dev_job["command"] == ["python", "-m", row.package, action], row.name
        serve = container(dev.get("Deployment", row.name))
        assert serve["command"] == ["python", "-m", row.package, "serve"], row.name
        # Same image, same settings: the Job migrates the database the service will use.
        assert dev_job["image"] == serve["image"], row.name
        assert environment(dev, dev.get("Job", f"{row.name}-migrate")) == environment(
            dev, dev.get("Deployment", row.name)
        ), row.name


def test_images_are_pinned(dev: Rendered) -> None:
    images = {row.name: container(dev.get("Deployment", row.name))["image"] for row in DEPLOYED}
    # The image of a service is tagged with its package's version (the Dockerfile builds that).
    expected = {row.name: f"roomlicense/{row.name}:{metadata.version(row.distribution)}" for row in DEPLOYED}
    assert images == expected
    for where, spec in pod_templates(dev):
        for c in spec["containers"]:
            reason = unpinned_reason(c["image"])
            assert reason is None, f"{where}: {c['image']}: {reason}"


# -- settings: exactly what each service reads ---------------------------------------------------


def test_every_variable_is_a_setting_its_service_reads(dev: Rendered) -> None:
    """No variable the service would ignore (a typo, a removed setting: pydantic-settings drops
    unknown names silently), and every setting a cluster must decide is set."""
    for row in DEPLOYED:
        plain, secret = environment(dev, dev.get("Deployment", row.name))
        given = plain.keys() | secret.keys()
        unknown = given - row.env_names
        assert not unknown, f"{row.name}: not settings of {row.settings_class.__name__}: {sorted(unknown)}"
        missing = (row.required_env_names | secret_names(row)) - given
        assert not missing, f"{row.name}: must be set in a cluster: {sorted(missing)}"
        peers = {k for k in given if k.endswith("_URL")} - {
            row.env_name("database_url"),
            row.env_name("jwks_url"),
        }
        assert peers == {row.env_name(f"{p}_url") for p in upstreams(row)}, row.name


def test_secrets_come_from_secrets_only(dev: Rendered, base: Rendered) -> None:
    for row in DEPLOYED:
        plain, secret = environment(dev, dev.get("Deployment", row.name))
        assert secret_names(row) <= secret.keys(), row.name
        assert not (secret_names(row) & plain.keys()), f"{row.name}: a secret in a ConfigMap"
        in_base = {k for cm in base.all("ConfigMap") for k in cm.get("data", {})}
        assert not (secret_names(row) & in_base), f"{row.name}: a secret in the base"
    assert base.all("Secret") == []  # the base names its Secrets; an overlay (or the cluster) makes them


def test_the_settings_load_and_point_at_the_cluster(dev: Rendered) -> None:
    """What each service would read in its pod: valid for env=prod, peers by their Service names."""
    loaded = {}
    for row in DEPLOYED:
        deployment = dev.get("Deployment", row.name)
        plain, secret = environment(dev, deployment)
        settings = load_settings(row, {**plain, **secret})  # raises what the service would
        loaded[row.name] = settings
        assert settings.env == "prod"
        assert settings.port == row.port
        assert settings.host == "0.0.0.0"
        assert "*" not in settings.allowed_hosts
        for peer, url in settings.upstream_urls().items():
            target = BY_NAME[peer]
            # A headless Service's name resolves to every ready pod: the caller balances over
            # them (common.http.discovery) instead of sticking to the one its pool connected to.
            assert dev.get("Service", peer)["spec"].get("clusterIP") == "None", f"{peer}: not headless"
            assert url == f"dns+http://{peer}:{target.port}", f"{row.name} -> {peer}"
        auth = BY_NAME["auth"]
        assert settings.jwks_url == f"http://auth:{auth.port}/.well-known/jwks.json"
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        db = urlsplit(settings.database_url)
        assert (db.scheme, db.hostname, db.port, db.path) == (
            "postgresql+psycopg",
            "postgres",
            5432,
            f"/{row.name}",
        ), row.name
        assert db.username == row.name, "one role per service"
        assert settings.service_keys_dir == Path(volume_mount(deployment, SERVICE_KEYS_VOLUME))
        if row.name == "auth":
            user_token_keys = getattr(settings, "user_token_keys_dir")  # noqa: B009  (auth's own setting)
            assert user_token_keys == Path(volume_mount(deployment, USER_TOKEN_KEYS_VOLUME))
    # The cascade of timeouts (client > gateway > service > dependency > DB) holds in the cluster too.
    assert [v for c in chains(loaded["gateway"], loaded) for v in c.violations()] == []


def test_the_example_postgres_has_a_role_per_service(dev: Rendered) -> None:
    passwords = dev.data("Secret", dev.by_prefix("Secret", "postgres-secrets")["metadata"]["name"])
    init = dev.data("ConfigMap", dev.by_prefix("ConfigMap", "postgres-init")["metadata"]["name"])
    script = init["postgres-init.sh"]
    listed = script.split("for name in ", 1)[1].split(";", 1)[0].split()
    assert listed == [row.name for row in DEPLOYED]
    for row in DEPLOYED:
        _, secret = environment(dev, dev.get("Deployment", row.name))
        url = urlsplit(secret[row.env_name("database_url")])
        assert url.password == passwords[f"DB_PASSWORD_{row.name.upper()}"], row.name


# -- keys: the files common.auth reads, mounted read-only ----------------------------------------


def materialise(dev: Rendered, deployment: dict[str, Any], volume: str, into: Path) -> Path:
    """Write the files a volume of ``deployment`` shows into ``into`` (as the kubelet would)."""
    spec = deployment["spec"]["template"]["spec"]
    vol = next(v for v in spec["volumes"] if v["name"] == volume)
    sources = (
        vol["projected"]["sources"]
        if "projected" in vol
        else [{"secret": {"name": vol["secret"]["secretName"]}}]
    )
    into.mkdir(parents=True)
    for source in sources:
        kind, ref = ("Secret", source["secret"]) if "secret" in source else ("ConfigMap", source["configMap"])
        for file, content in dev.data(kind, ref["name"]).items():
            (into / file).write_text(content)
    return into


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_service_keys_mount_as_common_auth_reads_them(dev: Rendered, tmp_path: Path) -> None:
    """Each pod sees its own private key and every public key; starting writes nothing (the
    mount is read-only), and a token one service signs is accepted by another."""
    folders = {}
    for row in DEPLOYED:
        deployment = dev.get("Deployment", row.name)
        folder = materialise(dev, deployment, SERVICE_KEYS_VOLUME, tmp_path / row.name)
        assert sorted(p.name for p in folder.glob("*.key")) == [f"{row.name}.key"], "only its own private key"
        assert sorted(p.name for p in folder.glob("*.pub")) == sorted(f"{r.name}.pub" for r in DEPLOYED)
        before = snapshot(folder)
        build_service_auth("jwt", row.name, folder, None)
        assert snapshot(folder) == before, f"{row.name} would write into its read-only keys mount"
        folders[row.name] = folder
    headers = build_service_auth("jwt", "room", folders["room"], None).headers_for("inventory")
    identity = build_service_auth("jwt", "inventory", folders["inventory"], None).authenticate(headers)
    assert identity.caller == "room"
    auth = dev.get("Deployment", "auth")
    signing = materialise(dev, auth, USER_TOKEN_KEYS_VOLUME, tmp_path / "user-token-keys")
    before = snapshot(signing)
    load_signing_key(signing)
    assert snapshot(signing) == before
    assert not list(signing.glob("*.pub")) or all(p.name == "signing.pub" for p in signing.glob("*.pub")), (
        "the user-token folder holds no service identity"
    )


def test_dev_secrets_are_kept_once_made(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    first = dev_secrets.generate(out, ("room", "auth"))
    assert {p.name for p in first} >= {"room.key", "auth.key", "signing.key", "room.env", "postgres.env"}
    values = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert dev_secrets.generate(out, ("room", "auth")) == []
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == values
    assert all(p.stat().st_mode & 0o077 == 0 for p in out.glob("*.env")), "env files are private"
    room = dict(line.split("=", 1) for line in (out / "room.env").read_text().splitlines())
    auth = dict(line.split("=", 1) for line in (out / "auth.env").read_text().splitlines())
    assert room["ROOM_SERVICE_SHARED_SECRET"] == auth["AUTH_SERVICE_SHARED_SECRET"]
    assert room["ROOM_CURSOR_SECRET"] != auth["AUTH_CURSOR_SECRET"]


def test_the_checkout_ignores_generated_secrets() -> None:
    probe = "deploy/k8s/overlays/dev/secrets/room.env"
    done = subprocess.run(["git", "check-ignore", "-q", probe], cwd=ROOT, check=False)
    assert done.returncode == 0, f"{probe} is not git-ignored"


# -- pods: non-root, bounded, no extras ----------------------------------------------------------


def effective(spec: Mapping[str, Any], c: Mapping[str, Any], key: str) -> Any:
    """A security setting as the kubelet applies it: the container's, else the pod's."""
    return c.get("securityContext", {}).get(key, spec.get("securityContext", {}).get(key))


def test_every_container_is_non_root_and_bounded(dev: Rendered) -> None:
    seen = 0
    for where, spec in pod_templates(dev):
        assert spec.get("automountServiceAccountToken") is False, where
        # Service links would put ROOM_PORT=tcp://... into every pod: names our settings read.
        assert spec.get("enableServiceLinks") is False, where
        for c in spec["containers"] + spec.get("initContainers", []):
            seen += 1
            label = f"{where} {c['name']}"
            assert effective(spec, c, "runAsNonRoot") is True, label
            assert (effective(spec, c, "runAsUser") or 0) > 0, label
            assert effective(spec, c, "seccompProfile") == {"type": "RuntimeDefault"}, label
            context = c.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, label
            assert context.get("capabilities") == {"drop": ["ALL"]}, label
            writable = c["name"] in WRITABLE_ROOT
            assert context.get("readOnlyRootFilesystem") is (not writable), label
            resources = c.get("resources", {})
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) >= {"cpu", "memory"}, f"{label}: {bound}"
    assert seen >= 15


def test_replicas_disruption_budgets_and_autoscalers_fit(dev: Rendered) -> None:
    for row in DEPLOYED:
        deployment = dev.get("Deployment", row.name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        pdb = dev.get("PodDisruptionBudget", row.name)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), row.name
        job_labels = dev.get("Job", f"{row.name}-migrate")["spec"]["template"]["metadata"]["labels"]
        assert not pdb["spec"]["selector"]["matchLabels"].items() <= job_labels.items(), (
            "the Job is no replica"
        )
        if row.name in AUTOSCALED:
            hpa = dev.get("HorizontalPodAutoscaler", row.name)
            assert hpa["spec"]["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": row.name,
            }
            assert hpa["spec"]["minReplicas"] >= 2
            # The autoscaler owns the count: a replicas field would reset it on every apply.
            assert "replicas" not in deployment["spec"], row.name
        else:
            assert deployment["spec"]["replicas"] >= 2, row.name
