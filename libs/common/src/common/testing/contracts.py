"""Consumer-driven contracts: what a consumer sends to a provider and which fields it reads.

A contract is a YAML file ``contracts/consumers/<consumer>--<provider>.yaml``, written by the
consumer's owners (docs/contracts.md has the format). Both sides test against the same file:

- **consumer side** (the consumer's tests): ``InteractionStub`` plays the provider for one
  interaction. It answers with the contract's example body, which holds *only* the fields the
  consumer declares it reads, so consumer code that reads anything else fails; and it checks the
  request the consumer's real client sends (method, path, query, declared headers, body shape,
  the service token's caller and audience, the user behind the bearer token).
- **provider side** (``tests/contracts``): ``verify_interaction`` sets up the interaction's
  provider state, sends the request to the provider app in-process with real credentials, and
  checks the status and every declared field and type. ``failure_report`` names the consumer,
  the interaction and each missing or changed field.

Needs PyYAML (a dev dependency): imported only by tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import httpx
import jwt
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from common.auth import build_service_auth
from common.errors import ProblemError
from common.paths import repo_root
from common.testing.tokens import TestUsers, service_headers

CONSUMER_CONTRACTS_DIR = repo_root() / "contracts" / "consumers"

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array", "date", "datetime"})
_PLACEHOLDER = re.compile(r"{(\w+)}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ContractError(ValueError):
    """A contract file that is not well formed (named with the file and the interaction)."""


# -- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """A field the consumer reads: ``member_id``, ``items[].status`` (each item), ``$`` (the body)."""

    path: str
    type: str
    nullable: bool = False
    optional: bool = False  # read only when present
    one_of: tuple[Any, ...] = ()

    def describe(self) -> str:
        text = self.type + (" or null" if self.nullable else "")
        if self.one_of:
            text += f", one of {list(self.one_of)}"
        return text


@dataclass(frozen=True)
class Auth:
    """Who calls: ``none``, ``service:<caller>``, ``user:<user id>`` or ``admin:<user id>``."""

    kind: str
    subject: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.subject}" if self.subject else self.kind


@dataclass(frozen=True)
class Call:
    """A concrete request: the interaction's request with its ``{params}`` filled in."""

    method: str
    path: str  # percent-encoded, as sent on the wire
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] | None = None

    @property
    def target(self) -> str:
        return self.path + (f"?{urlencode(self.query)}" if self.query else "")


@dataclass(frozen=True)
class RequestSpec:
    method: str
    path: str  # may hold {param}s
    auth: Auth
    params: dict[str, str]  # example values of the {param}s (a provider state may replace them)
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] | None = None

    def resolve(self, params: Mapping[str, str] | None = None) -> Call:
        values = {**self.params, **(params or {})}
        return Call(
            method=self.method,
            path=_PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe=""), self.path),
            query={k: _fill(v, values) for k, v in self.query.items()},
            headers={k: _fill(v, values) for k, v in self.headers.items()},
            json=_fill(self.json, values),
            form=None if self.form is None else {k: _fill(v, values) for k, v in self.form.items()},
        )


@dataclass(frozen=True)
class ResponseSpec:
    status: int
    reads: tuple[FieldSpec, ...]
    body: Any = None  # the example a stub answers with: exactly the fields read, no more


@dataclass(frozen=True)
class Interaction:
    description: str
    given: str | None  # the provider state this interaction needs
    request: RequestSpec
    response: ResponseSpec

    def example_body(self, params: Mapping[str, str] | None = None) -> Any:
        return _fill(self.response.body, {**self.request.params, **(params or {})})


@dataclass(frozen=True)
class Contract:
    consumer: str
    provider: str
    source: Path
    interactions: tuple[Interaction, ...]

    @property
    def name(self) -> str:
        return f"{self.consumer}--{self.provider}"

    def interaction(self, description: str) -> Interaction:
        for interaction in self.interactions:
            if interaction.description == description:
                return interaction
        raise KeyError(f"{self.name} has no interaction {description!r}")


# -- loading -------------------------------------------------------------------------------------


