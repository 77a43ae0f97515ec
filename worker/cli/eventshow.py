"""``ims-worker events show TYPE``: the fields of one event type, their types and an example value.

The fields come from the type's model (``worker.events.schema``), the examples from the bundled provider
sample of that type, normalized as the consumer and the shim do. The same rows make
``docs/events-reference.md`` (``python -m worker.docgen.eventsdoc``).
"""

from __future__ import annotations

import argparse
import difflib
import json
from typing import Any

from worker.devtools.demo import load_samples
from worker.errors import ConfigurationError
from worker.events import CATALOGUE, EventSpec
from worker.events.schema import example, fields
from worker.providers import normalize

EXAMPLE_WIDTH = 60


def find(name: str) -> EventSpec:
    """The catalogued type ``name``; an unknown one is an error listing the nearest names."""
    spec = CATALOGUE.get(name)
    if spec is not None:
        return spec
    known = sorted(CATALOGUE)
    near = [t for t in known if t.rsplit(".", 1)[-1].lower() == name.rsplit(".", 1)[-1].lower()]
    near += [t for t in difflib.get_close_matches(name, known, n=5, cutoff=0.6) if t not in near]
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise ConfigurationError(
        f"unknown event type {name!r}{hint} (`ims-worker events list` shows all {len(known)})"
    )


def sample_data(event_type: str) -> dict[str, Any]:
    """The typed data of the bundled sample of ``event_type``, as JSON; empty when there is none."""
    for sample in load_samples():
        if event_type in sample.types:
            for event in normalize(sample.source, sample.body):
                if event.type == event_type:
                    dumped: dict[str, Any] = event.data.model_dump(mode="json", by_alias=True)
                    return dumped
    return {}


def rows(spec: EventSpec) -> list[dict[str, Any]]:
    data = sample_data(spec.type)
    found = []
    for row in fields(spec.model):
        value = example(data, row.path)
        nested = isinstance(value, dict | list) and any(
            other.path.startswith((f"{row.path}.", f"{row.path}[].")) for other in fields(spec.model)
        )
        found.append(
            {
                "path": row.path,
                "type": row.type,
                "required": row.required,
                "example": None if nested else value,
            }
        )
    return found


def shown(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= EXAMPLE_WIDTH else text[: EXAMPLE_WIDTH - 1] + "…"


def render(spec: EventSpec) -> str:
    table = [("FIELD (event.data.…)", "TYPE", "REQUIRED", "EXAMPLE")]
    table += [(r["path"], r["type"], "yes" if r["required"] else "", shown(r["example"])) for r in rows(spec)]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = [
        f"{spec.type}: {spec.description}",
        f"source {spec.source}; Celery task {spec.type!r}"
        + ("; deprecated by the provider" if spec.deprecated else ""),
        "",
    ]
    if len(table) == 1:
        lines.append("no typed fields: the payload is kept as sent, in event.raw")
    else:
        lines += [
            "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[3]]).rstrip()
            for row in table
        ]
    return "\n".join(lines)


def show(args: argparse.Namespace) -> int:
    spec = find(args.type)
    if args.json:
        document = {
            "type": spec.type,
            "source": spec.source,
            "description": spec.description,
            "deprecated": spec.deprecated,
            "fields": rows(spec),
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(render(spec))
    return 0


def add_show(commands: Any) -> None:
    show_parser = commands.add_parser(
        "show", help="the fields of one event type: path, type, required, an example value from its sample"
    )
    show_parser.add_argument(
        "type", metavar="TYPE", help="a normalized event type, e.g. ims.ProduceMediaComplete"
    )
    show_parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show_parser.set_defaults(func=show)
