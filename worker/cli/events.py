"""`ims-worker events`: the catalogue (`list`), the parsing path on a file (`parse`), the journal (`recent`).

``parse`` runs exactly what the consumer and the shim run (``worker.providers.normalize``), so it is the
way to check a payload before sending it, or to see why one was dead-lettered.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from worker.errors import InvalidPayload
from worker.events import CATALOGUE, SOURCES, EventSpec
from worker.providers import detect_source, normalize


def _emit(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `... | head`: the reader left, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _order(spec: EventSpec) -> tuple[int, bool, str]:
    # Built-in sources in their usual order, then any plugin provider's.
    rank = SOURCES.index(spec.source) if spec.source in SOURCES else len(SOURCES)
    return rank, spec.type.startswith("unknown."), spec.type


def _list(args: argparse.Namespace) -> int:
    specs = sorted(CATALOGUE.values(), key=_order)
    if args.json:
        rows = [
            {"type": s.type, "source": s.source, "description": s.description, "deprecated": s.deprecated}
            for s in specs
        ]
        _emit(json.dumps(rows, indent=2))
        return 0
    header = ("TYPE", "SOURCE", "DEPRECATED", "DESCRIPTION")
    table = [header] + [(s.type, s.source, "yes" if s.deprecated else "", s.description) for s in specs]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    _emit(
        "\n".join(
            "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[3]]) for row in table
        )
    )
    return 0


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as handle:
        return handle.read()


def _when(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse(args: argparse.Namespace) -> int:
    name = "<stdin>" if args.file == "-" else args.file
    try:
        raw = _read(args.file)
    except OSError as exc:
        print(f"ims-worker events parse: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        source = args.source or detect_source(raw)
        events = normalize(source, raw, received_at=args.received_at)
    except InvalidPayload as exc:
        print(f"ims-worker events parse: {name}: invalid payload: {exc}", file=sys.stderr)
        return 1
    dumped: list[dict[str, Any]] = [event.model_dump(mode="json") for event in events]
    _emit(json.dumps(dumped, indent=2, ensure_ascii=False))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("events", help="the event catalogue; parse and validate a payload")
    commands = parser.add_subparsers(dest="events_command", required=True, metavar="ACTION")

    listing = commands.add_parser(
        "list", help="every normalized event type: source, description, deprecation"
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=_list)

    parse = commands.add_parser(
        "parse",
        help="normalize a payload and print the event(s) as JSON; exit 1 with the reason if it is invalid",
    )
    parse.add_argument("file", metavar="FILE", help="a JSON payload as a provider sends it, or - for stdin")
    parse.add_argument(
        "--source", choices=SOURCES, help="who sent it (default: inferred from the payload's fields)"
    )
    parse.add_argument(
        "--received-at",
        type=_when,
        metavar="TIME",
        help="when it was received (ISO 8601, default now): ids of payloads without a time depend on it",
    )
    parse.set_defaults(func=_parse)

    from worker.cli.eventshow import add_show  # noqa: PLC0415 - its own module, like recent
    from worker.cli.trace import add_recent  # noqa: PLC0415 - the journal's command lives with trace

    add_show(commands)
    add_recent(commands)