def load_contract(path: Path) -> Contract:
    """Parse and check one contract file (``ContractError`` says what is wrong, and where)."""
    import yaml  # a dev dependency: only tests load contracts

    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = path.name
    if not isinstance(document, dict):
        raise ContractError(f"{where}: not a mapping")
    consumer, provider = _text(document, "consumer", where), _text(document, "provider", where)
    if path.stem != f"{consumer}--{provider}":
        raise ContractError(f"{where}: name the file {consumer}--{provider}.yaml")
    raw = document.get("interactions")
    if not isinstance(raw, list) or not raw:
        raise ContractError(f"{where}: 'interactions' must be a non-empty list")
    interactions = tuple(_interaction(item, consumer, where) for item in raw)
    descriptions = [i.description for i in interactions]
    if len(set(descriptions)) != len(descriptions):
        raise ContractError(f"{where}: interaction descriptions must be unique")
    return Contract(consumer, provider, path, interactions)


def load_contracts(
    directory: Path = CONSUMER_CONTRACTS_DIR, *, consumer: str | None = None, provider: str | None = None
) -> list[Contract]:
    """Every contract in ``directory``, optionally only one consumer's or one provider's."""
    contracts = [load_contract(path) for path in sorted(directory.glob("*--*.yaml"))]
    return [
        c
        for c in contracts
        if (consumer is None or c.consumer == consumer) and (provider is None or c.provider == provider)
    ]


def _interaction(item: Any, consumer: str, where: str) -> Interaction:
    if not isinstance(item, dict):
        raise ContractError(f"{where}: every interaction must be a mapping")
    description = _text(item, "description", where)
    where = f"{where}, interaction {description!r}"
    given = item.get("given")
    if given is not None and not isinstance(given, str):
        raise ContractError(f"{where}: 'given' must be a string")
    request = _request(item.get("request"), consumer, where)
    response = _response(item.get("response"), where)
    used = _placeholders([request.path, request.query, request.headers, request.json, request.form])
    used |= _placeholders(response.body)
    if missing := sorted(used - request.params.keys()):
        raise ContractError(f"{where}: no example value in request.params for {missing}")
    example = _fill(response.body, request.params)
    if response.body is not None:
        problems = check_fields(example, response.reads) + undeclared_fields(example, response.reads)
        if problems:
            raise ContractError(f"{where}: the example body does not match 'reads': {'; '.join(problems)}")
    elif response.reads:
        raise ContractError(f"{where}: a response that declares 'reads' needs an example 'body'")
    return Interaction(description, given, request, response)


def _request(raw: Any, consumer: str, where: str) -> RequestSpec:
    if not isinstance(raw, dict):
        raise ContractError(f"{where}: 'request' must be a mapping")
    method = str(raw.get("method", "")).upper()
    if method not in METHODS:
        raise ContractError(f"{where}: request method must be one of {sorted(METHODS)}")
    path = _text(raw, "path", where)
    if not path.startswith("/"):
        raise ContractError(f"{where}: request path must start with '/'")
    auth = _auth(raw.get("auth"), where)
    if auth.kind == "service" and auth.subject != consumer:
        raise ContractError(f"{where}: a service token comes from the consumer, service:{consumer}")
    if "json" in raw and "form" in raw:
        raise ContractError(f"{where}: a request has a 'json' or a 'form' body, not both")
    return RequestSpec(
        method=method,
        path=path,
        auth=auth,
        params=_strings(raw.get("params"), "request.params", where),
        query=_strings(raw.get("query"), "request.query", where),
        headers=_strings(raw.get("headers"), "request.headers", where),
        json=raw.get("json"),
        form=_strings(raw["form"], "request.form", where) if "form" in raw else None,
    )


def _auth(raw: Any, where: str) -> Auth:
    text = str(raw or "")
    kind, _, subject = text.partition(":")
    if kind == "none" and not subject:
        return Auth("none")
    if kind in ("service", "user", "admin") and subject:
        return Auth(kind, subject)
    raise ContractError(f"{where}: request.auth must be none, service:<caller>, user:<id> or admin:<id>")


def _response(raw: Any, where: str) -> ResponseSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("status"), int):
        raise ContractError(f"{where}: 'response' needs an integer 'status'")
    reads = raw.get("reads") or {}
    if not isinstance(reads, dict):
        raise ContractError(f"{where}: response.reads must map field paths to types")
    return ResponseSpec(
        status=raw["status"],
        reads=tuple(_field(path, spec, where) for path, spec in reads.items()),
        body=raw.get("body"),
    )


