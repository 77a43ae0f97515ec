"""``ims-worker``: one entry point, one module per subcommand group (each exposes ``register``)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from worker.errors import ConfigurationError

# Each module defines ``register(subparsers)`` and sets ``func`` on its parsers: func(args) -> exit code.
SUBCOMMAND_MODULES = ("run", "consume", "shim", "dlq", "events", "send", "emulator", "trace", "replay")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ims-worker",
        description="IMS (MNS) and media-provider webhook events -> Celery tasks -> handler plugins.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"worker.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigurationError as exc:
        print(f"ims-worker: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
