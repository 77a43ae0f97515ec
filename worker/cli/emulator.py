"""``ims-worker emulator mns``: the bundled MNS queue emulator, with fault injection flags.

Prints one line ``mns-emulator ready endpoint=http://HOST:PORT access_key_id=ID`` on stdout once it
listens (so ``--port 0`` is usable from scripts), then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from worker.devtools.mns_emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCESS_KEY_SECRET,
    FaultSettings,
    MnsEmulator,
)
from worker.devtools.mns_emulator.errors import MnsError
from worker.devtools.mns_emulator.sts import StsIssuer
from worker.errors import ConfigurationError
from worker.logging import configure_logging
from worker.settings import load_settings

DEFAULT_PORT = 9876


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_emulator(args: argparse.Namespace) -> MnsEmulator:
    faults = FaultSettings(
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        drop_response_rate=args.drop_response_rate,
        latency_ms=args.latency_ms,
        partial_delete_rate=args.partial_delete_rate,
    )
    try:
        return MnsEmulator(
            args.host,
            args.port,
            access_key_id=args.access_key_id,
            access_key_secret=args.access_key_secret,
            queues=args.queue or (),
            faults=faults,
            seed=args.seed,
            admin=not args.no_admin,
            sts=StsIssuer(rotate_seconds=args.sts_rotate_seconds, grace_seconds=args.sts_grace_seconds),
            clock_offset_seconds=args.clock_offset_seconds,
        )
    except MnsError as exc:  # an invalid queue name is an operator error, not a crash
        raise ConfigurationError(f"cannot set up the MNS emulator: {exc}") from exc


def _serve(args: argparse.Namespace) -> int:
    configure_logging(load_settings())  # logs go to stderr; stdout carries the ready line
    emulator = build_emulator(args)
    try:
        emulator.start()
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(
        f"mns-emulator ready endpoint={emulator.endpoint} access_key_id={emulator.access_key_id}", flush=True
    )
    while not stop.wait(0.5):
        pass
    emulator.stop()
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("emulator", help="run a bundled service emulator (MNS queues)")
    services = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    mns = services.add_parser(
        "mns",
        help="MNS queue emulator speaking the protocol the aliyun-mns-sdk uses",
        description="An MNS queue service for tests and demos: signatures, visibility timeouts, long polls, "
        "batch operations, and injected faults. State is in memory.",
    )
    mns.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    mns.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="0 picks a free port (default: %(default)s)"
    )
    mns.add_argument(
        "--queue", action="append", metavar="NAME", help="create this queue at start (repeatable)"
    )
    mns.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID, help="(default: %(default)s)")
    mns.add_argument(
        "--access-key-secret", default=DEFAULT_ACCESS_KEY_SECRET, help="(default: the built-in one)"
    )
    mns.add_argument("--error-rate", type=_rate, default=0.0, help="fraction answered 500/503 (default: 0)")
    mns.add_argument(
        "--drop-rate", type=_rate, default=0.0, help="fraction reset before handling (default: 0)"
    )
    mns.add_argument(
        "--drop-response-rate", type=_rate, default=0.0, help="fraction handled, then reset (default: 0)"
    )
    mns.add_argument(
        "--latency-ms", type=_non_negative, default=0.0, help="added to every request (default: 0)"
    )
    mns.add_argument(
        "--partial-delete-rate",
        type=_rate,
        default=0.0,
        help="fraction of BatchDelete handles reported failed and kept (default: 0)",
    )
    mns.add_argument("--seed", type=int, default=None, help="seed the fault RNG and receipt handles")
    mns.add_argument("--no-admin", action="store_true", help="disable the /_emulator/ JSON control API")
    mns.add_argument(
        "--sts-rotate-seconds",
        type=_positive,
        default=3600.0,
        help="the credentials URI (/_emulator/sts/credentials) issues new STS credentials this often "
        "(default: %(default)s)",
    )
    mns.add_argument(
        "--sts-grace-seconds",
        type=_non_negative,
        default=2.0,
        help="old STS credentials are refused this long after their successor was issued (default: 2)",
    )
    mns.add_argument(
        "--clock-offset-seconds",
        type=float,
        default=0.0,
        help="run the emulator's clock this far off (requests more than 15 min off are refused)",
    )
    mns.set_defaults(func=_serve)


def main(argv: list[str] | None = None) -> int:
    """``python -m worker.cli.emulator mns ...``: the same command without loading the other subcommands."""
    parser = argparse.ArgumentParser(prog="ims-worker")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["emulator", *(sys.argv[1:] if argv is None else argv)])
    try:
        code: int = args.func(args)
    except ConfigurationError as exc:
        print(f"ims-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