def _field(path: Any, spec: Any, where: str) -> FieldSpec:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise ContractError(f"{where}: field {path!r}: give a type or a mapping with 'type'")
    kind = str(spec.get("type", ""))
    nullable = kind.endswith("?")
    kind = kind.removesuffix("?")
    if kind not in TYPES:
        raise ContractError(f"{where}: field {path!r}: type must be one of {sorted(TYPES)} (? = nullable)")
    unknown = set(spec) - {"type", "one_of", "optional"}
    if unknown:
        raise ContractError(f"{where}: field {path!r}: unknown keys {sorted(unknown)}")
    return FieldSpec(str(path), kind, nullable, bool(spec.get("optional")), tuple(spec.get("one_of") or ()))


def _text(mapping: Mapping[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ContractError(f"{where}: {key!r} must be a non-empty string")
    return value


def _strings(raw: Any, what: str, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ContractError(f"{where}: {what} must be a mapping")
    return {str(k): str(v) for k, v in raw.items()}


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values()), *(_placeholders(k) for k in value))
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value))
    return set()


def _fill(value: Any, params: Mapping[str, str]) -> Any:
    """``value`` with every ``{name}`` in its strings replaced by ``params[name]``."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: params[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _fill(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, params) for v in value]
    return value


# -- fields: are the ones a consumer reads there, with their types? ------------------------------

_MISSING = object()


def check_fields(body: Any, reads: tuple[FieldSpec, ...]) -> list[str]:
    """What is wrong with ``body`` for a consumer reading ``reads`` (empty: nothing)."""
    problems: list[str] = []
    for spec in reads:
        for where, value in _select(body, spec.path, problems):
            if value is _MISSING:
                if not spec.optional:
                    problems.append(f"field {where!r} ({spec.describe()}) is missing")
            elif not _has_type(value, spec):
                problems.append(
                    f"field {where!r} is {_json_type(value)} {value!r}, the contract says {spec.describe()}"
                )
            elif spec.one_of and value not in spec.one_of:
                problems.append(f"field {where!r} is {value!r}, the contract says {spec.describe()}")
    return list(dict.fromkeys(problems))


def undeclared_fields(body: Any, reads: tuple[FieldSpec, ...]) -> list[str]:
    """Fields of an example body the contract does not declare (a stub must send only those)."""
    declared = {spec.path for spec in reads}
    opaque = {
        spec.path
        for spec in reads
        if spec.type in ("object", "array")
        and not any(p.startswith((spec.path + ".", spec.path + "[]")) for p in declared)
    }
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if path in opaque:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, key if path == "$" else f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                walk(item, f"{'' if path == '$' else path}[]")
        elif path not in declared:
            found.append(f"field {path!r} is not declared in 'reads'")

    walk(body, "$")
    return sorted(set(found))


def _select(body: Any, path: str, problems: list[str]) -> list[tuple[str, Any]]:
    """``(concrete path, value or _MISSING)`` for every value ``path`` names in ``body``."""
    if path == "$":
        return [("$", body)]
    found: list[tuple[str, Any]] = [("", body)]
    for segment in path.split("."):
        name, each = segment.removesuffix("[]"), segment.endswith("[]")
        step: list[tuple[str, Any]] = []
        for where, value in found:
            here = f"{where}.{name}" if where else name
            item = value.get(name, _MISSING) if isinstance(value, dict) else _MISSING
            if not each or item is _MISSING:
                step.append((here, item))
            elif not isinstance(item, list):
                problems.append(f"field {here!r} is {_json_type(item)}, the contract says array")
            elif not item:
                problems.append(
                    f"field {here!r} is an empty array, so {path!r} can't be checked: "
                    "the provider state must produce at least one item"
                )
            else:
                step += [(f"{here}[{i}]", element) for i, element in enumerate(item)]
        found = step
    return found


def _has_type(value: Any, spec: FieldSpec) -> bool:
    if value is None:
        return spec.nullable
    match spec.type:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
        case "date":
            return (
                isinstance(value, str) and bool(_ISO_DATE.match(value)) and _parses(date.fromisoformat, value)
            )
        case "datetime":
            return isinstance(value, str) and "T" in value and _parses(datetime.fromisoformat, value)
    return False


def _parses(parse: Callable[[str], object], value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# -- consumer side: a stub of the provider, made from the contract -------------------------------


@dataclass
class InteractionStub:
    """Plays the provider for one interaction, exactly as the contract states it.

    Use ``transport`` (an ``httpx.MockTransport``) for a client under test, or ``serve`` as the
    handler of an ASGI stub. ``verified()`` fails the test, naming the consumer and the
    interaction, if no request came or one differed from the contract::

        stub = InteractionStub(contract, contract.interaction("standing of an active member"), keys_dir=keys)
        with stub.verified():
            standing = await MemberDirectory(client_using(stub.transport)).standing("m1")
    """

    contract: Contract
    interaction: Interaction
    keys_dir: Path | None = None  # where the consumer's service key is (for service auth)
    params: Mapping[str, str] = field(default_factory=dict)  # replace example values
    requests: list[httpx.Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.interaction.request.auth.kind == "service" and self.keys_dir is None:
            raise ValueError("a service-token interaction needs keys_dir to check the token")

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Check the request against the contract; answer the contract's response."""
        self.requests.append(request)
        problems = self._request_problems(request)
        self.problems += problems
        if problems:  # answered as no provider would: the consumer's test fails either way
            return httpx.Response(418, json={"contract_mismatch": problems})
        status = self.interaction.response.status
        body = self.interaction.example_body(self.params)
        if body is not None:
            return httpx.Response(status, json=body)
        if status >= 400:
            problem = {"type": "about:blank", "title": "contract stub", "status": status}
            return httpx.Response(status, json=problem, headers={"Content-Type": "application/problem+json"})
        return httpx.Response(status)

    async def serve(self, request: Request) -> Response:
        """``handle`` for a Starlette/FastAPI stub server."""
        target = request.scope["raw_path"].decode("latin-1")
        if request.scope.get("query_string"):
            target += "?" + request.scope["query_string"].decode("latin-1")
        outgoing = httpx.Request(
            request.method,
            httpx.URL(str(request.base_url).rstrip("/") + target),
            headers=request.headers.raw,
            content=await request.body(),
        )
        answer = self.handle(outgoing)
        return Response(answer.content, status_code=answer.status_code, headers=dict(answer.headers))

    @contextmanager
    def verified(self) -> Iterator[InteractionStub]:
        """Fail (on leaving the block, also after an error in it) unless the consumer called as declared."""
        try:
            yield self
        finally:
            problems = list(self.problems)
            if not self.requests:
                problems.append("the consumer sent no request")
            if problems:
                raise AssertionError(_report("consumer", self.contract, self.interaction, problems))

    def _request_problems(self, request: httpx.Request) -> list[str]:
        expected = self.interaction.request.resolve(self.params)
        problems: list[str] = []
        if request.method != expected.method:
            problems.append(f"method is {request.method}, the contract says {expected.method}")
        raw_path = request.url.raw_path.decode("ascii").partition("?")[0]
        if raw_path != expected.path:
            problems.append(f"path is {raw_path}, the contract says {expected.path}")
        query = dict(parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True))
        if query != expected.query:
            problems.append(f"query is {query}, the contract says {expected.query}")
        for name, value in expected.headers.items():
            if request.headers.get(name) != value:
                problems.append(
                    f"header {name} is {request.headers.get(name)!r}, the contract says {value!r}"
                )
        problems += self._auth_problems(request)
        problems += _body_problems(request, expected)
        return problems

    def _auth_problems(self, request: httpx.Request) -> list[str]:
        auth = self.interaction.request.auth
        if auth.kind == "service":
            assert self.keys_dir is not None
            verifier = build_service_auth("jwt", self.contract.provider, self.keys_dir, None)
            try:
                identity = verifier.authenticate(request.headers)
            except ProblemError as exc:
                return [f"no valid service token for {self.contract.provider} ({exc.detail})"]
            if identity.caller != auth.subject:
                return [f"the service token is from {identity.caller}, the contract says {auth.subject}"]
        elif auth.kind in ("user", "admin"):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return ["no bearer access token (Authorization)"]
            try:
                claims = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                return ["the bearer access token is not a JWT"]
            if claims.get("sub") != auth.subject:
                return [f"the access token is for {claims.get('sub')!r}, the contract says {auth.subject!r}"]
            if auth.kind == "admin" and "admin" not in claims.get("roles", []):
                return ["the access token has no admin role, the contract says admin"]
        return []


