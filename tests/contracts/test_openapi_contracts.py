"""The OpenAPI contracts (``contracts/openapi/<service>.yaml``) are what the code serves, valid, complete.

- drift: each committed spec equals what its app serves today (``make contracts`` rewrites them);
  a difference fails with the changed places named and the unified diff;
- validity: each spec is valid OpenAPI (``openapi-spec-validator``);
- completeness: each operation says who may call it, documents a success and its errors as
  problems (``application/problem+json``), and shows an example of its request body.

The drift check's failure is proved on a fixture (a tiny app and its committed spec), never by
breaking a service.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from fastapi import APIRouter, FastAPI
from openapi_spec_validator import validate
from pydantic import BaseModel, create_model

from common.app_factory import create_service_app
from common.openapi import PROBLEM, SERVICE_TOKEN, USER, USER_BEARER, problem_responses

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "openapi"
SERVICES = ("gateway", "auth", "member", "room", "inventory", "notification")


def _load_tool() -> ModuleType:
    """``tools/contracts/openapi.py`` (a script, not a package), imported by its path."""
    spec = importlib.util.spec_from_file_location(
        "openapi_contracts_tool", ROOT / "tools/contracts/openapi.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and friends look their module up by name
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every service's spec as its app serves it now, rendered like the committed file."""
    workdir = tmp_path_factory.mktemp("openapi")
    return {service: tool.render_spec(tool.served_spec(service, workdir)) for service in SERVICES}


def _committed(service: str) -> str:
    path = tool.spec_path(service)
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `make contracts`"
    text: str = path.read_text(encoding="utf-8")
    return text


def _operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


# -- drift ------------------------------------------------------------------------------------


def test_the_services_are_the_ones_the_tool_knows() -> None:
    assert set(tool.SERVICE_NAMES) == set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_the_committed_spec_is_what_the_code_serves(service: str, served: dict[str, str]) -> None:
    report = tool.spec_drift(_committed(service), served[service], name=f"contracts/openapi/{service}.yaml")
    if report is not None:
        pytest.fail(report, pytrace=False)


def test_nothing_machine_specific_gets_into_a_spec(served: dict[str, str], tmp_path: Path) -> None:
    again = {service: tool.render_spec(tool.served_spec(service, tmp_path)) for service in SERVICES}
    assert again == served, "the spec depends on where it was generated"
    for service, text in served.items():
        for leak in (str(ROOT), str(tmp_path.parent), "127.0.0.1", "localhost", ":800"):
            assert leak not in text, f"{service}'s spec mentions {leak!r}"


# -- the drift check itself, on a fixture ------------------------------------------------------------


def stock_app(count_type: type) -> FastAPI:
    """A tiny service: ``GET /stock`` answers ``{item_id, count}``; ``count``'s type varies."""
    stock: type[BaseModel] = create_model("Stock", item_id=(str, ...), count=(count_type, ...))
    app = FastAPI(title="Stock service", version="1.0.0")

    @app.get("/stock", response_model=stock)
    def get_stock() -> Any:
        return {"item_id": "i1", "count": 1}

    return app


STOCK_FIXTURE = FIXTURES / "stock.yaml"  # committed: stock_app(int)'s spec


def test_an_unchanged_app_matches_its_committed_spec() -> None:
    served = tool.render_spec(stock_app(int).openapi())
    assert tool.spec_drift(STOCK_FIXTURE.read_text(encoding="utf-8"), served, name="stock.yaml") is None


def test_a_changed_response_field_type_fails_with_the_field_named_and_the_diff() -> None:
    served = tool.render_spec(stock_app(str).openapi())  # count: int -> str, spec not regenerated

    report = tool.spec_drift(STOCK_FIXTURE.read_text(encoding="utf-8"), served, name="stock.yaml")

    assert report is not None
    assert "run `make contracts`" in report
    # The changed place, by name...
    assert "components.schemas.Stock.properties.count.type: 'integer' -> 'string'" in report
    # ...and the unified diff of the two files.
    assert "--- stock.yaml (committed)" in report
    assert "+++ stock.yaml (served by the code)" in report
    assert "-          type: integer" in report.splitlines()
    assert "+          type: string" in report.splitlines()


def test_a_missing_spec_is_drift_too() -> None:
    report = tool.spec_drift("", tool.render_spec(stock_app(int).openapi()), name="stock.yaml")
    assert report is not None
    assert "paths: added" in report


# -- what every app gets from the platform (common.openapi) -------------------------------------


class Note(BaseModel):
    text: str


