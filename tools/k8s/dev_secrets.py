"""The dev overlay's secrets, generated into a git-ignored folder (never committed).

    uv run python tools/k8s/dev_secrets.py            # deploy/k8s/overlays/dev/secrets/
    uv run python tools/k8s/dev_secrets.py --out DIR  # elsewhere (the tests do)

What it writes, what ``deploy/k8s/overlays/dev/kustomization.yaml`` turns into Secrets:

- ``service-keys/<service>.key`` and ``.pub``: each service's Ed25519 key for service tokens,
  made by the same helper a service uses on first start (``common.auth.keys``), so the mounted
  files are exactly what it would have written itself (it then writes nothing: a read-only
  mount works);
- ``user-token-keys/signing.key`` and ``.pub``: auth's key for user access tokens;
- ``<service>.env``: ``<NAME>_DATABASE_URL`` (its own PostgreSQL role and database),
  ``<NAME>_CURSOR_SECRET``, ``<NAME>_SERVICE_SHARED_SECRET`` (one value for all: only used in
  shared-secret mode), plus ``AUTH_ADMIN_PASSWORD`` and ``NOTIFICATION_SMTP_PASSWORD``;
- ``postgres.env``: the superuser's password and each service role's (``DB_PASSWORD_<NAME>``),
  read by the example PostgreSQL's init script.

Idempotent: keys are kept once made; the env files are kept when all are there, else written
again together (their values refer to each other). Values are random (``secrets``), long
enough for ``env=prod``'s checks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from common.auth.keys import ensure_service_keypair
from stack.compose_env import secret_values
from stack.services import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "deploy" / "k8s" / "overlays" / "dev" / "secrets"
SIGNING_KEY_NAME = "signing"  # auth_service.adapters.signing_keys.SIGNING_KEY_NAME
POSTGRES_HOST = "postgres:5432"  # the dev overlay's example PostgreSQL Service


def env_files(services: Sequence[str]) -> dict[str, dict[str, str]]:
    """Fresh values for every ``<file>.env``, by file stem (the same secrets compose's ``.env`` has)."""
    fresh = secret_values(services)
    files: dict[str, dict[str, str]] = {"postgres": {"POSTGRES_PASSWORD": fresh["POSTGRES_PASSWORD"]}}
    for service in services:
        upper = service.upper()
        password = fresh[f"DB_PASSWORD_{upper}"]
        files["postgres"][f"DB_PASSWORD_{upper}"] = password
        values = {
            f"{upper}_DATABASE_URL": f"postgresql+psycopg://{service}:{password}@{POSTGRES_HOST}/{service}",
            f"{upper}_CURSOR_SECRET": fresh[f"CURSOR_SECRET_{upper}"],
            f"{upper}_SERVICE_SHARED_SECRET": fresh["SERVICE_SHARED_SECRET"],
        }
        if service == "auth":
            values["AUTH_ADMIN_PASSWORD"] = fresh["ADMIN_PASSWORD"]
        if service == "notification":
            values["NOTIFICATION_SMTP_PASSWORD"] = ""  # the example mail catcher takes anyone
        files[service] = values
    return files


def write_env(path: Path, values: Mapping[str, str]) -> None:
    """``KEY=VALUE`` lines, the format of a kustomize ``secretGenerator``'s ``envs``; mode 0600."""
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def generate(out: Path, services: Sequence[str] = SERVICE_NAMES) -> list[Path]:
    """Make whatever is missing under ``out``; return the files written."""
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: list[Path] = []
    keys = out / "service-keys"
    for service in services:
        if not (keys / f"{service}.key").exists():
            written.append(keys / f"{service}.key")
        ensure_service_keypair(keys, service)
    signing = out / "user-token-keys"
    if not (signing / f"{SIGNING_KEY_NAME}.key").exists():
        written.append(signing / f"{SIGNING_KEY_NAME}.key")
    ensure_service_keypair(signing, SIGNING_KEY_NAME)
    stems = ["postgres", *services]
    if not all((out / f"{stem}.env").exists() for stem in stems):
        for stem, values in env_files(services).items():
            write_env(out / f"{stem}.env", values)
            written.append(out / f"{stem}.env")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    written = generate(args.out)
    # Names only: the values are secrets.
    print(f"{args.out}: {len(written)} file(s) written, the rest kept", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
