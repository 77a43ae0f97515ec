"""The events reference (``docs/events-reference.md``), generated from the models and the bundled samples.

For every catalogued type: its source, description and the fields a handler reads as ``event.data.<path>``,
with their types, whether required and an example value from the type's sample; the same rows
``ims-worker events show TYPE`` prints. ``python -m worker.docgen.eventsdoc`` rewrites the section between the
markers; ``--check`` exits 1 if it is stale (``tests/test_docs.py``).
"""

from __future__ import annotations

import sys

from worker.cli.eventshow import rows, shown
from worker.docgen import begin_marker, end_marker, replace_between
from worker.docgen import main as generate
from worker.events import CATALOGUE, SOURCES, EventSpec

COMMAND = "python -m worker.docgen.eventsdoc"
BEGIN = begin_marker("events-reference", COMMAND)
END = end_marker("events-reference")
PATH = "docs/events-reference.md"


def _order(spec: EventSpec) -> tuple[int, bool, str]:
    rank = SOURCES.index(spec.source) if spec.source in SOURCES else len(SOURCES)
    return rank, spec.type.startswith("unknown."), spec.type


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def section(spec: EventSpec) -> str:
    lines = [f"### `{spec.type}`", ""]
    about = f"{spec.description} Source `{spec.source}`."
    if spec.deprecated:
        about += " Deprecated by the provider."
    lines += [about, ""]
    found = rows(spec)
    if not found:
        return "\n".join([*lines, "No typed fields: the payload is kept as sent, in `event.raw`."])
    lines += ["| field | type | required | example |", "|---|---|---|---|"]
    for row in found:
        example = shown(row["example"])
        lines.append(
            f"| `{row['path']}` | `{_cell(row['type'])}` | {'yes' if row['required'] else ''} | "
            + (f"`{_cell(example)}`" if example else "")
            + " |"
        )
    return "\n".join(lines)


def reference() -> str:
    specs = sorted(CATALOGUE.values(), key=_order)
    parts: list[str] = []
    source = None
    for spec in specs:
        if spec.source != source:
            source = spec.source
            parts.append(f"## {source}")
        parts.append(section(spec))
    return "\n\n".join(parts)


def render(text: str) -> str:
    return replace_between(text, BEGIN, END, reference(), where=PATH)


def main(argv: list[str] | None = None) -> int:
    return generate(argv, prog=COMMAND, doc=__doc__, default_path=PATH, render=render)


if __name__ == "__main__":
    sys.exit(main())
