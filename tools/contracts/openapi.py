"""The OpenAPI contracts: ``contracts/openapi/<service>.yaml``, made from the code and checked against it.

    uv run python tools/contracts/openapi.py           # (re)write every spec   (make contracts)
    uv run python tools/contracts/openapi.py --check   # exit 1 with a diff when one drifted

Each spec is what the service's app serves at ``/openapi.json`` (``create_app(settings).openapi()``),
rendered as YAML with sorted keys. The app is only built, never started: no database, broker or
port is touched. Settings are fixed (temporary paths, the service's environment variables
ignored), so the same code gives the same bytes on every machine. ``tests/contracts`` runs the
check in ``make test``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from common.settings import ServiceSettings
from stack.services import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
SPECS_DIR = ROOT / "contracts" / "openapi"
REGENERATE = "make contracts"


def spec_path(service: str, specs_dir: Path = SPECS_DIR) -> Path:
    return specs_dir / f"{service}.yaml"


def settings_class(service: str) -> type[ServiceSettings]:
    """The service's settings class (``<service>_service.settings``, the one named for it)."""
    module = importlib.import_module(f"{service}_service.settings")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value.service_name == service:
            return value
    raise LookupError(f"no ServiceSettings subclass with service_name {service!r} in {module.__name__}")


@contextmanager
def _without_env(prefix: str) -> Iterator[None]:
    """Hide the service's own environment variables (``ROOM_...``) while its settings are read."""
    hidden = {k: v for k, v in os.environ.items() if k.upper().startswith(prefix)}
    for key in hidden:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(hidden)


def served_spec(service: str, workdir: Path) -> dict[str, Any]:
    """What ``service`` serves at ``/openapi.json``, built with fixed settings under ``workdir``."""
    create_app = importlib.import_module(f"{service}_service.app").create_app
    fixed: dict[str, Any] = {
        "env": "test",
        "database_url": f"sqlite:///{workdir / service}.db",
        "service_keys_dir": workdir / "keys",
    }
    settings_cls = settings_class(service)
    if "user_token_keys_dir" in settings_cls.model_fields:  # auth signs user tokens
        fixed["user_token_keys_dir"] = workdir / "user-token-keys"
    with _without_env(f"{service.upper()}_"):
        settings = settings_cls(**fixed)
    spec: dict[str, Any] = create_app(settings).openapi()
    return spec


class _Dumper(yaml.SafeDumper):
    """Plain YAML: a part that appears twice is written twice, never as an ``&anchor``/``*alias``."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_spec(spec: Mapping[str, Any]) -> str:
    """The spec as committed: YAML with sorted keys (the same spec always gives the same bytes).

    Whole floats are written as integers: FastAPI's spec model turns some ``minimum: 1`` into
    ``1.0`` and leaves others (the same number to JSON Schema), which only makes noise.
    """
    text: str = yaml.dump(_whole_numbers(spec), Dumper=_Dumper, sort_keys=True, allow_unicode=True, width=100)
    return text


def _whole_numbers(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {key: _whole_numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_whole_numbers(value) for value in node]
    if isinstance(node, float) and node.is_integer():
        return int(node)
    return node


def rendered_specs(services: tuple[str, ...] = SERVICE_NAMES) -> dict[str, str]:
    """Every service's spec, rendered, by service name."""
    with tempfile.TemporaryDirectory(prefix="openapi-") as tmp:
        return {service: render_spec(served_spec(service, Path(tmp))) for service in services}


def spec_drift(committed: str, served: str, *, name: str) -> str | None:
    """None when the two rendered specs are equal; else a report a person can act on.

    The report says what to run, names every changed place (``components.schemas.X.properties.
    nights.type: 'integer' -> 'string'``) and ends with the unified diff of the two files.
    """
    if committed == served:
        return None
    changes = list(_changes(yaml.safe_load(committed) or {}, yaml.safe_load(served) or {}, ()))
    shown = changes[:40]
    diff = difflib.unified_diff(
        committed.splitlines(),
        served.splitlines(),
        fromfile=f"{name} (committed)",
        tofile=f"{name} (served by the code)",
        lineterm="",
    )
    return "\n".join(
        [
            f"{name} is not what the code serves. If the change is intended, run `{REGENERATE}` and "
            "commit the spec (check first that no client depends on what changed: docs/contracts.md).",
            "",
            f"Changed ({len(changes)}):",
            *(f"  {change}" for change in shown),
            *([f"  ... and {len(changes) - len(shown)} more"] if len(changes) > len(shown) else []),
            "",
            *diff,
        ]
    )


def _changes(old: Any, new: Any, path: tuple[str, ...]) -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            here = ".".join((*path, str(key)))
            if key not in new:
                yield f"{here}: removed"
            elif key not in old:
                yield f"{here}: added"
            else:
                yield from _changes(old[key], new[key], (*path, str(key)))
    elif old != new:
        yield f"{'.'.join(path) or '(document)'}: {_short(old)} -> {_short(new)}"


def _short(value: Any, limit: int = 70) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def drift_reports(specs_dir: Path = SPECS_DIR) -> list[str]:
    """One report per service whose committed spec differs from the served one (or is missing)."""
    reports = []
    for service, served in rendered_specs().items():
        path = spec_path(service, specs_dir)
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        report = spec_drift(committed, served, name=str(path.relative_to(ROOT)))
        if report is not None:
            reports.append(report)
    return reports


def write_specs(specs_dir: Path = SPECS_DIR) -> list[Path]:
    """(Re)write every spec; returns the files whose content changed."""
    specs_dir.mkdir(parents=True, exist_ok=True)
    changed = []
    for service, served in rendered_specs().items():
        path = spec_path(service, specs_dir)
        if not path.exists() or path.read_text(encoding="utf-8") != served:
            path.write_text(served, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    # Run as a script, this folder comes first on sys.path, and its avro.py would shadow the
    # Apache `avro` package: take it off before the services are imported (lazily, above).
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="don't write: exit 1 if a spec drifted")
    args = parser.parse_args(argv)
    if args.check:
        reports = drift_reports()
        for report in reports:
            print(report, end="\n\n")
        print(
            f"{len(reports)} of {len(SERVICE_NAMES)} OpenAPI specs drifted" if reports else "specs up to date"
        )
        return 1 if reports else 0
    changed = write_specs()
    for path in changed:
        print(f"wrote {path.relative_to(ROOT)}")
    print(f"{len(SERVICE_NAMES)} OpenAPI specs in {SPECS_DIR.relative_to(ROOT)}, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