def _body_problems(request: httpx.Request, expected: Call) -> list[str]:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if expected.json is not None:
        if content_type != "application/json":
            return [f"body is {content_type or 'absent'}, the contract says application/json"]
        try:
            sent = json.loads(request.content)
        except ValueError:
            return ["body is not JSON"]
        return _shape_problems(expected.json, sent, "body")
    if expected.form is not None:
        if content_type != "application/x-www-form-urlencoded":
            return [f"body is {content_type or 'absent'}, the contract says a form"]
        names = set(dict(parse_qsl(request.content.decode())))
        if names != set(expected.form):
            return [f"form fields are {sorted(names)}, the contract says {sorted(expected.form)}"]
        return []
    return [f"sends a body ({len(request.content)} bytes), the contract says none"] if request.content else []


def _shape_problems(expected: Any, sent: Any, where: str) -> list[str]:
    """Same keys, same JSON types (values may differ: they are examples)."""
    if isinstance(expected, dict) and isinstance(sent, dict):
        problems = [f"{where}.{k} is missing" for k in expected if k not in sent]
        problems += [f"{where}.{k} is not in the contract" for k in sent if k not in expected]
        return problems + [
            p
            for k in expected.keys() & sent.keys()
            for p in _shape_problems(expected[k], sent[k], f"{where}.{k}")
        ]
    if _json_type(expected) != _json_type(sent):
        return [f"{where} is {_json_type(sent)}, the contract says {_json_type(expected)}"]
    return []


