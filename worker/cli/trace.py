"""`ims-worker trace KEY` and `ims-worker events recent`: read the event journal (``worker.journal``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from worker.cli.dlq import RAW_HELP
from worker.cli.redisrun import run_against_redis
from worker.cli.target import redis_target
from worker.cli.terminal import printable
from worker.journal.reader import EventHistory, JournalReader, Step
from worker.redisconn import store_client
from worker.settings import load_settings

_SHOWN = (
    "h",
    "ms",
    "n",
    "reason",
    "err",
    "first",
    "countdown",
    "handlers",
    "why",
    "q",
    "mid",
    "dq",
    "req",
    "spooled_ms",
    "dl",
)
_LABEL = {
    "h": "",
    "n": "attempt ",
    "q": "queue ",
    "mid": "message ",
    "dq": "dequeued ",
    "req": "request ",
    "spooled_ms": "came through the shim's spool, waited ms ",
    "err": "",
    "why": "",
}


def table(header: Sequence[str], raw_rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned on the escaped text (``worker.cli.terminal``): the cells come from events."""
    rows = [[printable(cell) for cell in row] for row in raw_rows]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _detail(step: Step) -> str:
    parts = []
    for name in _SHOWN:
        value = step.fields.get(name)
        if value is None or name == "h":
            continue
        if name == "ms":
            parts.append(f"{value} ms")
        elif name == "countdown":
            parts.append(f"next try in {value} s")
        elif name == "first":
            parts.append(f"first seen {_when_ms(float(value))}")
        elif name == "handlers":
            parts.append("handlers " + ",".join(map(str, value)))
        else:
            parts.append(f"{_LABEL.get(name, name + ' ')}{value}")
    if step.kind == "received":
        parts.insert(0, f"{step.fields.get('src', '?')} via {step.fields.get('via', '?')}")
    return ", ".join(parts)


def _when_ms(ms: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]


def _run(args: argparse.Namespace, body: Callable[[JournalReader, str], int], name: str) -> int:
    with redis_target(name, read_only=True) as target:
        client = store_client(target.settings)
        try:
            return run_against_redis(name, target.url, lambda: body(JournalReader(client), target.url))
        finally:
            client.close()


def _trace(args: argparse.Namespace) -> int:
    def body(reader: JournalReader, url: str) -> int:
        histories, steps = reader.trace(args.key)
        if args.json:
            out = {
                "key": args.key,
                "events": [h.to_dict() for h in histories],
                "steps": [s.to_dict() for s in steps],
            }
            print(json.dumps(out, indent=2, ensure_ascii=False))
            return 0 if histories else 1
        if not histories:
            print(f"ims-worker trace: no event in the journal at {url} carries {args.key!r}", file=sys.stderr)
            return 1
        refs = {h.event_id: str(i) for i, h in enumerate(histories, 1)}
        print(f"{len(histories)} event{'s' if len(histories) != 1 else ''} carrying {args.key}:")
        print(
            table(
                ("#", "EVENT ID", "TYPE", "STATUS"),
                [(refs[h.event_id], h.event_id, h.type or "?", h.status) for h in histories],
            )
        )
        print()
        types = {h.event_id: h.type or "?" for h in histories}
        rows = [
            (
                s.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                refs[s.event_id],
                types[s.event_id],
                s.kind,
                str(s.fields.get("h", "")),
                _detail(s),
            )
            for s in steps
        ]
        print(table(("TIME (UTC)", "#", "TYPE", "STEP", "HANDLER", "DETAIL"), rows))
        return 0

    return _run(args, body, "trace")


def history_rows(histories: Sequence[EventHistory]) -> list[tuple[str, ...]]:
    return [
        (
            h.first_seen.strftime("%Y-%m-%d %H:%M:%S") if h.first_seen else "?",
            h.source or "?",
            h.type or "?",
            h.status,
            h.event_id,
        )
        for h in histories
    ]


def _recent(args: argparse.Namespace) -> int:
    from worker.cli.dlq import check_source  # noqa: PLC0415 - dlq's own rule: a typo is not "no event"

    check_source(load_settings(), args.source)

    def body(reader: JournalReader, url: str) -> int:
        found = reader.recent(
            event_type=args.type, source=args.source, since=args.since, failed=args.failed, limit=args.limit
        )
        if args.json:
            print(json.dumps([h.to_dict() for h in found], indent=2, ensure_ascii=False))
            return 0
        if not found:
            print(f"no matching event in the journal at {url}")
            return 0
        print(table(("FIRST SEEN (UTC)", "SOURCE", "TYPE", "STATUS", "EVENT ID"), history_rows(found)))
        return 0

    return _run(args, body, "events recent")


def add_recent(commands: Any) -> None:
    """``events recent``, registered by ``worker.cli.events``."""
    from worker.cli.dlq import parse_when  # noqa: PLC0415

    recent = commands.add_parser("recent", help="the latest events from the journal, newest first")
    recent.add_argument("--type", help="event type or glob, e.g. ims.* or ims.ProduceMediaComplete")
    recent.add_argument("--source", help="exact source: ims, live.caster, live.record, rtc, tencent")
    recent.add_argument("--since", type=parse_when, help="first seen at or after: ISO time or 30m/2h/7d ago")
    recent.add_argument(
        "--failed", action="store_true", help="only events with a failed handler or a dead letter"
    )
    recent.add_argument("--limit", type=int, default=50, help="rows at most (default 50)")
    recent.add_argument("--json", action="store_true", help="print JSON instead of a table")
    recent.add_argument("--raw", action="store_true", help=RAW_HELP)
    recent.set_defaults(func=_recent)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trace", help="the history of every event carrying KEY (event id, business key value or Name=value)"
    )
    parser.add_argument("key", metavar="KEY", help="an event id, a value such as a MediaId, or Name=value")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--raw", action="store_true", help=RAW_HELP)
    parser.set_defaults(func=_trace)
