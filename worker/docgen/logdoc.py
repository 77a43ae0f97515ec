"""The log-events reference (``docs/log-events.md``), generated from the code.

Every log call in ``worker/`` and ``handlers/`` whose event is a literal dotted name
(``log.info("mns.progress", ...)``) is listed with its level(s) and the module(s) that emit it.
``python -m worker.docgen.logdoc`` rewrites the section between the markers; ``--check`` exits 1 if it is
stale (``tests/test_docs.py``), so a new log event is in the reference as soon as the code emits it.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

from worker.docgen import begin_marker, end_marker, replace_between
from worker.docgen import main as generate

COMMAND = "python -m worker.docgen.logdoc"
BEGIN = begin_marker("log-events", COMMAND)
END = end_marker("log-events")
PATH = "docs/log-events.md"
LEVELS = ("debug", "info", "warning", "error", "exception", "critical")
EVENT_NAME = re.compile(r"^[a-z][a-z_]*(?:\.[A-Za-z_]+)+$")
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("worker", "handlers")
EMIT_ALIAS = "emit"  # the built-in handlers pick the level per event: warning for a failure, else info


def emitted(root: Path = ROOT) -> dict[str, dict[str, set[str]]]:
    """Event name -> {"levels": {...}, "modules": {...}} for every literal dotted event a log call names."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"levels": set(), "modules": set()})
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                level = _level(node)
                name = _event_name(node) if level is not None else None
                if level is not None and name is not None:
                    found[name]["levels"].add(level)
                    found[name]["modules"].add(module)
    return dict(found)


def _event_name(node: ast.AST) -> str | None:
    first = node.args[0] if isinstance(node, ast.Call) and node.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and EVENT_NAME.match(first.value):
        return first.value
    return None


def _level(node: ast.AST) -> str | None:
    """The level of a log call: ``log.info(...)``; ``emit(...)`` (``emit = log.warning if ... else ...``)."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    if isinstance(node.func, ast.Attribute) and node.func.attr in LEVELS:
        return "error" if node.func.attr == "exception" else node.func.attr
    if isinstance(node.func, ast.Name) and node.func.id == EMIT_ALIAS:
        return "info or warning"
    return None


def reference() -> str:
    events = emitted()
    rows = ["| event | level | emitted by |", "|---|---|---|"]
    for name in sorted(events):
        levels = ", ".join(sorted(events[name]["levels"], key=_rank))
        modules = ", ".join(f"`{m}`" for m in sorted(events[name]["modules"]))
        rows.append(f"| `{name}` | {levels} | {modules} |")
    return "\n".join(rows)


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def render(text: str) -> str:
    return replace_between(text, BEGIN, END, reference(), where=PATH)


def main(argv: list[str] | None = None) -> int:
    return generate(argv, prog=COMMAND, doc=__doc__, default_path=PATH, render=render)


if __name__ == "__main__":
    sys.exit(main())