# -- provider side: does the provider answer what the consumers read? ----------------------------

ProviderState = Callable[[FastAPI, dict[str, str]], Mapping[str, str] | None]
"""Sets up a provider state on the app (its own repositories or use cases); may return values for
the request's ``{params}`` (ids or keys the provider generated)."""


@dataclass
class Credentials:
    """Real credentials for every ``auth`` a contract can name: service tokens and user tokens."""

    keys_dir: Path
    users: TestUsers

    def headers(self, auth: Auth, provider: str) -> dict[str, str]:
        if auth.kind == "service":
            return service_headers(self.keys_dir, auth.subject, provider)
        if auth.kind in ("user", "admin"):
            return self.users.headers(auth.subject, admin=auth.kind == "admin")
        return {}


async def verify_interaction(
    contract: Contract,
    interaction: Interaction,
    app: FastAPI,
    *,
    states: Mapping[str, ProviderState],
    credentials: Credentials,
) -> list[str]:
    """Problems of the provider ``app`` with one interaction (empty: the consumer is served).

    The app must trust ``credentials.users`` (``TestUsers.trust``) and read service keys from
    ``credentials.keys_dir``.
    """
    params = dict(interaction.request.params)
    if interaction.given is not None:
        state = states.get(interaction.given)
        if state is None:
            return [f"provider {contract.provider} has no provider state {interaction.given!r}"]
        params.update(state(app, params) or {})
    call = interaction.request.resolve(params)
    headers = {**credentials.headers(interaction.request.auth, contract.provider), **call.headers}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{contract.provider}") as client:
        response = await client.request(
            call.method, call.target, headers=headers, json=call.json, data=call.form
        )
    expected = interaction.response.status
    if response.status_code != expected:
        return [f"answered {response.status_code} instead of {expected}: {response.text[:300]}"]
    if not interaction.response.reads:
        return []
    try:
        body = response.json()
    except ValueError:
        return [f"answered no JSON body: {response.text[:300]!r}"]
    return check_fields(body, interaction.response.reads)


def failure_report(contract: Contract, interaction: Interaction, problems: list[str]) -> str:
    """A failure message naming the consumer, the interaction and every problem."""
    return _report("provider", contract, interaction, problems)


def _report(side: str, contract: Contract, interaction: Interaction, problems: list[str]) -> str:
    if side == "provider":
        head = f"provider {contract.provider!r} breaks consumer {contract.consumer!r}"
    else:
        head = f"consumer {contract.consumer!r} does not call {contract.provider!r} as its contract says"
    request = interaction.request
    lines = [
        f"{head} (contracts/consumers/{contract.source.name})",
        f"  interaction: {interaction.description}",
        f"  given:       {interaction.given or '-'}",
        f"  request:     {request.method} {request.path} (auth {request.auth})",
        *(f"  - {problem}" for problem in problems),
    ]
    return "\n".join(lines)
