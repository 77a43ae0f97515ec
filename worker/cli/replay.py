"""`ims-worker replay`: run chosen handlers again for past events selected from the journal."""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from typing import Any

from worker.cli.redisrun import run_against_redis
from worker.cli.target import redis_target
from worker.cli.trace import table
from worker.errors import ConfigurationError
from worker.execution.registry import REGISTRY, discover
from worker.execution.replay import Candidate, Replayer, plan
from worker.journal.reader import EventHistory, JournalReader
from worker.redisconn import store_client
from worker.settings import Settings

INBOX_NOOP = (
    "handlers that use worker.inbox.claim do nothing for an event their inbox says they applied "
    "(--reapply forces them to apply it again)"
)
INBOX_REAPPLY = (
    "--reapply: handlers that use worker.inbox.claim apply their effect again, even where their inbox says "
    "it was applied (once per replayed event)"
)


def _select(reader: JournalReader, args: argparse.Namespace) -> list[EventHistory]:
    """Oldest first; every given criterion must hold."""
    if args.event:
        histories = reader.histories(args.event)
        missing = set(args.event) - {h.event_id for h in histories}
        for event_id in sorted(missing):
            print(
                f"ims-worker replay: {event_id}: not in the journal (never seen or aged out)", file=sys.stderr
            )
    elif args.key:
        histories = reader.histories(reader.resolve(args.key))
    else:
        histories = list(reversed(reader.recent(since=args.since, until=args.until, limit=None)))

    def keep(h: EventHistory) -> bool:
        if args.type and not fnmatch.fnmatchcase(h.type or "", args.type):
            return False
        if args.source and h.source != args.source:
            return False
        seen = h.first_seen
        if seen is None:
            return False
        return not ((args.since and seen < args.since) or (args.until and seen > args.until))

    chosen = [h for h in histories if keep(h)]
    if len(chosen) > args.limit:
        print(
            f"ims-worker replay: {len(chosen) - args.limit} more matching events left out (--limit)",
            file=sys.stderr,
        )
    return chosen[: args.limit]


def _handlers(settings: Settings, wanted: list[str]) -> list[str]:
    discover(settings.handler_modules)
    known = {s.name for s in REGISTRY.subscriptions}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        modules = ", ".join(settings.handler_modules) or "none"
        raise ConfigurationError(
            f"unknown handler {', '.join(unknown)}: this command knows the handlers of the modules it loaded "
            f"(built-in, entry points, IMS_WORKER_HANDLER_MODULES: {modules}): {listed}. Give it the "
            "worker's IMS_WORKER_HANDLER_MODULES (and PYTHONPATH) in this shell too"
        )
    return wanted


def _show(candidates: list[Candidate]) -> None:
    rows = [
        (
            c.event_id,
            c.event_type or "?",
            ",".join(c.handlers) or "-",
            "yes" if c.replayable else f"no: {c.reason}",
        )
        for c in candidates
    ]
    print(table(("EVENT ID", "TYPE", "HANDLERS", "REPLAYABLE"), rows))


def _confirmed(args: argparse.Namespace, count: int) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(f"ims-worker replay: refusing to replay {count} events without --yes", file=sys.stderr)
        return False
    answer = input(f"Replay {count} event(s) at most {args.rate:g}/s? [y/N] ").strip().lower()
    if answer in ("y", "yes"):
        return True
    print("aborted")
    return False


def _replay(args: argparse.Namespace, settings: Settings, reader: JournalReader, client: Any) -> int:
    candidates = plan(reader, _select(reader, args), _handlers(settings, args.handler or []), settings)
    ready = [c for c in candidates if c.replayable]
    if not candidates:
        print("no matching event in the journal")
        return 0
    _show(candidates)
    print(f"{len(ready)} of {len(candidates)} replayable")
    print(INBOX_REAPPLY if args.reapply else INBOX_NOOP)
    if args.dry_run or not ready:
        return 0 if len(ready) == len(candidates) else 1
    if not _confirmed(args, len(ready)):
        return 1
    replay_id = f"replay-{int(time.time())}"
    sent = Replayer(client, settings).replay(
        ready,
        rate=args.rate,
        replay_id=replay_id,
        progress=lambda c, t: print(f"{c.event_id}: task {t}"),
        reapply=args.reapply,
    )
    print(f"{sent} event{'s' if sent != 1 else ''} replayed ({replay_id}); see: ims-worker trace EVENT_ID")
    return 0 if sent == len(candidates) else 1


def _run(args: argparse.Namespace) -> int:
    if not (args.event or args.key or args.since):
        print("ims-worker replay: choose events with --event, --key or --since", file=sys.stderr)
        return 2
    with redis_target("replay", read_only=False) as target:
        client = store_client(target.settings)
        try:
            body = lambda: _replay(args, target.settings, JournalReader(client), client)  # noqa: E731
            return run_against_redis("replay", target.url, body)
        finally:
            client.close()


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def register(subparsers: Any) -> None:
    from worker.cli.dlq import parse_when  # noqa: PLC0415

    parser = subparsers.add_parser(
        "replay", help="run handlers again for past events (even those that succeeded), from the journal"
    )
    parser.add_argument("--event", action="append", metavar="ID", help="an event id (repeatable)")
    parser.add_argument("--key", help="events carrying a business key: a value or Name=value (as trace)")
    parser.add_argument("--type", help="event type or glob, e.g. ims.*")
    parser.add_argument("--source", help="exact source: ims, live.caster, live.record, rtc, tencent")
    parser.add_argument("--since", type=parse_when, help="first seen at or after: ISO time or 30m/2h/7d ago")
    parser.add_argument("--until", type=parse_when, help="first seen at or before: ISO time or 30m/2h/7d ago")
    parser.add_argument(
        "--handler", action="append", metavar="NAME", help="only this handler, module:qualname (repeatable)"
    )
    parser.add_argument(
        "--reapply",
        action="store_true",
        help="handlers using worker.inbox.claim apply their effect again even if their inbox says it was "
        "applied (without it, replaying an applied event is a no-op for them)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would run, change nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--rate", type=_positive, default=20.0, help="events enqueued per second at most (20)"
    )
    parser.add_argument("--limit", type=int, default=1000, help="events at most (default 1000)")
    parser.set_defaults(func=_run)
