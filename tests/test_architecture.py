"""The layout's import rules (ARCHITECTURE.md, "Layout"), checked on the source so a violation fails CI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports at module level or inside functions (absolute imports only)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): _imports(p) for d in ("worker", "handlers") for p in (ROOT / d).rglob("*.py")}


def _offenders(selected: list[str], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for name in selected:
        for imported in sorted(MODULES[name]):
            if imported.startswith(forbidden) and not imported.startswith(allowed):
                bad.append(f"{name} imports {imported}")
    return bad


def _under(*prefixes: str) -> list[str]:
    return [m for m in MODULES if m in prefixes or m.startswith(tuple(f"{p}." for p in prefixes))]


def test_the_modules_exist() -> None:
    # A guard against the checks below passing vacuously after a rename.
    for name in ("worker.settings", "worker.events", "worker.delivery.publish", "worker.execution.tasks"):
        assert name in MODULES, name


@pytest.mark.parametrize("leaf", ["worker.settings", "worker.errors", "worker.events"])
def test_leaves_import_nothing_else_of_the_engine(leaf: str) -> None:
    allowed = ("worker.settings", "worker.errors", "worker.events") if leaf == "worker.events" else (leaf,)
    allowed = (*allowed, "worker.errors") if leaf != "worker.errors" else allowed
    assert _offenders(_under(leaf), ("worker",), allowed) == []


def test_handlers_use_only_the_public_plugin_api() -> None:
    bad = [
        f"{name} imports {imported}"
        for name in _under("handlers")
        for imported in MODULES[name]
        if imported.startswith("worker.")
        and imported.split(".")[1] not in {"Event", "handler", "Retry", "Permanent", "inbox"}
    ]
    assert bad == []


def test_production_code_never_imports_the_devtools() -> None:
    production = [m for m in MODULES if not m.startswith(("worker.devtools", "worker.cli", "worker.testing"))]
    assert _offenders(production, ("worker.devtools",)) == []


@pytest.mark.parametrize("inputs", ["worker.mns", "worker.shim"])
def test_inputs_reach_the_broker_only_through_delivery(inputs: str) -> None:
    assert _offenders(_under(inputs), ("worker.execution", "worker.app")) == []
