"""The house limits on code size, kept by a test rather than by hand.

A reader should be able to hold one piece in mind: no function over about
60 lines, no class over about 350, no module over about 450.  Data tables
and templates are exempt (they are listed below, each with its reason);
tests are exempt because a test module is a list of cases, not a piece of
the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "common",
    "dev_issuer",
    "resource_server",
    "web_app",
    "spa_app",
    "native_sim",
    "service_app",
    "benchmarks",
)

MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 350
MAX_MODULE_LINES = 450

#: Modules that are mostly data (tables of texts or registrations), with why.
DATA_MODULES: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _span(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pieces_stay_small(path: Path):
    """Every function, class and module of the suite's own code is within the limits."""
    source = path.read_text()
    relative = str(path.relative_to(ROOT))
    too_big = []
    if relative not in DATA_MODULES and len(source.splitlines()) > MAX_MODULE_LINES:
        too_big.append(f"module: {len(source.splitlines())} lines > {MAX_MODULE_LINES}")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _span(node) > MAX_FUNCTION_LINES:
            too_big.append(f"function {node.name} (line {node.lineno}): {_span(node)} lines")
        elif isinstance(node, ast.ClassDef) and _span(node) > MAX_CLASS_LINES:
            too_big.append(f"class {node.name} (line {node.lineno}): {_span(node)} lines")
    assert not too_big, f"{relative}: " + "; ".join(too_big)
