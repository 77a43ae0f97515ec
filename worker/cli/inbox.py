"""`ims-worker inbox init|purge`: the PostgreSQL table of ``worker.inbox`` (README, "Writing a handler").

The DSN may carry a password: it is never printed or logged as given (``redact_text``), and it can stay out
of the command line altogether (no ``--dsn``: libpq's PGHOST, PGUSER, PGPASSWORD... variables).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from worker.inbox.context import InboxError
from worker.inbox.drivers import TABLE
from worker.redact import redact_text
from worker.settings import load_settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_BATCH = 100_000


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m`` or ``3600s`` in seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30d, 12h, 90m)")
    return float(match[1]) * _SECONDS[match[2]]


def human(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _SECONDS[unit] and seconds % _SECONDS[unit] == 0:
            return f"{seconds / _SECONDS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _batch(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BATCH}")
    return value


def _where(dsn: str) -> str:
    return redact_text(dsn) if dsn else "the PG* environment's database"


def _failed(name: str, dsn: str, exc: InboxError) -> int:
    text = redact_text(str(exc).replace(dsn, redact_text(dsn)) if dsn else str(exc))
    print(f"ims-worker inbox {name}: {_where(dsn)}: {text[:500]}", file=sys.stderr)
    return 1


def _init(args: argparse.Namespace) -> int:
    from worker.inbox import admin  # noqa: PLC0415

    try:
        admin.init(args.dsn or "")
    except InboxError as exc:  # the database's answer (admin wraps psycopg's errors)
        return _failed("init", args.dsn or "", exc)
    print(f"inbox table {TABLE} ready in {_where(args.dsn or '')}")
    return 0


def _purge(args: argparse.Namespace) -> int:
    from worker.inbox import admin  # noqa: PLC0415

    floor = load_settings().handler_done_ttl_seconds
    if args.older_than < floor and not args.force:
        print(
            f"ims-worker inbox purge: refusing --older-than {human(args.older_than)}: shorter than the "
            f"done markers' {human(floor)} (IMS_WORKER_HANDLER_DONE_TTL_SECONDS); rows must outlive every "
            "redelivery, replay and redrive (README). --force purges anyway",
            file=sys.stderr,
        )
        return 2
    try:
        deleted = admin.purge(
            args.dsn or "", args.older_than, batch=args.batch, progress=lambda n: print(f"{n} rows deleted")
        )
    except InboxError as exc:  # the database's answer; the batches done stay done
        return _failed("purge", args.dsn or "", exc)
    print(f"purged {deleted} row{'s' if deleted != 1 else ''} applied more than {human(args.older_than)} ago")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inbox", help="the PostgreSQL inbox table of worker.inbox.claim (exactly-once effects)"
    )
    commands = parser.add_subparsers(dest="inbox_command", required=True, metavar="COMMAND")
    dsn_help = "libpq connection string or URL (default: the PGHOST, PGUSER, PGPASSWORD... variables)"
    init = commands.add_parser("init", help=f"create the inbox table ({TABLE}) if missing (idempotent)")
    init.add_argument("--dsn", help=dsn_help)
    init.set_defaults(func=_init)
    purge = commands.add_parser(
        "purge", help="delete inbox rows applied longer ago than a duration, in bounded batches"
    )
    purge.add_argument("--dsn", help=dsn_help)
    purge.add_argument(
        "--older-than", type=parse_duration, required=True, help="e.g. 30d; at least the done-marker TTL"
    )
    purge.add_argument("--batch", type=_batch, default=5000, help="rows per transaction (default 5000)")
    purge.add_argument("--force", action="store_true", help="allow --older-than below the done-marker TTL")
    purge.set_defaults(func=_purge)
