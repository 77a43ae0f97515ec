"""The layout's rules (ARCHITECTURE.md, "Layout"): the import rules are import-linter contracts in
pyproject.toml, run by ``make lint``; this file checks that the contracts cover every module and that
ARCHITECTURE.md states the same layers."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract for contract in CONFIG["contracts"]}
PLUGIN_API = {"Event", "handler", "Retry", "Permanent", "inbox"}  # docs/handlers.md, "Writing a handler"
PLUGIN_MODULES = {"inbox"}  # worker.inbox: claim / aclaim, the exactly-once effects of a handler


def worker_children() -> set[str]:
    """Every module and package directly under worker/."""
    found = {p.stem for p in (ROOT / "worker").glob("*.py") if p.stem != "__init__"}
    found |= {p.parent.name for p in (ROOT / "worker").glob("*/__init__.py")}
    return found


def test_every_module_of_worker_is_kept_from_the_plugins() -> None:
    # exhaustive = true: lint-imports fails on a module missing from the layers. The plugins' list is ours.
    assert CONTRACTS["layers"]["exhaustive"] is True
    forbidden = {name.removeprefix("worker.") for name in CONTRACTS["plugins"]["forbidden_modules"]}
    assert forbidden == worker_children() - PLUGIN_MODULES


def test_architecture_md_states_the_contracts_layers() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = re.search(r"<!-- layers -->\n```\n(.*?)```\n<!-- /layers -->", text, re.DOTALL)
    assert block is not None, "ARCHITECTURE.md lists the layers between <!-- layers --> markers"
    stated = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [line for line in stated if line] == CONTRACTS["layers"]["layers"]


def test_the_plugin_api_is_what_the_package_exports_and_the_docs_say() -> None:
    import worker  # noqa: PLC0415

    assert set(worker.__all__) == PLUGIN_API
    documented = re.search(
        r"The public API for plugin authors.*?\n\n", (ROOT / "docs" / "handlers.md").read_text(), re.S
    )
    assert documented is not None, "docs/handlers.md states the plugin API"
    assert set(re.findall(r"`(?:worker\.)?(\w+)`", documented.group(0))) >= PLUGIN_API
    # A transport optimisation of the engine, not something a handler should see on its event.
    assert not {"data_from_raw", "mark_data_from_raw"} & set(dir(worker.Event))


def test_handlers_use_only_the_public_plugin_api() -> None:
    # The contract keeps handlers/ out of worker's modules; this keeps them to the documented names of worker.
    for path in (ROOT / "handlers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "worker":
                names = {alias.name for alias in node.names}
                assert names <= PLUGIN_API, f"{path.name}: {sorted(names - PLUGIN_API)}"
            elif isinstance(node, ast.Import):
                assert all(alias.name != "worker" for alias in node.names), path.name


def test_the_contracts_hold() -> None:
    """What ``make lint`` runs (here too, so that a test run alone also catches a broken layer)."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
