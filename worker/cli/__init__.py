"""``ims-worker``: one entry point, one module per subcommand group (each exposes ``register``)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from worker.cli.terminal import escaped_output
from worker.errors import ConfigurationError

# Each module defines ``register(subparsers)`` and sets ``func`` on its parsers: func(args) -> exit code.
SUBCOMMAND_MODULES = (
    "run",
    "consume",
    "shim",
    "check",
    "handlers",
    "dlq",
    "events",
    "send",
    "emulator",
    "trace",
    "replay",
    "probe",
    "inbox",
)
# The commands that print what events carry (ids, keys, errors, bodies): their output is escaped
# (worker.cli.terminal). The others print only what the operator configured, or drive a terminal on purpose.
ESCAPED_COMMANDS = frozenset({"handlers", "dlq", "events", "trace", "replay"})
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process stopped by SIGPIPE


def package_version() -> str:
    try:
        return version("ims-event-worker")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ims-worker",
        description="IMS (MNS) and media-provider webhook events -> Celery tasks -> handler plugins.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"worker.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    escaping: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if args.command in ESCAPED_COMMANDS:
        escaping = escaped_output(redact=not getattr(args, "raw", False))
    try:
        with escaping:
            code: int = args.func(args)
    except ConfigurationError as exc:
        print(f"ims-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()
    try:
        sys.stdout.flush()  # a late EPIPE surfaces here, not in the interpreter's exit (which would print it)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    return code


def _quiet_broken_pipe() -> int:
    # `ims-worker dlq show ID | head`: the reader left; that is not an error of ours, nor a Redis problem.
    # stdout is pointed at /dev/null so the interpreter's final flush does not complain either.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
