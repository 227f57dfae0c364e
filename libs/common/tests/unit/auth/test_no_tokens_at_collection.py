"""No test module mints a token (or reads the clock for one) while pytest collects it.

A token built at import time (say in ``@pytest.mark.parametrize``) starts its lifetime when
the suite is collected, not when its test runs: on a slow machine ``exp = now + 60`` has
passed before the test starts, and it fails for the wrong reason. Tokens are minted inside
tests and fixtures; this check scans every test module of the repository for the pattern.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[5]
TEST_DIRS = ["libs", "services", "tools", "tests"]
# Calls that mint a token or read the clock a token's lifetime starts from.
MINTING = {
    "jwt.encode",
    "issue",
    "token_for",
    "headers_for",
    "time.time",
    "time.monotonic",
    "datetime.now",
    "datetime.utcnow",
}


def _callee(call: ast.Call) -> str | None:
    """``name`` for ``name(...)``; for ``a.b.c(...)``: ``c`` if a method in MINTING, else ``b.c``."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        if func.attr in MINTING:
            return func.attr
        owner = func.value
        owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        return f"{owner_name}.{func.attr}"
    return None


def _calls_outside_functions(node: ast.AST) -> Iterator[ast.Call]:
    """Calls evaluated when ``node`` runs: not those inside a function body or a lambda."""
    if isinstance(node, ast.Lambda):
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        # Decorators and default values run at definition time; the body doesn't.
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                yield from _calls_outside_functions(expr)
        return
    if isinstance(node, ast.Call):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _calls_outside_functions(child)


def _minting_helpers(tree: ast.Module) -> set[str]:
    """Module-level functions whose body, when called, mints or reads the clock (not a nested
    function it only returns; one level deep is enough here)."""
    helpers = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            calls = (call for statement in node.body for call in _calls_outside_functions(statement))
            if any(_callee(call) in MINTING for call in calls):
                helpers.add(node.name)
    return helpers


def collection_time_minting(source: str) -> list[str]:
    """``name:line`` of every token-minting call made while the module is imported."""
    tree = ast.parse(source)
    suspicious = MINTING | _minting_helpers(tree)
    found = []
    for statement in tree.body:
        for call in _calls_outside_functions(statement):
            name = _callee(call)
            if name in suspicious:
                found.append(f"{name}:{call.lineno}")
    return found


def _test_modules() -> list[Path]:
    return sorted(
        path
        for top in TEST_DIRS
        for path in (REPO / top).rglob("test_*.py")
        if "tests" in path.relative_to(REPO).parts and ".venv" not in path.parts
    )


def test_the_check_recognises_tokens_built_at_collection_time() -> None:
    fragile = (
        "import time, pytest\n"
        "def claims(): return {'exp': int(time.time()) + 60}\n"
        "@pytest.mark.parametrize('c', [claims()])\n"
        "def test_x(c): pass\n"
        "TOKEN = issuer.issue('u-1', [])\n"
    )
    # A factory that returns a function minting later is fine: nothing runs at import.
    deferred = (
        "import time\n"
        "def later():\n"
        "    def mint(): return int(time.time()) + 60\n"
        "    return mint\n"
        "STEP = later()\n"
    )
    sound = (
        "import time, pytest\n"
        "def claims(): return {'exp': int(time.time()) + 60}\n"
        "@pytest.mark.parametrize('make', [lambda: claims()])\n"
        "def test_x(make): token = issuer.issue('u-1', [])\n"
    )

    assert collection_time_minting(fragile) == ["claims:3", "issue:5"]
    assert collection_time_minting("import jwt\nT = jwt.encode({}, 'k')\nB = 'x'.encode()\n") == [
        "jwt.encode:2"
    ]
    assert collection_time_minting(sound) == []
    assert collection_time_minting(deferred) == []


def test_the_scan_covers_the_repository() -> None:
    modules = _test_modules()
    assert Path(__file__).resolve() in modules
    assert any("services" in m.parts for m in modules)


@pytest.mark.parametrize("module", _test_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_token_is_minted_at_collection_time(module: Path) -> None:
    assert collection_time_minting(module.read_text()) == []
