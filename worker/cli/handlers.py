"""``ims-worker handlers list``: which handlers run for which event types, in the order they run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from worker.cli.preflight import load_handlers
from worker.events.catalogue import CATALOGUE
from worker.execution.profile import mismatch
from worker.execution.registry import REGISTRY, Subscription
from worker.settings import Settings, load_settings


def options_of(sub: Subscription) -> dict[str, Any]:
    """A subscription's options (key, rate, concurrency...) when its type can describe them."""
    describe = getattr(sub, "describe", None)
    if not callable(describe):
        return {}
    described = describe()
    if not isinstance(described, dict):
        return {}
    return {k: v for k, v in described.items() if k not in ("name", "pattern", "func") and v is not None}


def types_of(sub: Subscription) -> list[str]:
    return sorted(t for t in CATALOGUE if sub.matches(t))


def subscription_rows(subs: Sequence[Subscription]) -> list[dict[str, Any]]:
    return [
        {"handler": s.name, "pattern": s.pattern, "event_types": types_of(s), "options": options_of(s)}
        for s in sorted(subs, key=lambda s: (s.name, s.pattern))
    ]


def profile_warnings(settings: Settings, subs: Sequence[Subscription]) -> list[str]:
    """A line per handler whose declaration (``cpu_bound``, ``async def``) does not fit the worker profile."""
    found = {s.name: mismatch(s.name, s.waits, settings.worker_profile) for s in subs}
    return [warning for _, warning in sorted(found.items()) if warning]


def _warn(settings: Settings, subs: Sequence[Subscription]) -> None:
    for warning in profile_warnings(settings, subs):
        print(f"warning: {warning}", file=sys.stderr)


def format_subscription(row: dict[str, Any]) -> str:
    types: list[str] = row["event_types"]
    shown = ", ".join(types) if len(types) <= 3 else f"{len(types)} types ({types[0]} … {types[-1]})"
    options = " ".join(f"{k}={v}" for k, v in row["options"].items())
    return f"{row['handler']}  <- {row['pattern']}  [{shown}]" + (f"  {options}" if options else "")


def _list(args: argparse.Namespace) -> int:
    settings = load_settings()
    load_handlers(settings)
    if args.type:
        if args.type not in CATALOGUE:
            print(f"ims-worker handlers: unknown event type {args.type!r} (see 'ims-worker events list')",
                  file=sys.stderr)  # fmt: skip
            return 2
        subs = REGISTRY.handlers_for(args.type)
        _warn(settings, subs)
        if args.json:
            print(json.dumps(subscription_rows(subs), indent=2, default=str))
            return 0
        print(f"{args.type}: {len(subs)} handler{'s' if len(subs) != 1 else ''}, in this order")
        for index, sub in enumerate(subs, 1):
            options = " ".join(f"{k}={v}" for k, v in options_of(sub).items())
            print(f"  {index}. {sub.name}  <- {sub.pattern}" + (f"  {options}" if options else ""))
        return 0
    rows = subscription_rows(REGISTRY.subscriptions)
    _warn(settings, REGISTRY.subscriptions)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{len(rows)} subscription{'s' if len(rows) != 1 else ''}")
    for row in rows:
        print("  " + format_subscription(row))
    unhandled = [t for t in sorted(CATALOGUE) if not REGISTRY.handlers_for(t)]
    if unhandled:
        print(f"{len(unhandled)} event types with no handler (recorded as handled): {', '.join(unhandled)}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("handlers", help="the loaded handler plugins and what they subscribe to")
    commands = parser.add_subparsers(dest="handlers_command", required=True, metavar="ACTION")
    listing = commands.add_parser(
        "list",
        help="every subscription (handler, pattern, event types, options); --type: the handlers of one type",
        description="Loads the built-in handlers, IMS_WORKER_HANDLER_MODULES and the ims_worker.handlers "
        "entry points exactly as the worker does; exits 2 with the reason when one cannot be loaded.",
    )
    listing.add_argument("--type", metavar="EVENT_TYPE", help="only the handlers of this type, in run order")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)
