"""`ims-worker dlq`: list, show, redrive and purge dead letters (the stream in
``worker.delivery.deadletter``)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from worker.cli.redisrun import run_against_redis
from worker.cli.target import redis_target
from worker.cli.terminal import printable
from worker.delivery.deadletter import DeadLetter, DeadLetterFilter, DeadLetterStore
from worker.errors import BrokerUnavailable, ConfigurationError
from worker.providers.registry import active, load
from worker.redact import REDACTED, is_credential_name, redact_text
from worker.settings import Settings, load_settings

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``2024-05-01T10:00``, ``2024-05-01`` (UTC unless an offset is given) or ``30m``/``2h``/``7d`` ago."""
    match = _RELATIVE.match(text.strip())
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (use ISO 8601 or e.g. 30m, 2h, 7d)") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _filter(args: argparse.Namespace) -> DeadLetterFilter:
    return DeadLetterFilter(
        source=args.source, event_type=args.type, reason=args.reason, since=args.since, until=args.until
    )


def _shorten(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: REDACTED if is_credential_name(key) else _redacted(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _shown(entry: DeadLetter, raw: bool) -> dict[str, Any]:
    """An entry as printed: every credential redacted (inside the raw body's text too), unless ``--raw``."""
    shown = entry.to_dict()
    return shown if raw else cast(dict[str, Any], _redacted(shown))


def _table(entries: Sequence[DeadLetter]) -> str:
    header = ("ID", "DEAD-LETTERED (UTC)", "SOURCE", "TYPE", "REASON", "TRIES", "ERROR")
    rows = [
        tuple(
            printable(cell)
            for cell in (
                e.id,
                e.dead_lettered_at.strftime("%Y-%m-%d %H:%M:%S"),
                e.source,
                e.event_type or "-",
                e.reason,
                str(e.attempts),
                _shorten(e.error, 60),
            )
        )
        for e in entries
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    )


def _cmd_list(store: DeadLetterStore, args: argparse.Namespace) -> int:
    entries = store.list(_filter(args), limit=args.limit)
    total = store.count(_filter(args))
    if args.json:
        print(
            json.dumps(
                {"count": total, "entries": [_shown(e, args.raw) for e in entries]},
                indent=2,
                ensure_ascii=False,
            )
        )
        return 0
    print(
        f"{total} dead letter{'s' if total != 1 else ''}"
        + (f" (showing {len(entries)})" if len(entries) < total else "")
    )
    if entries:
        print(_table(entries))
    return 0


def _cmd_show(store: DeadLetterStore, args: argparse.Namespace) -> int:
    entry = store.get(args.id)
    if entry is None:
        print(f"ims-worker dlq: no dead letter with id {args.id!r}", file=sys.stderr)
        return 1
    print(json.dumps(_shown(entry, args.raw), indent=2, ensure_ascii=False))
    return 0


def _selected(store: DeadLetterStore, args: argparse.Namespace) -> tuple[list[DeadLetter], bool]:
    """Entries named by id (and matching the filters), else all matching; False if an id was missing."""
    where = _filter(args)
    if not args.ids:
        return store.list(where), True
    found = [store.get(entry_id) for entry_id in args.ids]
    for entry_id, entry in zip(args.ids, found, strict=True):
        if entry is None:
            print(f"ims-worker dlq: no dead letter with id {entry_id!r}", file=sys.stderr)
    return [e for e in found if e is not None and where.matches(e)], None not in found


def _cmd_redrive(store: DeadLetterStore, args: argparse.Namespace, settings: Settings) -> int:
    from worker.delivery.publish import Publisher  # noqa: PLC0415 - only this subcommand needs the broker
    from worker.delivery.redrive import redrive  # noqa: PLC0415

    entries, all_found = _selected(store, args)
    if args.dry_run:
        for entry in entries:
            print(f"{entry.id}: would redrive: {entry.source} {entry.event_type or '-'} ({entry.reason})")
        print(f"{len(entries)} dead letter{'s' if len(entries) != 1 else ''} would be redriven (dry run)")
        return 0 if all_found else 1
    # Every matching entry, named by no id: as purge does, ask first (thousands of events back on the queues).
    if not args.ids and entries and not args.yes:
        if not sys.stdin.isatty():
            print(
                f"ims-worker dlq redrive: refusing to redrive {len(entries)} entries without --yes "
                "(see them first with --dry-run)",
                file=sys.stderr,
            )
            return 1
        if not _confirm(f"Redrive {len(entries)} dead letter(s) at most {args.rate:g}/s?"):
            print("aborted")
            return 1
    publisher = Publisher(settings)
    try:
        outcomes = redrive(store, publisher, entries, rate=args.rate)
    finally:
        publisher.close()
    for outcome in outcomes:
        status = "redriven" if outcome.ok else "kept"
        print(f"{outcome.entry.id}: {status}: {outcome.message}")
    done = sum(o.ok for o in outcomes)
    print(f"{done} of {len(outcomes)} redriven")
    return 0 if done == len(outcomes) and all_found else 1


def _confirm(question: str) -> bool:
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _cmd_purge(store: DeadLetterStore, args: argparse.Namespace) -> int:
    entries, all_found = _selected(store, args)
    if not entries:
        print("nothing to purge")
        return 0 if all_found else 1
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"ims-worker dlq purge: refusing to delete {len(entries)} entries without --yes",
                file=sys.stderr,
            )
            return 1
        if not _confirm(f"Delete {len(entries)} dead letter(s) for good?"):
            print("aborted")
            return 1
    deleted = store.delete([e.id for e in entries])
    print(f"{deleted} dead letter{'s' if deleted != 1 else ''} purged")
    return 0 if all_found else 1


def check_source(settings: Settings, source: str | None) -> None:
    """A typo in ``--source`` would match nothing and read as "0 dead letters": refuse it instead."""
    if source is None:
        return
    load(settings)
    known = [spec.name for spec in active(settings)] + ["unknown"]
    if source not in known:
        raise ConfigurationError(f"--source {source!r} is not a source; sources: {', '.join(known)}")


def _run(args: argparse.Namespace) -> int:
    check_source(load_settings(), getattr(args, "source", None))
    read_only = args.dlq_command in ("list", "show")
    with redis_target(f"dlq {args.dlq_command}", read_only=read_only) as target:
        return _in(target.settings, target.url, args)


def _in(settings: Settings, url: str, args: argparse.Namespace) -> int:
    store = DeadLetterStore.for_settings(settings)
    commands: dict[str, Callable[[], int]] = {
        "list": lambda: _cmd_list(store, args),
        "show": lambda: _cmd_show(store, args),
        "redrive": lambda: _cmd_redrive(store, args, settings),
        "purge": lambda: _cmd_purge(store, args),
    }
    try:
        return run_against_redis("dlq", url, commands[args.dlq_command])
    except BrokerUnavailable as exc:
        print(f"ims-worker dlq: {exc} (the entries are kept)", file=sys.stderr)
        return 1
    finally:
        store.close()


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", help="exact source: ims, live.caster, live.record, rtc, tencent, a plugin's, unknown"
    )
    parser.add_argument("--type", help="event type or glob, e.g. ims.* or ims.ProduceMediaComplete")
    parser.add_argument("--reason", help="substring of the reason, e.g. 'retries exhausted'")
    parser.add_argument(
        "--since", type=parse_when, help="dead-lettered at or after: ISO time or 30m/2h/7d ago"
    )
    parser.add_argument(
        "--until", type=parse_when, help="dead-lettered at or before: ISO time or 30m/2h/7d ago"
    )


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