def test_the_platform_documents_problems_security_and_its_own_answers() -> None:
    router = APIRouter()

    @router.post("/notes/{note_id}", responses=problem_responses(401), openapi_extra=USER)
    def put_note(note_id: int, note: Note) -> Note:
        return note

    spec = create_service_app(service="notes", title="Notes", routers=[router]).openapi()

    operation = spec["paths"]["/notes/{note_id}"]["post"]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    # FastAPI's own 422 (application/json, HTTPValidationError) is the problem the app answers.
    assert operation["responses"]["422"]["content"] == problem
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    # What the middleware answers: over the body limit, deadline spent on arrival.
    assert operation["responses"]["413"]["content"] == problem
    assert operation["responses"]["504"]["headers"]["Retry-After"]["required"] is True
    assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert operation["security"] == [{USER_BEARER: []}]
    # The schemes the routes use, and only those.
    assert set(spec["components"]["securitySchemes"]) == {USER_BEARER}
    assert spec["components"]["schemas"][PROBLEM]["required"] == ["type", "title", "status", "detail"]
    assert spec["paths"]["/health/live"]["get"]["security"] == []


# -- validity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_the_committed_spec_is_valid_openapi(service: str) -> None:
    validate(yaml.safe_load(_committed(service)))


# -- completeness -----------------------------------------------------------------------------

_PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM}"}


def _gaps(spec: dict[str, Any]) -> list[str]:
    """What an operation fails to document, one line each."""
    gaps = []
    for label, operation in _operations(spec):
        responses: dict[str, Any] = operation.get("responses", {})
        if "security" not in operation:
            gaps.append(f"{label}: no `security` (USER, SERVICE or PUBLIC from common.openapi)")
        schemes = {name for requirement in operation.get("security", []) for name in requirement}
        if not any(code.startswith("2") for code in responses):
            gaps.append(f"{label}: no success response")
        for code, response in responses.items():
            if code[0] in "45" and not (code == "503" and label.endswith("/health/ready")):
                schema = response.get("content", {}).get("application/problem+json", {}).get("schema")
                if schema != _PROBLEM_REF:
                    gaps.append(f"{label}: {code} is not documented as a Problem (problem_responses)")
        expected = {"504"}  # the caller's deadline can be spent on arrival, anywhere
        if USER_BEARER in schemes:
            expected.add("401")
        if SERVICE_TOKEN in schemes:
            expected |= {"401", "403"}
        body = operation.get("requestBody")
        if body is not None:
            expected |= {"413", "422"}
            if "application/json" in body["content"]:
                expected.add("400")  # not JSON at all
            if not _has_example(spec, body):
                gaps.append(f"{label}: its request body has no example")
        for code in sorted(expected):
            if code not in responses and f"{code[0]}XX" not in responses:
                gaps.append(f"{label}: {code} can happen but is not documented")
    return gaps


def _has_example(spec: dict[str, Any], body: dict[str, Any]) -> bool:
    for media in body["content"].values():
        if "example" in media or "examples" in media:
            return True
        schema = media.get("schema", {})
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        if "examples" in schema or "example" in schema:
            return True
    return False


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_who_may_call_it_its_answers_and_an_example(service: str) -> None:
    gaps = _gaps(yaml.safe_load(_committed(service)))
    assert not gaps, f"contracts/openapi/{service}.yaml:\n" + "\n".join(gaps)


def test_the_completeness_check_names_what_is_missing() -> None:
    gaps = _gaps(yaml.safe_load(STOCK_FIXTURE.read_text(encoding="utf-8")))
    assert gaps == [
        "GET /stock: no `security` (USER, SERVICE or PUBLIC from common.openapi)",
        "GET /stock: 504 can happen but is not documented",
    ]


def test_the_security_schemes_are_declared_where_used() -> None:
    declared = {
        service: yaml.safe_load(_committed(service))["components"].get("securitySchemes", {})
        for service in SERVICES
    }
    # Internal routes take a service token, in the X-Service-Token header: auth's, member's and
    # inventory's, and every service's /admin/faults (callers gateway and ops).
    assert {s for s, schemes in declared.items() if SERVICE_TOKEN in schemes} == set(SERVICES)
    assert {schemes[SERVICE_TOKEN]["name"] for schemes in declared.values() if SERVICE_TOKEN in schemes} == {
        "X-Service-Token"
    }
    # User routes take a bearer JWT; at the edge it is the OAuth2 login flow ("Authorize" in /docs).
    assert {s for s, schemes in declared.items() if USER_BEARER in schemes} == set(SERVICES) - {"inventory"}
    assert declared["gateway"][USER_BEARER]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert declared["room"][USER_BEARER] == {
        **declared["room"][USER_BEARER],
        "type": "http",
        "scheme": "bearer",
    }


if __name__ == "__main__":  # regenerate the fixture: uv run python tests/contracts/test_openapi_contracts.py
    STOCK_FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    STOCK_FIXTURE.write_text(tool.render_spec(stock_app(int).openapi()), encoding="utf-8")
    print(f"wrote {STOCK_FIXTURE.relative_to(ROOT)}")