RAW_HELP = "print credentials as stored (signed URLs, tokens); redacted by default"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("dlq", help="inspect, redrive and purge dead letters")
    commands = parser.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = commands.add_parser("list", help="count and table of dead letters (oldest first)")
    _add_filters(listing)
    listing.add_argument(
        "--limit", type=int, default=100, help="rows to show (default 100); the count is always total"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output, entries in full")
    listing.add_argument("--raw", action="store_true", help=RAW_HELP)

    show = commands.add_parser("show", help="one dead letter in full (raw payload, event, error)")
    show.add_argument("id", help="entry id as listed, e.g. 1716800000000-0")
    show.add_argument("--raw", action="store_true", help=RAW_HELP)

    redrive = commands.add_parser("redrive", help="republish dead letters; each is removed once enqueued")
    redrive.add_argument(
        "ids", nargs="*", metavar="ID", help="entry ids (default: every entry matching filters)"
    )
    _add_filters(redrive)
    redrive.add_argument("--dry-run", action="store_true", help="list what would be redriven; change nothing")
    redrive.add_argument(
        "--yes", "-y", action="store_true", help="redrive every matching entry without asking (no ids given)"
    )
    redrive.add_argument(
        "--rate", type=_positive, default=20.0, help="entries republished per second at most (20)"
    )

    purge = commands.add_parser("purge", help="delete dead letters for good")
    purge.add_argument(
        "ids", nargs="*", metavar="ID", help="entry ids (default: every entry matching filters)"
    )
    _add_filters(purge)
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    parser.set_defaults(func=_run)
